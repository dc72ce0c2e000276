"""The candidate stage over vectors derived from the cells (``index.candidate_vectors``), in a faiss
index of the configured kind (``index.faiss``: flat | hnsw | ivf, sections ``index.hnsw``, ``index.ivf``).

pooled     one mean vector per page (stored as ``pooled.npy``, so they count in the byte budget);
cells      every (decoded) cell;
centroids  ``centroids_per_page`` k-means centroids of each page's cells, as 8-bit scalar codes (ADR 7).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import faiss
import numpy as np

from components.index.candidate_stages.base import (
    CANDIDATES_FILE,
    CandidateStage,
    IndexRows,
    distinct_pages,
)
from components.index.device import to_device
from components.index.errors import IndexFormatError
from components.index.summaries import page_centroids

if TYPE_CHECKING:
    from components.index.storage_modes.base import ReadPart


class FaissStage(CandidateStage):
    def __init__(self, params, grid: int, dim: int):
        super().__init__(params, grid, dim)
        self.kind = params.candidate_vectors

    @property
    def per_page(self) -> int:
        if self.kind == "pooled":
            return 1
        if self.kind == "centroids":
            return min(self.params.centroids_per_page, self.grid * self.grid)
        return self.grid * self.grid

    def _nlist(self, n_train: int) -> int:
        # nlist cannot exceed the training points; faiss wants ~39 points per list.
        return max(1, min(self.params.ivf.nlist, n_train // 39 or 1))

    def _new_index(self, train: np.ndarray) -> faiss.Index:
        p = self.params
        if self.kind == "centroids":
            return self._new_sq8_index(train)
        if p.faiss == "flat":
            return faiss.IndexFlatIP(self.dim)
        if p.faiss == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, p.hnsw.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = p.hnsw.ef_search
            return index
        nlist = self._nlist(len(train))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(train))
        index.nprobe = min(p.ivf.nprobe, nlist)
        # No own_fields: faiss's Python wrapper already keeps ``quantizer`` referenced by ``index``
        # (setting own_fields too frees it twice at exit).
        return index

    def _new_sq8_index(self, train: np.ndarray) -> faiss.Index:
        """Centroid vectors stored as 8-bit scalar codes (dim bytes each): K of them per page must
        fit the compressed byte budget next to the cells (ADR 7)."""
        p = self.params
        if p.faiss == "flat":
            spec = "SQ8"
        elif p.faiss == "hnsw":
            spec = f"HNSW{p.hnsw.m},SQ8"
        else:
            spec = f"IVF{self._nlist(len(train))},SQ8"
        index = faiss.index_factory(self.dim, spec, faiss.METRIC_INNER_PRODUCT)
        if len(train):
            index.train(np.ascontiguousarray(train, dtype=np.float32))
        if p.faiss == "hnsw":
            faiss.downcast_index(index).hnsw.efSearch = p.hnsw.ef_search
        elif p.faiss == "ivf":
            faiss.extract_index_ivf(index).nprobe = min(
                p.ivf.nprobe, faiss.extract_index_ivf(index).nlist
            )
        return index

    def vectors(
        self, index: IndexRows, positions: np.ndarray | None = None, exact: np.ndarray | None = None
    ) -> np.ndarray:
        """Stage vectors of the given rows; ``exact`` = their float32 cells when at hand (add)."""
        if self.kind == "pooled":
            return index.pooled if positions is None else index.pooled[positions]
        sel = slice(None) if positions is None else positions
        if self.kind == "centroids":
            # Not stored separately (budget): from the exact cells on add, from the stored cells on rebuilds.
            cells = exact if exact is not None else index.decoded_cells(sel)
            return np.ascontiguousarray(page_centroids(cells, self.per_page).reshape(-1, self.dim))
        return np.ascontiguousarray(index.decoded_cells(sel).reshape(-1, self.dim))

    def rebuild(
        self, index: IndexRows, exact: np.ndarray | None = None, train_lists: bool = True
    ) -> None:
        vectors = self.vectors(index, exact=exact)
        stage = self._new_index(vectors)
        if len(vectors):
            stage.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.faiss_index, self.device = to_device(stage, self.params.faiss)

    def add(self, index: IndexRows, start: int, exact: np.ndarray) -> None:
        new_rows = np.arange(start, len(index))
        self.faiss_index.add(self.vectors(index, new_rows, exact=exact).astype(np.float32))

    def pages(
        self, query: np.ndarray, candidates: int, allowed: np.ndarray | None, n_pages: int
    ) -> np.ndarray:
        params = self.search_params(allowed)
        if self.kind == "pooled":
            _, ids = self.faiss_index.search(query, candidates, params=params)
            ids = ids[0]
            return ids[ids >= 0]
        # Several vectors per page: over-fetch, map them to pages, keep the first C distinct pages.
        # Centroids: C*K vectors hold at least C distinct pages (at most K per page), so C is exact.
        n = self.per_page
        fetch = min(self.faiss_index.ntotal, candidates * (n if self.kind == "centroids" else 8))
        _, ids = self.faiss_index.search(query, fetch, params=params)
        return distinct_pages(ids[0], n)[:candidates]

    def read_parts(self, read: ReadPart, index: IndexRows, folder) -> None:
        stage = read(CANDIDATES_FILE, lambda p: faiss.read_index(str(p)))
        if self.params.faiss == "hnsw":
            faiss.downcast_index(stage).hnsw.efSearch = self.params.hnsw.ef_search
        if stage.ntotal != len(index) * self.per_page:
            raise IndexFormatError(
                f"{folder}: candidate stage and pages disagree; rebuild the index"
            )
        self.faiss_index, self.device = to_device(stage, self.params.faiss)
