"""What every candidate stage of the index does, behind one interface.

A candidate stage finds the C pages a query's exact heatmaps are computed on. It holds one or
more vectors per page in a faiss index (faiss id // ``per_page`` = row position), restricts its
search to the pages a filter allows (an IDSelector), and follows the index's rows as pages are
added and deleted. ``RegionIndex`` reaches it only through this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Protocol

import faiss
import numpy as np

from components.config import IndexParams
from components.index.device import to_cpu

if TYPE_CHECKING:
    from components.index.storage_modes.base import ReadPart, WritePart

CANDIDATES_FILE = "candidates.faiss"


class IndexRows(Protocol):
    """What a stage reads of the index it serves (``RegionIndex``): its rows' pooled vectors and cells."""

    pooled: np.ndarray

    def __len__(self) -> int: ...

    def decoded_cells(self, rows=...) -> np.ndarray: ...


def distinct_pages(ids: np.ndarray, per_page: int) -> np.ndarray:
    """Row positions of the pages that stage vector ids (best first, -1 = none) belong to, each
    page once, in the order of its best vector."""
    pages = ids[ids >= 0] // per_page
    _, first = np.unique(pages, return_index=True)
    return pages[np.sort(first)]


class CandidateStage(ABC):
    """A faiss index over per-page vectors that proposes candidate pages."""

    # What the stage holds: pooled | cells | centroids (faiss_stage) or stored (stored_stage)
    kind: str

    def __init__(self, params: IndexParams, grid: int, dim: int):
        self.params, self.grid, self.dim = params, int(grid), int(dim)
        self.faiss_index: faiss.Index | None = None
        self.device = "cpu"

    @property
    @abstractmethod
    def per_page(self) -> int:
        """Stage vectors per page: faiss id // this = row position."""

    @property
    def pooled_width(self) -> int:
        """Mean page vectors are kept only when they are the stage (they count in the byte budget)."""
        return self.dim if self.kind == "pooled" else 0

    def needs_rebuild(self) -> bool:
        """No faiss index yet, or an IVF one that could not be trained on too few vectors."""
        return self.faiss_index is None or (
            self.params.faiss == "ivf" and not self.faiss_index.is_trained
        )

    @abstractmethod
    def rebuild(
        self, index: IndexRows, exact: np.ndarray | None = None, train_lists: bool = True
    ) -> None:
        """A fresh stage over every page of ``index``; ``exact`` = float32 cells of all pages when at hand."""

    @abstractmethod
    def add(self, index: IndexRows, start: int, exact: np.ndarray) -> None:
        """Take in the pages ``index`` holds from row ``start`` on (``exact``: their float32 cells)."""

    def keep(self, rows: np.ndarray) -> None:
        """Rows were deleted (boolean mask of the kept ones); ``rebuild`` follows."""

    def search_params(self, allowed: np.ndarray | None) -> faiss.SearchParameters:
        """faiss search parameters of the configured kind, restricted to the ``allowed`` rows."""
        if allowed is None:
            sel = None
        elif self.kind == "pooled":
            sel = faiss.IDSelectorBatch(allowed)
        else:
            n = self.per_page
            ids = (allowed[:, None] * n + np.arange(n)[None, :]).ravel().astype(np.int64)
            sel = faiss.IDSelectorBatch(ids)
        kind = self.params.faiss
        if kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=self.params.hnsw.ef_search)
        elif kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.faiss_index.nprobe)
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
            params._sel = sel  # keep the selector referenced while faiss uses it
        return params

    @abstractmethod
    def pages(
        self, query: np.ndarray, candidates: int, allowed: np.ndarray | None, n_pages: int
    ) -> np.ndarray:
        """Row positions of up to ``candidates`` pages for ``query`` [1, dim] among ``allowed``
        (None: all ``n_pages``)."""

    def nbytes(self) -> int:
        """Serialized bytes of the stage (``stats``' ``candidates``)."""
        return (
            len(faiss.serialize_index(to_cpu(self.faiss_index, self.device)))
            if self.faiss_index is not None
            else 0
        )

    def stats(self) -> dict | None:
        """The stage's own figures for ``stats`` (``stage_lists``), if any."""
        return None

    def write_parts(self, write: WritePart) -> None:
        write(
            CANDIDATES_FILE, faiss.serialize_index(to_cpu(self.faiss_index, self.device)).tobytes()
        )

    @abstractmethod
    def read_parts(self, read: ReadPart, index: IndexRows, folder) -> None:
        """Restore the stage of a loaded ``index`` (its rows are already in place)."""

    def set_fast_scan(self, enabled: bool) -> bool:
        return False

    def set_stage_lists(self, enabled: bool) -> bool:
        return False
