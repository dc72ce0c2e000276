"""Encoded query -> candidate pages -> ranked regions: the retrieval step of the online path.

``RagEngine`` (components.rag.engine) answers on top of it; the reader's training retrieves its
``retrieved``/``top_k`` contexts with it alone (components.reader.data), so the reader needs no
import of the RAG engine that serves it.
"""

from __future__ import annotations

import numpy as np

from components.config import Params
from components.index.region_index import PageHit, RegionIndex
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
            query,
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
