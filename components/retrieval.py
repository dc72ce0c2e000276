"""Encoded query -> candidate pages -> ranked regions: the retrieval step of the online path.

``RagEngine`` (components.rag.engine) answers on top of it; the reader's training retrieves its
``retrieved``/``top_k`` contexts with it alone (components.reader.data), so the reader needs no
import of the RAG engine that serves it.
"""

from __future__ import annotations

import numpy as np

from components.config import Params
from components.index.region_index import PageHit, RegionIndex
from components.regions.extract import Region, extract_regions
from components.regions.top_k import top_regions


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
        ``rag.region_term_weights: page`` and a question, their page-local re-weighting (shifted
        onto the ranking map's peak, so each map's peak is its hit's heatmap peak)."""
        rag = self.params.rag
        if question and rag.region_term_weights == "page":
            maps = self.index.region_heatmaps(hits, question, rag.lexical_weight, rag.lexical_scope)
        else:
            maps = [h.heatmap for h in hits]
        return {h.page_id: m for h, m in zip(hits, maps)}

    def regions_and_maps(
        self, hits: list[PageHit], k: int | None, question: str | None = None
    ) -> tuple[list[Region], dict[str, np.ndarray]]:
        """The ``k`` best regions across the hits' pages and the maps of the pages read for them.

        ``regions.rule`` decides whether a page's regions are its heatmap's components or its best
        BM25+ blocks. No region outscores its page map's peak, so pages are read in the hits'
        order in chunks of ``k`` and the reading stops once no page left can place a region in the
        top k (``top_regions``): the regions are those of every page, and the unread pages' maps
        and block scores are never computed (ADR 29).
        """
        text_blocks = self.params.regions.rule == "text_blocks" and bool(question)
        maps: dict[str, np.ndarray] = {}

        def regions_of(pages: list[int]) -> list[list[Region]]:
            chunk = [hits[i] for i in pages]
            maps.update(self.region_maps(chunk, question))
            positions = [self.index.position(h.page_id) for h in chunk]
            scores = (
                self.index.lexical.pages_block_scores(question, positions)
                if text_blocks
                else [None] * len(chunk)
            )
            return [
                extract_regions(
                    maps[h.page_id],
                    self.params.regions,
                    h.page_id,
                    blocks=self.index.meta(h.page_id).blocks,
                    text_scores=s,
                )
                for h, s in zip(chunk, scores)
            ]

        peaks = [float(h.heatmap.max()) for h in hits]
        regions, _ = top_regions(peaks, regions_of, k, chunk=max(k or len(hits), 1))
        return regions, maps

    def regions_for(
        self, hits: list[PageHit], k: int | None, question: str | None = None
    ) -> list[Region]:
        return self.regions_and_maps(hits, k, question)[0]
