"""Answer questions from retrieved regions (or whole pages) with the trained span reader.

The answerer turns the retriever's output into reader contexts (text in reading order + refined
visual tokens from the index's cell vectors), runs the reader in batches and returns, per
question, the answer and the tokens handed over (text pieces and visual tokens, as encoded).
Region-level and page-level contexts follow one budget rule: each context hands over at most
``reader.max_context_tokens`` text pieces and ``reader.top_m`` visual tokens.
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
    visual_tokens: int  # visual tokens handed to the reader for this question
    reader: ReaderAnswer

    @property
    def text_tokens(self) -> int:
        return self.reader.text_tokens


def _longest(e) -> int:
    """The longest of an encoded question's sequences (one per context), in pieces."""
    ends = [*e.seq_starts[1:], len(e.input_ids)]
    return max((b - a for a, b in zip(e.seq_starts, ends)), default=0)


class ReaderAnswerer:
    def __init__(self, reader: SpanReader, index, batch_size: int = 16):
        self.reader, self.index, self.batch_size = reader.eval(), index, batch_size
        self.p = reader.params

    # ------------------------------------------------------------------ contexts
    def region_contexts(
        self,
        regions,
        query_vec: np.ndarray | None,
        mode: str | None = None,
        image_keep: np.ndarray | None = None,
        seed: int = 0,
    ) -> list[Context]:
        """Contexts from ``components.regions.extract.Region`` objects (their own cell masks)."""
        rng = np.random.default_rng(seed)
        return [
            make_context(
                r.page_id,
                r.box,
                self.index.meta(r.page_id).words,
                self.index.cell_vectors(r.page_id),
                self.index.grid,
                self.p.top_m,
                mode or self.p.visual_tokens,
                query_vec,
                image_keep,
                cell_mask=r.cells,
                rng=rng,
            )
            for r in regions
        ]

    def page_contexts(self, page_ids: list[str]) -> list[Context]:
        """Page-level baseline: each whole page as one context under the same budget rule as a
        region (its best lines up to ``max_context_tokens`` pieces, its cells pooled into
        ``top_m`` visual tokens)."""
        return [
            make_context(
                pid,
                FULL_PAGE,
                self.index.meta(pid).words,
                self.index.cell_vectors(pid),
                self.index.grid,
                self.p.top_m,
                "avgpool",
            )
            for pid in page_ids
        ]

    # ------------------------------------------------------------------ reading
    @torch.inference_mode()
    def read(self, items: list[tuple[str, list[Context]]]) -> list[ReaderAnswer]:
        """(question, contexts) pairs -> reader answers, in order.

        Batches are cut from the questions sorted by their longest sequence: a batch pads every
        sequence to its longest, and a 30-piece region beside a 256-piece page cost the page's length.
        """
        tok = self.reader.tokenizer
        encoded = [encode(tok, q, ctxs, self.p, self.reader.cell_dim) for q, ctxs in items]
        order = sorted(
            range(len(encoded)), key=lambda i: (_longest(encoded[i]), len(encoded[i].seq_starts))
        )
        out: list[ReaderAnswer | None] = [None] * len(encoded)
        for b in range(0, len(order), self.batch_size):
            rows = order[b : b + self.batch_size]
            chunk = [encoded[i] for i in rows]
            batch = collate(chunk, tok.pad_token_id, self.reader.cell_dim)
            start, end = self.reader(batch)
            for i, answer in zip(rows, decode(start, end, batch, chunk, self.p.max_answer_words)):
                out[i] = answer
        return out

    def answer(self, question: str, contexts: list[Context]) -> Answered:
        """The reader over the first ``reader.contexts`` contexts (the k it was trained and scored with)."""
        contexts = contexts[: self.p.contexts]
        result = self.read([(question, contexts)])[0]
        ctx = contexts[result.context] if result.context is not None else None
        return Answered(result.answer, ctx, result.visual_tokens, result)
