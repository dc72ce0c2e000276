"""Encoded query -> candidate pages -> ranked regions: the retrieval step of the online path.

``RagEngine`` (components.rag.engine) answers on top of it; the reader's training retrieves its
``retrieved``/``top_k`` contexts with it alone (components.reader.data), so the reader needs no
import of the RAG engine that serves it.
"""

from __future__ import annotations

import threading

import numpy as np

from components.config import Params
from components.index.region_index import PageHit, RegionIndex, TokenQuery
from components.regions.extract import Region, extract_regions, rank_regions


class RegionRetrieval:
    def __init__(self, retriever, index: RegionIndex, params: Params):
        if (
            retriever is not None
            and getattr(retriever, "fingerprint", index.fingerprint) != index.fingerprint
        ):
            raise ValueError(
                "the retriever's fingerprint differs from the one that built the index: rebuild the index"
            )
        self.retriever, self.index, self.params = retriever, index, params
        # The served page-score rule is the one the retriever was trained with (its export's
        # page_score; ADR 28): maxsim scores pages by the question's token vectors.
        self.page_score = getattr(retriever, "page_score", "max_cell")
        self._tokens: dict[str, np.ndarray] = {}  # question -> token vectors (maxsim only)
        self._tokens_lock = threading.Lock()

    # ------------------------------------------------------------------ query (ADR 28)
    def query_tokens(self, question: str) -> np.ndarray:
        """float32 [L, dim]: the question's token vectors (kept for the last questions, so the
        vector and the search of one question share one encoder pass)."""
        tokens = self._tokens.get(question)
        if tokens is None:
            from components.model.encode import encode_query_token_matrices

            tokens = encode_query_token_matrices(self.retriever, [question])[0]
            with self._tokens_lock:  # a served engine may answer from several threads
                if len(self._tokens) >= 64:
                    self._tokens.pop(next(iter(self._tokens)))
                self._tokens[question] = tokens
        return tokens

    def text_query_vector(self, question: str) -> np.ndarray:
        """The question's query vector: the mean of its token vectors."""
        if self.page_score == "maxsim":
            return self.query_tokens(question).mean(0)
        from components.model.encode import encode_queries

        return encode_queries(self.retriever, [question])[0]

    def index_query(self, query: np.ndarray, question: str | None) -> np.ndarray | TokenQuery:
        """What the index scores pages against: under ``maxsim``, the question's token vectors when
        ``query`` is their mean; otherwise (max_cell, or an image / text + image query vector,
        which has no token vectors) the vector itself, scored by max cell."""
        if self.page_score != "maxsim" or not question or not question.strip():
            return query
        tokens = self.query_tokens(question)
        if not np.allclose(tokens.mean(0), np.asarray(query, dtype=np.float32), atol=1e-4):
            return query
        return TokenQuery(tokens, self.params.rag.maxsim_heatmap)

    # ------------------------------------------------------------------ search
    def search_vector(
        self,
        query: np.ndarray,
        k_pages: int | None = None,
        filters: dict | None = None,
        question: str | None = None,
    ) -> list[PageHit]:
        """Candidate pages with their (dense + lexical when ``question`` is given) heatmaps."""
        c, rag = self.params.index.candidates, self.params.rag
        return self.index.search(
            self.index_query(query, question),
            k_pages or c,
            candidates=c,
            filters=filters,
            query_text=question,
            lexical_weight=rag.lexical_weight,
            lexical_candidates=rag.lexical_candidates,
            lexical_scope=rag.lexical_scope,
        )

    def region_maps(
        self, hits: list[PageHit], question: str | None = None
    ) -> dict[str, np.ndarray]:
        """The heatmaps regions are extracted from: the ranking maps, or, with
        ``rag.region_term_weights: page`` and a question, their page-local re-weighting."""
        rag = self.params.rag
        if question and rag.region_term_weights == "page":
            maps = self.index.region_heatmaps(hits, question, rag.lexical_weight, rag.lexical_scope)
        else:
            maps = [h.heatmap for h in hits]
        return {h.page_id: m for h, m in zip(hits, maps)}

    def _ranked_regions(
        self, maps: dict[str, np.ndarray], k: int, question: str | None = None
    ) -> list[Region]:
        """Every candidate page's regions, best first across pages (``regions.rule`` decides
        whether a page's regions are its heatmap's components or its best BM25+ blocks)."""
        text_blocks = self.params.regions.rule == "text_blocks" and bool(question)
        by_page = {}
        for pid, heat in maps.items():
            scores = (
                self.index.lexical.block_scores(question, self.index.position(pid))
                if text_blocks
                else None
            )
            by_page[pid] = extract_regions(
                heat,
                self.params.regions,
                pid,
                blocks=self.index.meta(pid).blocks,
                text_scores=scores,
            )
        return rank_regions(by_page, k)

    def regions_for(self, hits: list[PageHit], k: int, question: str | None = None) -> list[Region]:
        return self._ranked_regions(self.region_maps(hits, question), k, question)
