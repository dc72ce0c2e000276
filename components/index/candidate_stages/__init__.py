"""The candidate stages of the index, behind ``CandidateStage``: a faiss index over vectors derived
from the cells (``faiss_stage``) or pq_residual's scan of its stored page centroids (``stored_stage``)."""

from __future__ import annotations

from components.config import IndexParams
from components.index.candidate_stages.base import CandidateStage, distinct_pages
from components.index.candidate_stages.faiss_stage import FaissStage
from components.index.candidate_stages.stored_stage import (
    FAST_SCAN_FIRST_FETCH,
    FAST_SCAN_OVERFETCH,
    StoredCentroidStage,
)
from components.index.storage_modes import PqResidualStorage, StorageMode


def candidate_stage(params: IndexParams, grid: int, dim: int, store: StorageMode) -> CandidateStage:
    """The (empty) stage ``params`` configure over the cells ``store`` holds."""
    if isinstance(store, PqResidualStorage) and params.pq_residual.candidates == "stored":
        return StoredCentroidStage(params, grid, dim, store)
    return FaissStage(params, grid, dim)


__all__ = [
    "FAST_SCAN_FIRST_FETCH",
    "FAST_SCAN_OVERFETCH",
    "CandidateStage",
    "FaissStage",
    "StoredCentroidStage",
    "candidate_stage",
    "distinct_pages",
]
