"""Text-layer block baselines (DESIGN §7): BM25 and MiniLM dense retrieval over layout blocks.

Blocks come from ``Page.blocks`` when the producer recorded them (the synthetic generator does);
otherwise — imported PDFs — they are grouped from the words alone: words → line segments (split
at wide horizontal gaps, so columns stay apart) → blocks (segments stacked with a small vertical
gap and overlapping horizontally). Both baselines rank pages by their best block and return that
block's box as the region.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from statistics import median

import numpy as np

from components.rag.answer import group_lines, tokens


@dataclass
class TextBlock:
    page_id: str
    text: str
    box: tuple[float, float, float, float]


def _union(boxes: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    return (
        min(b[0] for b in boxes), min(b[1] for b in boxes),
        max(b[2] for b in boxes), max(b[3] for b in boxes),
    )


def blocks_from_words(page_id: str, words: Sequence[Sequence]) -> list[TextBlock]:
    """Group [text, x0, y0, x1, y1] words into blocks (see module doc)."""
    if not words:
        return []
    height = median(w[4] - w[2] for w in words) or 1e-3
    segments: list[list[Sequence]] = []
    for line in group_lines(words):
        current = [line[0]]
        for prev, word in pairwise(line):
            if word[1] - prev[3] > 2.0 * height:  # a column gutter, not a word space
                segments.append(current)
                current = []
            current.append(word)
        segments.append(current)
    blocks: list[list[list[Sequence]]] = []  # block -> segments
    for seg in sorted(segments, key=lambda s: (min(w[2] for w in s), min(w[1] for w in s))):
        box = _union([w[1:] for w in seg])
        placed = False
        for block in reversed(blocks):
            last = _union([w[1:] for w in block[-1]])
            gap = box[1] - last[3]
            overlap = min(box[2], last[2]) - max(box[0], last[0])
            if -0.5 * height <= gap <= 1.0 * height and overlap > 0:
                block.append(seg)
                placed = True
                break
        if not placed:
            blocks.append([seg])
    out = []
    for block in blocks:
        ws = [w for seg in block for w in seg]
        text = "\n".join(" ".join(w[0] for w in seg) for seg in block)
        out.append(TextBlock(page_id, text, _union([w[1:] for w in ws])))
    return out


def page_blocks(page) -> list[TextBlock]:
    """A Page's blocks: recorded layout blocks with text, else blocks grouped from its words."""
    recorded = [b for b in page.blocks if b.text.strip()]
    if recorded:
        return [TextBlock(page.id, b.text, tuple(b.box)) for b in recorded]
    return blocks_from_words(page.id, [[w.text, *w.box] for w in page.words])


@dataclass
class BlockHit:
    page_id: str
    score: float
    block: TextBlock


def _rank_pages(blocks: list[TextBlock], scores: np.ndarray, k: int | None) -> list[BlockHit]:
    best: dict[str, BlockHit] = {}
    for block, score in zip(blocks, scores):
        hit = best.get(block.page_id)
        if hit is None or score > hit.score:
            best[block.page_id] = BlockHit(block.page_id, float(score), block)
    ranked = sorted(best.values(), key=lambda h: h.score, reverse=True)
    return ranked if k is None else ranked[:k]


class BM25Blocks:
    """BM25Okapi (rank-bm25) over block tokens; page score = best block."""

    name = "bm25_blocks"

    def __init__(self, blocks: list[TextBlock]):
        from rank_bm25 import BM25Okapi

        if not blocks:
            raise ValueError("bm25_blocks needs at least one text block")
        self.blocks = blocks
        # rank-bm25 fails on an all-empty corpus; an empty block gets a placeholder token that no query has.
        self.bm25 = BM25Okapi([tokens(b.text) or ["\u2400"] for b in blocks])

    def search(self, question: str, k: int | None = None) -> list[BlockHit]:
        return _rank_pages(self.blocks, self.bm25.get_scores(tokens(question)), k)


class DenseBlocks:
    """MiniLM sentence embeddings (mean pooling, L2-normalised) of blocks; cosine to the question."""

    name = "dense_blocks"

    def __init__(self, blocks: list[TextBlock], model, tokenizer, batch_size: int = 64):
        if not blocks:
            raise ValueError("dense_blocks needs at least one text block")
        self.blocks, self.model, self.tokenizer = blocks, model.eval(), tokenizer
        self.batch_size = batch_size
        self.matrix = self.embed([b.text for b in blocks])

    @classmethod
    def from_params(cls, blocks: list[TextBlock], model_params) -> DenseBlocks:
        from components.model.text_encoder import load_text_encoder, resolve_text_encoder

        info = resolve_text_encoder(model_params)  # checks the pinned sha256
        model, tokenizer = load_text_encoder(info.path)
        return cls(blocks, model, tokenizer)

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    texts[i : i + self.batch_size], padding=True, truncation=True,
                    max_length=256, return_tensors="pt",
                )
                states = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out).astype(np.float32)

    def search(self, question: str, k: int | None = None) -> list[BlockHit]:
        q = self.embed([question])[0]
        return _rank_pages(self.blocks, self.matrix @ q, k)
