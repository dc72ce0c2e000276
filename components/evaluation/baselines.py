"""Text-layer block baselines: BM25+ and MiniLM dense retrieval over layout blocks.

Blocks come from ``components.data.layout.page_blocks`` (recorded layout blocks, or blocks grouped
from the words). Both baselines rank pages by their best block and return that block's box as
the region. ``bm25_blocks`` is the lexical channel's own BM25+ and tokenizer
(``components.index.lexical``) over blocks instead of pages, so that it and the fused
retriever's lexical evidence differ only in what a document is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.data.layout import TextBlock, blocks_from_words, page_blocks  # noqa: F401 - re-exported
from components.index.lexical import bm25_plus, tokenize


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
    """BM25+ over block tokens (the lexical channel's BM25 and tokenizer); page score = best block."""

    name = "bm25_blocks"

    def __init__(self, blocks: list[TextBlock]):
        if not blocks:
            raise ValueError("bm25_blocks needs at least one text block")
        self.blocks = blocks
        self.bm25 = bm25_plus([tokenize(b.text) for b in blocks])

    def scores(self, question: str) -> np.ndarray:
        """Every block's BM25+ score for ``question`` (zeros when it has no indexable term)."""
        terms = tokenize(question)
        if not terms:
            return np.zeros(len(self.blocks), dtype=np.float64)
        return np.asarray(self.bm25.get_scores(terms))

    def search(self, question: str, k: int | None = None) -> list[BlockHit]:
        scores = self.scores(question)
        if not scores.any():  # no term of the question is in any block: no evidence, no ranking
            return []
        return _rank_pages(self.blocks, scores, k)


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
                    texts[i : i + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                )
                states = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out).astype(np.float32)

    def search(self, question: str, k: int | None = None) -> list[BlockHit]:
        q = self.embed([question])[0]
        return _rank_pages(self.blocks, self.matrix @ q, k)
