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
from components.regions.extract import Region, extract_regions
from components.regions.snap import block_cell_masks
from components.regions.top_k import top_regions

# Pages whose block masks are kept (~6 KB a page of 22 blocks on a 16 x 16 grid: ~24 MB at most).
_BLOCK_MASK_PAGES = 4096


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
        self._block_masks: dict[str, tuple[list, list[np.ndarray]]] = {}  # page -> (blocks, masks)
        self._block_masks_lock = threading.Lock()

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

    def block_masks(self, page_id: str) -> list[np.ndarray]:
        """The page's layout blocks as read-only cell masks, rasterised once per page rather than
        once per question (1.3 ms of a real question's 30, ADR 29). A page indexed again brings
        a new ``blocks`` list, and the identity check then rasterises that one."""
        blocks = self.index.meta(page_id).blocks
        entry = self._block_masks.get(page_id)
        if entry is not None and entry[0] is blocks:
            return entry[1]
        masks = block_cell_masks(blocks, self.index.grid)
        for mask in masks:
            mask.setflags(write=False)  # shared by every question's regions: never edited
        with self._block_masks_lock:
            if len(self._block_masks) >= _BLOCK_MASK_PAGES:
                self._block_masks.pop(next(iter(self._block_masks)))
            self._block_masks[page_id] = (blocks, masks)
        return masks

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
        """The heatmaps regions are extracted from: with a question, each ranking map with its
        lexical part re-weighted (``rag.region_term_weights``: page-local term weights;
        ``regions.lexical_weight``: the term evidence's weight, ADR 31) and shifted onto the
        ranking map's peak, so each map's peak is its hit's heatmap peak; else the ranking maps."""
        rag = self.params.rag
        if question:
            maps = self.index.region_heatmaps(
                hits,
                question,
                rag.lexical_weight,
                rag.lexical_scope,
                self.params.region_lexical_weight(),
                rag.region_term_weights,
            )
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
        uses_blocks = text_blocks or self.params.regions.snap == "block"
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
                    block_masks=self.block_masks(h.page_id) if uses_blocks else None,
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
