"""Answer questions from retrieved regions (or whole pages) with the trained span reader.

The answerer turns the retriever's output into reader contexts (text in reading order + refined
visual tokens from the index's cell vectors), runs the reader in batches and returns, per
question, the answer and the visual-token count handed over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from components.reader.contexts import Context, make_context
from components.reader.model import ReaderAnswer, SpanReader, collate, decode, encode

FULL_PAGE = (0.0, 0.0, 1.0, 1.0)


@dataclass
class Answered:
    answer: str
    context: Context | None  # the context the span came from
    visual_tokens: int  # cells handed to the reader for this question
    reader: ReaderAnswer


class ReaderAnswerer:
    def __init__(self, reader: SpanReader, index, batch_size: int = 16):
        self.reader, self.index, self.batch_size = reader.eval(), index, batch_size
        self.p = reader.params

    # ------------------------------------------------------------------ contexts
    def region_contexts(self, regions, query_vec: np.ndarray | None, mode: str | None = None,
                        image_keep: np.ndarray | None = None, seed: int = 0) -> list[Context]:
        """Contexts from ``components.regions.extract.Region`` objects (their own cell masks)."""
        rng = np.random.default_rng(seed)
        return [
            make_context(r.page_id, r.box, self.index.meta(r.page_id).words, self.index.cell_vectors(r.page_id),
                         self.index.grid, self.p.top_m, mode or self.p.visual_tokens, query_vec, image_keep,
                         cell_mask=r.cells, rng=rng)
            for r in regions
        ]

    def page_contexts(self, page_ids: list[str]) -> tuple[list[Context], int]:
        """Page-level baseline: each whole page, every cell handed over (pooled into the reader's m slots).

        Returns the contexts and the cells handed over (k·G²).
        """
        contexts, handed = [], 0
        for pid in page_ids:
            cells = self.index.cell_vectors(pid)
            handed += len(cells)
            contexts.append(make_context(pid, FULL_PAGE, self.index.meta(pid).words, cells, self.index.grid,
                                         self.p.top_m, "avgpool"))
        return contexts, handed

    # ------------------------------------------------------------------ reading
    @torch.inference_mode()
    def read(self, items: list[tuple[str, list[Context]]]) -> list[ReaderAnswer]:
        """(question, contexts) pairs -> reader answers, in order."""
        out: list[ReaderAnswer] = []
        tok = self.reader.tokenizer
        for i in range(0, len(items), self.batch_size):
            chunk = [encode(tok, q, ctxs, self.p, self.reader.cell_dim) for q, ctxs in items[i : i + self.batch_size]]
            batch = collate(chunk, tok.pad_token_id, self.reader.cell_dim)
            start, end = self.reader(batch)
            out.extend(decode(start, end, batch, chunk, self.p.max_answer_words))
        return out

    def answer(self, question: str, contexts: list[Context], visual_tokens: int | None = None) -> Answered:
        result = self.read([(question, contexts)])[0]
        ctx = contexts[result.context] if result.context is not None else None
        n = sum(c.n_visual for c in contexts) if visual_tokens is None else visual_tokens
        return Answered(result.answer, ctx, n, result)
