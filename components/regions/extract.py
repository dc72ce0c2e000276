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
        return {
            "page_id": self.page_id,
            "box": [round(v, 6) for v in self.box],
            "score": self.score,
            "n_cells": self.n_cells,
        }


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


def label_components(mask: np.ndarray, neighbour_range: int) -> tuple[np.ndarray, int]:
    """Connected components where cells up to ``neighbour_range`` apart (Chebyshev) join one region.

    scipy.ndimage.label only takes 3x3 structuring elements, so range r is reached by dilating each
    salient cell to an r x r square (same anchor for all) and labelling 8-connected: two squares
    touch exactly when their cells are at most r apart. Labels are then read back on the mask.
    """
    if neighbour_range < 1:
        raise ValueError(f"neighbour_range must be >= 1, got {neighbour_range}")
    eight = np.ones((3, 3), dtype=bool)
    if neighbour_range == 1:
        return ndimage.label(mask, structure=eight)
    grown = ndimage.binary_dilation(
        mask, structure=np.ones((neighbour_range, neighbour_range), dtype=bool)
    )
    labels, _ = ndimage.label(grown, structure=eight)
    labels = np.where(mask, labels, 0)
    # Renumber 1..n in scan order so callers see contiguous labels.
    kept = np.unique(labels[labels > 0])
    remap = np.zeros(labels.max() + 1, dtype=labels.dtype)
    remap[kept] = np.arange(1, len(kept) + 1)
    return remap[labels], len(kept)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def merge_overlapping(groups: list[np.ndarray], padding: int = 0) -> list[np.ndarray]:
    """Union the cell masks whose (padded) boxes overlap, until no two boxes overlap.

    Components of an L or a ring can have boxes that overlap; returning both would hand the
    reader the same pixels twice.
    """
    groups = [g.copy() for g in groups]
    merged = True
    while merged:
        merged = False
        boxes = [cells_to_box(g, padding) for g in groups]
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if _overlap(boxes[i], boxes[j]):
                    groups[i] |= groups.pop(j)
                    merged = True
                    break
            if merged:
                break
    return groups


def extract_regions(heatmap: np.ndarray, params: RegionParams, page_id: str = "") -> list[Region]:
    """Connected salient regions of one page's [G, G] cell-score heatmap, best first."""
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2 or heatmap.shape[0] != heatmap.shape[1]:
        raise ValueError(f"heatmap must be a square [G, G] array, got shape {heatmap.shape}")
    if not np.isfinite(heatmap).all():
        raise ValueError(f"heatmap of page {page_id!r} holds NaN or inf")
    mask = threshold_mask(heatmap, params.threshold, params.threshold_value)
    labels, n = label_components(mask, params.neighbour_range)
    groups = [labels == label for label in range(1, n + 1)]
    if params.merge_overlapping:
        groups = merge_overlapping(groups, params.padding)
    regions = []
    for cells in groups:
        values = heatmap[cells]
        score = float(values.max() if params.score == "max" else values.mean())
        regions.append(
            Region(page_id, cells_to_box(cells, params.padding), score, int(cells.sum()), cells)
        )
    regions.sort(key=lambda r: r.score, reverse=True)
    return regions[: params.max_regions_per_page]


def rank_regions(
    regions_by_page: dict[str, list[Region]] | list[list[Region]], k: int | None = None
) -> list[Region]:
    """All pages' regions in one list by descending score (stable: ties keep page order)."""
    groups = regions_by_page.values() if isinstance(regions_by_page, dict) else regions_by_page
    ranked = sorted((r for group in groups for r in group), key=lambda r: r.score, reverse=True)
    return ranked if k is None else ranked[:k]


# Candidate settings searched by ``tune_region_params`` (validation split only, never test).
TUNING_GRID: dict[str, tuple[float, ...]] = {
    "absolute": (0.2, 0.3, 0.4, 0.5, 0.6),
    "relative": (0.5, 0.6, 0.7, 0.8, 0.9),
    "quantile": (0.8, 0.9, 0.95, 0.98),
}


def tune_region_params(
    heatmaps: list[np.ndarray],
    gold_boxes: list[tuple[float, float, float, float]],
    base: RegionParams,
    iou_hit: float = 0.5,
) -> tuple[RegionParams, list[dict]]:
    """Pick threshold strategy/value, neighbour range, padding and score by top-region hit@1
    (IoU >= ``iou_hit``) on gold-page heatmaps, ties broken by mean IoU.

    Call it on the validation split only; record the returned table in the run.
    """
    from components.evaluation.metrics import iou

    if len(heatmaps) != len(gold_boxes) or not heatmaps:
        raise ValueError(
            f"need matching, non-empty heatmaps and boxes ({len(heatmaps)} vs {len(gold_boxes)})"
        )
    table = []
    for strategy, values in TUNING_GRID.items():
        for value in values:
            for rng in (1, 2):
                for padding in (0, 1):
                    for score in ("max", "mean"):
                        cand = base.model_copy(
                            update={"threshold": strategy, "threshold_value": value,
                                    "neighbour_range": rng, "padding": padding, "score": score}
                        )  # fmt: skip
                        ious = []
                        for heatmap, gold in zip(heatmaps, gold_boxes):
                            regions = extract_regions(heatmap, cand)
                            ious.append(iou(regions[0].box, gold) if regions else 0.0)
                        hit = float(np.mean([v >= iou_hit for v in ious]))
                        table.append(
                            {**cand.model_dump(), "hit1": hit, "miou": float(np.mean(ious))}
                        )
    best = max(table, key=lambda row: (row["hit1"], row["miou"]))
    chosen = base.model_copy(update={k: best[k] for k in base.model_dump()})
    return chosen, table
