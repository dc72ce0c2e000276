"""Heatmap -> regions (DESIGN §5): threshold, connected components, tight boxes, scores, ranking.

Also holds ``box_to_cells``, the one rasterisation of a normalised box onto the G×G grid,
shared by the local training loss and region evaluation so both agree on which cells a box covers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from components.config import RegionParams

# Boxes that end exactly on a cell edge must not spill into the next cell through float noise.
_EDGE_EPS = 1e-6


@dataclass
class Region:
    page_id: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 normalised, origin top-left
    score: float
    n_cells: int
    cells: np.ndarray = field(repr=False)  # bool [G, G], True where the region's cells are

    def to_dict(self) -> dict:
        return {"page_id": self.page_id, "box": [round(v, 6) for v in self.box], "score": self.score, "n_cells": self.n_cells}


def box_to_cells(box, grid: int) -> np.ndarray:
    """Cells (bool [G, G], rows = y) that a normalised box overlaps; always at least one cell."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (0.0 <= x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0):
        raise ValueError(f"box {list(box)} is not a normalised [x0, y0, x1, y1] box")

    def span(lo: float, hi: float) -> tuple[int, int]:
        first = min(grid - 1, max(0, math.floor(lo * grid + _EDGE_EPS)))
        last = min(grid - 1, max(0, math.ceil(hi * grid - _EDGE_EPS) - 1))
        return first, max(first, last)  # a degenerate box still owns the cell it sits in

    c0, c1 = span(x0, x1)
    r0, r1 = span(y0, y1)
    mask = np.zeros((grid, grid), dtype=bool)
    mask[r0 : r1 + 1, c0 : c1 + 1] = True
    return mask


def cells_to_box(mask: np.ndarray, padding: int = 0) -> tuple[float, float, float, float]:
    """Tight normalised box around the True cells of ``mask``, grown by ``padding`` cells (clipped)."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("cells_to_box needs at least one cell")
    g_rows, g_cols = mask.shape
    r0, r1 = max(0, rows.min() - padding), min(g_rows - 1, rows.max() + padding)
    c0, c1 = max(0, cols.min() - padding), min(g_cols - 1, cols.max() + padding)
    return (c0 / g_cols, r0 / g_rows, (c1 + 1) / g_cols, (r1 + 1) / g_rows)


def threshold_mask(heatmap: np.ndarray, strategy: str, value: float) -> np.ndarray:
    """Salient cells: absolute (score >= value), relative (>= value * max) or quantile (top 1 - value)."""
    if strategy == "absolute":
        return heatmap >= value
    if strategy == "relative":
        peak = float(heatmap.max())
        # Scores are cosines and can be negative: "relative to max" is measured from the page minimum.
        floor = float(heatmap.min())
        return heatmap >= floor + value * (peak - floor)
    if strategy == "quantile":
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"quantile threshold_value must be in [0, 1], got {value}")
        return heatmap >= np.quantile(heatmap, value)
    raise ValueError(f"unknown threshold strategy {strategy!r} (absolute | relative | quantile)")


def extract_regions(heatmap: np.ndarray, params: RegionParams, page_id: str = "") -> list[Region]:
    """Connected salient regions of one page's [G, G] cell-score heatmap, best first."""
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2 or heatmap.shape[0] != heatmap.shape[1]:
        raise ValueError(f"heatmap must be a square [G, G] array, got shape {heatmap.shape}")
    if not np.isfinite(heatmap).all():
        raise ValueError(f"heatmap of page {page_id!r} holds NaN or inf")
    mask = threshold_mask(heatmap, params.threshold, params.threshold_value)
    # Neighbour range r: cells up to r apart (Chebyshev) join one component, so small gaps are bridged.
    size = 2 * params.neighbour_range + 1
    labels, n = ndimage.label(mask, structure=np.ones((size, size), dtype=bool))
    regions = []
    for label in range(1, n + 1):
        cells = labels == label
        values = heatmap[cells]
        score = float(values.max() if params.score == "max" else values.mean())
        regions.append(Region(page_id, cells_to_box(cells, params.padding), score, int(cells.sum()), cells))
    regions.sort(key=lambda r: r.score, reverse=True)
    return regions[: params.max_regions_per_page]


def rank_regions(regions_by_page: dict[str, list[Region]] | list[list[Region]], k: int | None = None) -> list[Region]:
    """All pages' regions in one list by descending score (stable: ties keep page order)."""
    groups = regions_by_page.values() if isinstance(regions_by_page, dict) else regions_by_page
    ranked = sorted((r for group in groups for r in group), key=lambda r: r.score, reverse=True)
    return ranked if k is None else ranked[:k]
