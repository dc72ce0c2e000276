"""The region index (docs/design.md §6): stored per-page cell vectors + a candidate stage.

Search runs in two steps. A candidate stage (candidate_stages/: a faiss index over pooled page
vectors, every cell or per-page centroids, or pq_residual's stored centroids) finds C candidate
pages; only those candidates get an exact heatmap (stored cells · query), and a page's score is its
best cell. Metadata filters restrict the candidate search itself (an IDSelector), so a filtered
query still returns up to k matching pages instead of k minus the filtered ones.

How the cells are stored is the storage mode's business (storage_modes/: float16, pq, binary,
pq_residual, each with its own ``index`` section); how the index is saved and loaded, in
versioned folders with a manifest, is storage.py's.

Over 400 lines on purpose: building, searching and maintaining one index share its state (pages,
stored cells, candidate stage, lexical channel); the storage codecs, candidate stages and
persistence already live in their own modules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from components.config import IndexParams
from components.index.candidate_stages import (
    FAST_SCAN_FIRST_FETCH,
    FAST_SCAN_OVERFETCH,
    CandidateStage,
    candidate_stage,
)
from components.index.errors import FingerprintMismatchError, IndexError_, IndexFormatError
from components.index.lexical import LexicalChannel
from components.index.maxsim import TokenQuery, candidate_vector, maxsim_maps
from components.index.pages import PageHit, PageMeta
from components.index.storage import FORMAT_VERSION, load_index, save_index
from components.index.storage_modes import StorageMode, storage_mode
from components.index.storage_modes.binary import binary_scores
from components.index.version_folders import CURRENT

# Names other modules and scripts import from here.
__all__ = [
    "CURRENT",
    "FAST_SCAN_FIRST_FETCH",
    "FAST_SCAN_OVERFETCH",
    "FORMAT_VERSION",
    "FingerprintMismatchError",
    "IndexError_",
    "IndexFormatError",
    "PageHit",
    "PageMeta",
    "RegionIndex",
    "TokenQuery",
    "binary_scores",
]


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class RegionIndex:
    def __init__(self, params: IndexParams, grid: int, dim: int, fingerprint: str):
        self.params = params
        self.grid, self.dim, self.fingerprint = int(grid), int(dim), str(fingerprint)
        self.metas: list[PageMeta] = []
        self.storage_mode: StorageMode = storage_mode(params, self.grid, self.dim)
        self.stage: CandidateStage = candidate_stage(params, self.grid, self.dim, self.storage_mode)
        self.pooled = np.zeros((0, self.stage.pooled_width), dtype=np.float32)
        self._pos: dict[str, int] = {}
        self._lexical: LexicalChannel | None = None  # built from the text layers on first use
        self._pictures = (
            None  # PictureIndex over the stored picture descriptors, built on first use
        )

    @property
    def cells(self) -> np.ndarray:
        """The stored cell codes [N, G*G, ...] (their layout is the storage mode's)."""
        return self.storage_mode.codes

    @property
    def device(self) -> str:
        """Where the candidate stage runs (cpu | gpu)."""
        return self.stage.device

    # ---------------------------------------------------------------- construction
    @classmethod
    def build(
        cls,
        metas: Iterable[Any],
        cell_vectors: np.ndarray,
        params: IndexParams,
        fingerprint: str,
        grid: int | None = None,
        seed: int = 0,
    ) -> RegionIndex:
        """A new index from page metadata (PageMeta / dict / Page) and float32 cells [N, G*G, dim]."""
        cell_vectors = np.asarray(cell_vectors, dtype=np.float32)
        if cell_vectors.ndim != 3:
            raise ValueError(f"cell_vectors must be [N, G*G, dim], got shape {cell_vectors.shape}")
        n_cells, dim = cell_vectors.shape[1:]
        grid = grid or math.isqrt(n_cells)
        if grid * grid != n_cells:
            raise ValueError(f"{n_cells} cells per page is not a square grid")
        index = cls(params, grid, dim, fingerprint)
        index.storage_mode.train(cell_vectors, seed)
        index.add(metas, cell_vectors)
        return index

    def decoded_cells(self, rows=slice(None)) -> np.ndarray:
        """float32 cells of the given rows back from storage (rebuilds, the bench and tests; search uses _scores)."""
        return self.storage_mode.decode(rows)

    def _scores(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Exact cell scores [len(positions), G*G] of ``query`` against the stored cells."""
        return self.storage_mode.scores(positions, query)

    # ---------------------------------------------------------------- maintenance
    def add(self, metas: Iterable[Any], cell_vectors: np.ndarray) -> int:
        """Append pages without rebuilding; returns how many were added. Duplicate ids are an error."""
        metas = [PageMeta.coerce(m) for m in metas]
        cell_vectors = np.asarray(cell_vectors, dtype=np.float32)
        expected = (len(metas), self.grid * self.grid, self.dim)
        if cell_vectors.shape != expected:
            raise ValueError(f"cell_vectors shape {cell_vectors.shape} != expected {expected}")
        if not np.isfinite(cell_vectors).all():
            raise ValueError("cell_vectors hold NaN or inf")
        seen = set(self._pos)
        for m in metas:
            if m.page_id in seen:
                raise ValueError(
                    f"page {m.page_id!r} is already in the index (delete its doc first)"
                )
            seen.add(m.page_id)
        if not metas:
            return 0
        if not self.storage_mode.trained:
            self.storage_mode.train(cell_vectors, 0)
        start = len(self.metas)
        self.storage_mode.append(cell_vectors)
        self.pooled = np.concatenate(
            [self.pooled, _normalise(cell_vectors.mean(1))[:, : self.stage.pooled_width]]
        )
        self.metas.extend(metas)
        self._pos = {m.page_id: i for i, m in enumerate(self.metas)}
        self._lexical = None
        self._pictures = None
        if self.stage.needs_rebuild():
            self.stage.rebuild(self, exact=cell_vectors if start == 0 else None)
        else:
            self.stage.add(self, start, cell_vectors)
        return len(metas)

    def delete_doc(self, doc: str) -> int:
        """Remove every page of ``doc``; returns the number removed (0 for an unknown doc)."""
        keep = np.array([m.doc != doc for m in self.metas], dtype=bool)
        removed = int((~keep).sum())
        if removed == 0:
            return 0
        self.storage_mode.keep(keep)
        self.stage.keep(keep)
        self.pooled = self.pooled[keep]
        self.metas = [m for m, k in zip(self.metas, keep) if k]
        self._pos = {m.page_id: i for i, m in enumerate(self.metas)}
        self._lexical = None
        self._pictures = None
        # faiss ids are row positions, which shift: rebuild the (small) candidate stage.
        self.stage.rebuild(self)
        return removed

    # ---------------------------------------------------------------- search
    def __len__(self) -> int:
        return len(self.metas)

    @property
    def page_ids(self) -> list[str]:
        return [m.page_id for m in self.metas]

    def meta(self, page_id: str) -> PageMeta:
        return self.metas[self._pos[page_id]]

    def position(self, page_id: str) -> int:
        """The page's row in the index (its position in ``page_ids``, the lexical channel's pages)."""
        return self._pos[page_id]

    def has_page(self, page_id: str) -> bool:
        return page_id in self._pos

    def cell_vectors(self, page_id: str) -> np.ndarray:
        """float32 [G*G, dim]: one page's stored cell vectors (decompressed), for the reader's visual tokens."""
        return self.decoded_cells([self._pos[page_id]])[0]

    def _allowed(self, filters: dict | None) -> np.ndarray | None:
        """Row positions that pass the filters (None = no filter). Lists mean "any of"; tags need all."""
        if not filters:
            return None
        unknown = set(filters) - {"doc", "collection", "tags"}
        if unknown:
            raise ValueError(f"unknown filter keys {sorted(unknown)} (doc, collection, tags)")

        def as_set(value) -> set[str]:
            return {value} if isinstance(value, str) else set(value)

        docs = as_set(filters["doc"]) if filters.get("doc") is not None else None
        colls = as_set(filters["collection"]) if filters.get("collection") is not None else None
        tags = as_set(filters["tags"]) if filters.get("tags") else None
        keep = [
            i
            for i, m in enumerate(self.metas)
            if (docs is None or m.doc in docs)
            and (colls is None or m.collection in colls)
            and (tags is None or tags <= set(m.tags))
        ]
        return np.asarray(keep, dtype=np.int64)

    def candidate_pages(
        self, query: np.ndarray, candidates: int, filters: dict | None = None
    ) -> np.ndarray:
        """Row positions of up to ``candidates`` pages from the candidate stage (filters applied inside)."""
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        allowed = self._allowed(filters)
        if allowed is not None and len(allowed) <= candidates:
            return allowed  # the filter alone is already a candidate set this small: score them all
        if len(self.metas) <= candidates and allowed is None:
            return np.arange(len(self.metas))
        return self.stage.pages(query, candidates, allowed, len(self.metas))

    def set_fast_scan(self, enabled: bool) -> bool:
        """Switch the stored stage's fast scan on or off for this instance (the bench compares both);
        returns whether it is on (it stays off where it does not apply: no stored SQ4 stage, GPU)."""
        if self.stage.kind != "stored":
            return False
        section = self.params.pq_residual.model_copy(update={"fast_scan": bool(enabled)})
        self.params = self.params.model_copy(update={"pq_residual": section})
        return self.stage.set_fast_scan(enabled)

    def set_stage_lists(self, enabled: bool) -> bool:
        """Use the inverted lists (ADR 17) or scan every code (ADR 16's shards) for this instance (the
        bench compares both); returns whether the lists are in use."""
        return self.stage.set_stage_lists(enabled)

    def heatmaps(self, positions: np.ndarray, query: np.ndarray | TokenQuery) -> np.ndarray:
        """Exact [len(positions), G, G] heatmaps of ``query`` on the given pages (a TokenQuery:
        MaxSim's heatmaps, whose peaks are the pages' MaxSim scores; maxsim.py)."""
        if isinstance(query, TokenQuery):
            return maxsim_maps(self.storage_mode, np.asarray(positions), query, self.grid)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dim:
            raise ValueError(f"query has {query.shape[0]} dims, the index holds {self.dim}")
        scores = self._scores(np.asarray(positions, dtype=np.int64), query)
        return scores.reshape(-1, self.grid, self.grid).astype(np.float32, copy=False)

    def heatmap(
        self,
        page_id: str,
        query: np.ndarray | TokenQuery,
        query_text: str | None = None,
        lexical_weight: float = 0.0,
        lexical_scope: str = "cell",
        term_weights: str = "corpus",
        region_weight: float | None = None,
    ) -> np.ndarray:
        """One page's heatmap, fused with the lexical channel exactly as ``search`` does
        (``term_weights="page"`` or a ``region_weight`` other than ``lexical_weight``: the map
        ``region_heatmaps`` picks regions from)."""
        w_region = lexical_weight if region_weight is None else region_weight
        return self.heatmaps_at_region_weights(
            page_id, query, query_text, lexical_weight, lexical_scope, term_weights, [w_region]
        )[1][0]

    def heatmaps_at_region_weights(
        self,
        page_id: str,
        query: np.ndarray | TokenQuery,
        query_text: str | None,
        lexical_weight: float,
        lexical_scope: str,
        term_weights: str,
        region_weights: list[float],
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The page's dense map without term evidence (the map ``regionops_dense`` serves) and
        ``heatmap`` at each of ``region_weights``, the dense and lexical maps computed once (the
        region tuner tries several weights, and the dense system's settings, on every val page)."""
        positions = np.array([self._pos[page_id]])
        dense = self.heatmaps(positions, query)[0]
        fused, local, out = dense, None, []
        if query_text and lexical_weight > 0:
            fused = (
                dense
                + lexical_weight * self.lexical.heatmaps(query_text, positions, lexical_scope)[0]
            )
        for w_region in region_weights:
            if not query_text or (lexical_weight <= 0 and w_region <= 0):
                out.append(dense)
            elif term_weights == "corpus" and w_region == lexical_weight:
                out.append(fused)
            else:
                if local is None:
                    local = self.lexical.heatmaps(
                        query_text, positions, lexical_scope, term_weights
                    )[0]
                out.append(self._rebase(fused, dense + w_region * local))
        return dense, out

    def region_heatmaps(
        self,
        hits: list[PageHit],
        query_text: str,
        lexical_weight: float,
        lexical_scope: str,
        region_weight: float | None = None,
        term_weights: str = "page",
    ) -> list[np.ndarray]:
        """The hits' maps for picking regions on each page: the ranking map (dense +
        ``lexical_weight`` x corpus-weighted terms) with its lexical part replaced by
        ``region_weight`` (default ``lexical_weight``) x the ``term_weights`` lexical map.

        Each map is shifted so that its peak equals the page's score: pages keep their corpus
        ranking (the top region of each page scores as its page does) while the regions within
        a page are told apart by the terms that are rare on that page (``page``) and by as much
        term evidence as ``region_weight`` gives them (ADR 31).
        """
        w_region = lexical_weight if region_weight is None else region_weight
        same = w_region == lexical_weight
        if (
            not hits
            or not query_text
            or (same and (lexical_weight <= 0 or term_weights == "corpus"))
        ):
            return [h.heatmap for h in hits]
        positions = np.array([self._pos[h.page_id] for h in hits])
        corpus = self.lexical.heatmaps(query_text, positions, lexical_scope)
        local = (
            corpus
            if term_weights == "corpus"
            else self.lexical.heatmaps(query_text, positions, lexical_scope, term_weights)
        )
        if same:  # the expression of every earlier release: the same maps bit for bit
            return [
                self._rebase(h.heatmap, h.heatmap + lexical_weight * (loc - cor))
                for h, cor, loc in zip(hits, corpus, local)
            ]
        return [
            self._rebase(h.heatmap, h.heatmap + (w_region * loc - lexical_weight * cor))
            for h, cor, loc in zip(hits, corpus, local)
        ]

    @staticmethod
    def _rebase(ranked: np.ndarray, local: np.ndarray) -> np.ndarray:
        return (local + (float(ranked.max()) - float(local.max()))).astype(np.float32)

    @property
    def lexical(self) -> LexicalChannel:
        """BM25 + term-to-cell maps over the stored text layers (derived, so never persisted)."""
        if self._lexical is None:
            self._lexical = LexicalChannel.from_metas(self.metas, self.grid)
        return self._lexical

    @property
    def pictures(self):
        """Every stored picture, searchable by an image query (derived, so never persisted on its own)."""
        if self._pictures is None:
            from components.index.pictures import PictureIndex

            self._pictures = PictureIndex(self.metas)
        return self._pictures

    def search(
        self,
        query_vec: np.ndarray | TokenQuery,
        k_pages: int,
        candidates: int | None = None,
        filters: dict | None = None,
        exhaustive: bool = False,
        query_text: str | None = None,
        lexical_weight: float = 0.0,
        lexical_candidates: int = 0,
        lexical_scope: str = "cell",
    ) -> list[PageHit]:
        """Top ``k_pages`` pages by their heatmap's peak among the candidate pages: the exact
        max-cell score for a query vector, the MaxSim score for a ``TokenQuery`` (whose mean
        vector finds the candidates).

        Candidates come from the faiss stage and, when ``query_text`` is given, also from
        BM25 (``lexical_candidates`` pages). With ``lexical_weight`` > 0 each heatmap is
        the dense cell scores plus ``lexical_weight`` times the query terms' idf share
        printed in each cell, or in each cell's layout block (``lexical_scope``).
        """
        if not self.metas or k_pages <= 0:
            return []
        query = candidate_vector(query_vec)
        use_lexical = bool(query_text) and lexical_weight > 0
        if exhaustive:
            allowed = self._allowed(filters)
            positions = np.arange(len(self.metas)) if allowed is None else allowed
        else:
            c = max(candidates or self.params.candidates, k_pages)
            positions = self.candidate_pages(query, c, filters)
            if use_lexical and lexical_candidates > 0:
                sparse = self.lexical.top_pages(
                    query_text, lexical_candidates, self._allowed(filters)
                )
                positions = np.concatenate([positions, sparse[~np.isin(sparse, positions)]])
        if len(positions) == 0:
            return []
        maps = self.heatmaps(positions, query_vec)
        if use_lexical:
            maps = maps + lexical_weight * self.lexical.heatmaps(
                query_text, positions, lexical_scope
            )
        page_scores = maps.reshape(len(positions), -1).max(1)
        order = np.argsort(-page_scores, kind="stable")[:k_pages]
        return [
            PageHit(self.metas[positions[i]].page_id, float(page_scores[i]), maps[i]) for i in order
        ]

    # ---------------------------------------------------------------- persistence
    def stats(self) -> dict:
        n = len(self.metas)
        meta_bytes = len(json.dumps([asdict(m) for m in self.metas]).encode())
        per = (lambda b: round(b / n, 1)) if n else (lambda b: 0.0)
        rows = self.storage_mode.row_bytes()
        bytes_per_page = {
            "cells": per(rows["cells"]),
            "coarse": per(rows.get("coarse", 0)),
            "pooled": per(self.pooled.nbytes),
            "candidates": per(self.stage.nbytes()),
            "codebook": per(self.storage_mode.codebook_bytes()),
            "text_layer": per(meta_bytes),
        }
        # Vector payload = what the storage mode costs (cells, candidate stage, pooled, codebook).
        bytes_per_page["vectors_total"] = round(
            sum(v for k, v in bytes_per_page.items() if k != "text_layer"), 1
        )
        return {
            "pages": n,
            "docs": len({m.doc for m in self.metas}),
            "pictures": sum(len(m.pictures) for m in self.metas),
            "storage": self.params.storage,
            "faiss": self.params.faiss,
            "candidate_vectors": self.stage.kind,
            "stage_lists": self.stage.stats(),
            "candidates": self.params.candidates,
            "grid": self.grid,
            "dim": self.dim,
            "device": self.device,
            "fingerprint": self.fingerprint,
            "bytes_per_page": bytes_per_page,
        }

    def save(self, out_dir: Path) -> Path:
        """Write a new version folder and atomically make it the live one (storage.save_index)."""
        return save_index(self, out_dir)

    @classmethod
    def load(
        cls, index_dir: Path, expected_fingerprint: str | None = None, verify: bool = True
    ) -> RegionIndex:
        """Load the live version of ``index_dir`` (storage.load_index); damage raises
        ``IndexFormatError`` naming the file."""
        return load_index(cls, index_dir, expected_fingerprint, verify)
