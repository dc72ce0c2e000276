"""rank-bm25's BM25+ scores read from inverted postings, for all documents or a few (ADR 29).

``BM25Plus.get_scores`` looks every query term up in every document's term dict, and
``get_batch_scores`` converts the whole collection's document lengths to an array on every call:
either costs time in the collection's size per question (at 1,000 real pages, ~25k layout blocks,
the served path's block scoring for 128 candidate pages took longer than the rest of the search).
The postings of a term are read once per question here instead. The formula, its operand types
(int64 term frequencies and lengths, float64 arithmetic) and the order terms are added in are
rank-bm25's, element by element, so the scores are equal to its scores bit for bit
(tests/index/test_bm25_scores.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from rank_bm25 import BM25Plus


class BM25PlusPostings:
    """The scores of a built ``BM25Plus`` without its per-document loops."""

    def __init__(self, bm25: BM25Plus):
        self.bm25 = bm25
        self.doc_len = np.asarray(bm25.doc_len, dtype=np.int64)
        ids: dict[str, list[int]] = defaultdict(list)
        freqs: dict[str, list[int]] = defaultdict(list)
        for doc, doc_freqs in enumerate(bm25.doc_freqs):  # documents in order: ids stay sorted
            for term, freq in doc_freqs.items():
                ids[term].append(doc)
                freqs[term].append(freq)
        self._postings = {
            term: (np.asarray(ids[term], dtype=np.int64), np.asarray(freqs[term], dtype=np.int64))
            for term in ids
        }

    def __len__(self) -> int:
        return len(self.doc_len)

    def _frequencies(self, term: str, docs: np.ndarray | None) -> np.ndarray:
        """int64 frequency of ``term`` in each of ``docs`` (every document when None)."""
        n = len(self.doc_len) if docs is None else len(docs)
        out = np.zeros(n, dtype=np.int64)
        posting = self._postings.get(term)
        if posting is None:
            return out
        ids, freqs = posting
        if docs is None:
            out[ids] = freqs
            return out
        at = np.minimum(np.searchsorted(ids, docs), len(ids) - 1)
        found = ids[at] == docs
        out[found] = freqs[at[found]]
        return out

    def scores(self, terms: Sequence[str], docs: Sequence[int] | np.ndarray | None = None):
        """float64 BM25+ of ``terms`` (repeats count, as in rank-bm25) for ``docs`` (document
        numbers; every document when None): ``get_scores`` / ``get_batch_scores``' values."""
        bm25 = self.bm25
        if docs is not None:
            docs = np.asarray(docs, dtype=np.int64)
            if len(docs) and (docs.min() < 0 or docs.max() >= len(self.doc_len)):
                raise IndexError(f"document numbers outside 0..{len(self.doc_len) - 1}")
        doc_len = self.doc_len if docs is None else self.doc_len[docs]
        score = np.zeros(len(doc_len))
        for q in terms:
            q_freq = self._frequencies(q, docs)
            score += (bm25.idf.get(q) or 0) * (
                bm25.delta
                + (q_freq * (bm25.k1 + 1))
                / (bm25.k1 * (1 - bm25.b + bm25.b * doc_len / bm25.avgdl) + q_freq)
            )
        return score
