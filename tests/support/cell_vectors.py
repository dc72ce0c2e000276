"""Synthetic encoded pages for index tests: unit cell vectors scattered around a few contents per page."""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered_pages(n: int, grid: int, dim: int, seed: int = 0, spread: float = 0.05) -> np.ndarray:
    """[n, grid², dim] pages whose cells lie around 3 page-specific contents (like blocks), ``spread`` apart."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((n, 3, dim)))
    assign = rng.integers(0, 3, size=(n, grid * grid))
    return unit(
        centres[np.arange(n)[:, None], assign] + spread * rng.standard_normal((n, grid * grid, dim))
    )


def queries_near_cells(pages: np.ndarray, n: int, seed: int, noise: float = 0.3) -> np.ndarray:
    """[n, dim] unit queries: random cells of random pages plus ``noise``."""
    rng = np.random.default_rng(seed)
    picked = pages[rng.integers(0, len(pages), n), rng.integers(0, pages.shape[1], n)]
    return unit(picked + noise * rng.standard_normal(picked.shape))


def two_page_docs(n: int, start: int = 0):
    """PageMeta of pages ``start``… in docs of two pages each, in three collections."""
    from components.index.region_index import PageMeta

    return [
        PageMeta(page_id=f"doc{i // 2}.pdf#{i % 2}", doc=f"doc{i // 2}.pdf", collection=f"c{i % 3}")
        for i in range(start, start + n)
    ]


def index_params(**kw):
    """IndexParams with the given keys set; a section's key as ``section__key`` or "section.key"
    (e.g. ``pq_residual__centroids=4``)."""
    from components.config import IndexParams

    return IndexParams().with_updates({key.replace("__", "."): value for key, value in kw.items()})


def stored_stage_params(**overrides):
    """IndexParams of a small pq_residual index whose candidate stage scans its 16 stored centroids per page."""
    base = {
        "storage": "pq_residual",
        "pq_residual.pq_m": 8,
        "pq_residual.centroids": 16,
        "pq_residual.coarse_bits": 4,
        "pq_residual.candidates": "stored",
        "candidates": 24,
        "pq_residual.train_cells": 4096,
    }
    return index_params(**{**base, **overrides})


def exact_candidates(index, query: np.ndarray, candidates: int) -> list:
    """The candidate pages of the stored stage's exact scan of every code, over the index's own
    stored codes (fast scan and inverted lists off for this call).

    Fast paths are compared with this rather than with a second build: two builds of the same
    cells are not bit-identical (one build in about 30 coded 850 centroid bytes differently), and
    the property under test is the same candidates from the same codes."""
    stage = index.stage
    was = stage.fast_scan
    stage.fast_scan = False  # the attribute, not set_fast_scan: no fast stage is built here
    try:
        return list(index.candidate_pages(query, candidates))
    finally:
        stage.fast_scan = was
