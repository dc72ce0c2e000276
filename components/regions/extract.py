"""Heatmap -> regions (docs/design.md §5): threshold, connected components, tight boxes, scores, ranking.

``box_to_cells``/``cells_to_box`` (the grid rasterisation shared with the training loss) live in
``components.regions.grid`` and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from components.config import RegionParams
from components.regions.grid import box_to_cells, cells_to_box
from components.regions.snap import block_cell_masks, snap_box

__all__ = [
    "Region",
    "box_to_cells",
    "cells_to_box",
    "extract_regions",
    "rank_regions",
    "text_block_regions",
]


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


def text_block_regions(
    heatmap: np.ndarray,
    params: RegionParams,
    page_id: str,
    blocks: list,
    block_masks: list[np.ndarray] | None,
    text_scores: np.ndarray,
) -> list[Region]:
    """``rule: text_blocks``: the page's layout blocks that print a question term, best BM25+ first.

    A region's score is the page's heatmap peak less its BM25+ shortfall against the page's best
    block (``peak - (1 - s / s_best)``): the best block carries the page's heatmap score, so the
    heatmap still ranks the pages and their regions interleave by it.
    """
    if len(text_scores) != len(blocks):
        raise ValueError(
            f"{len(text_scores)} text scores for {len(blocks)} blocks of page {page_id!r}"
        )
    masks = block_masks if block_masks is not None else block_cell_masks(blocks, heatmap.shape[0])
    peak, best = float(heatmap.max()), float(np.max(text_scores))
    regions = []
    for b in np.argsort(-np.asarray(text_scores), kind="stable"):
        if text_scores[b] <= 0 or len(regions) == params.max_regions_per_page:
            break
        cells = masks[b]
        if cells.any():
            box = tuple(float(v) for v in blocks[b])
            regions.append(
                Region(
                    page_id,
                    box,
                    peak - (1.0 - float(text_scores[b]) / best),
                    int(cells.sum()),
                    cells,
                )
            )
    return regions


def extract_regions(
    heatmap: np.ndarray,
    params: RegionParams,
    page_id: str = "",
    blocks: list | None = None,
    block_masks: list[np.ndarray] | None = None,
    text_scores: np.ndarray | None = None,
) -> list[Region]:
    """Connected salient regions of one page's [G, G] cell-score heatmap, best first.

    With ``params.snap == "block"`` and the page's layout ``blocks`` ([x0, y0, x1, y1] boxes),
    each region's box is the block it lights up most; two regions that snap to the same block
    become one (the better score stays). With ``params.rule == "text_blocks"`` and the blocks'
    BM25+ ``text_scores`` (``LexicalChannel.block_scores``), the regions are the blocks that print
    a question term (``text_block_regions``); a page where none does falls back to the heatmap.
    """
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2 or heatmap.shape[0] != heatmap.shape[1]:
        raise ValueError(f"heatmap must be a square [G, G] array, got shape {heatmap.shape}")
    if not np.isfinite(heatmap).all():
        raise ValueError(f"heatmap of page {page_id!r} holds NaN or inf")
    if (
        params.rule == "text_blocks"
        and blocks is not None
        and len(blocks)
        and text_scores is not None
        and len(text_scores)
        and float(np.max(text_scores)) > 0
    ):
        if block_masks is None:  # once: a page with no term-printing block snaps with them too
            block_masks = block_cell_masks(blocks, heatmap.shape[0])
        found = text_block_regions(
            heatmap, params, page_id, blocks, block_masks, np.asarray(text_scores)
        )
        if found:
            return found
    mask = threshold_mask(heatmap, params.threshold, params.threshold_value)
    if not mask.any():
        # An absolute threshold above every score would leave a candidate page with no region at
        # all (and a served question with no answer): its best cell is the region then.
        mask = heatmap >= heatmap.max()
    labels, n = label_components(mask, params.neighbour_range)
    groups = [labels == label for label in range(1, n + 1)]
    if params.merge_overlapping:
        groups = merge_overlapping(groups, params.padding)
    snapping = params.snap == "block" and blocks is not None and len(blocks) > 0
    if snapping and block_masks is None:
        block_masks = block_cell_masks(blocks, heatmap.shape[0])
    regions: list[Region] = []
    for cells in groups:
        values = heatmap[cells]
        score = float(values.max() if params.score == "max" else values.mean())
        box = cells_to_box(cells, params.padding)
        if snapping:
            box = snap_box(cells, heatmap, blocks, block_masks) or box
        regions.append(Region(page_id, box, score, int(cells.sum()), cells))
    regions.sort(key=lambda r: r.score, reverse=True)
    if snapping:
        unique: dict[tuple, Region] = {}
        for r in regions:  # best first: the first region on a block keeps it
            if r.box in unique:
                unique[r.box].cells = unique[r.box].cells | r.cells
                unique[r.box].n_cells = int(unique[r.box].cells.sum())
            else:
                unique[r.box] = r
        regions = list(unique.values())
    return regions[: params.max_regions_per_page]


def rank_regions(
    regions_by_page: dict[str, list[Region]] | list[list[Region]], k: int | None = None
) -> list[Region]:
    """All pages' regions in one list by descending score (stable: ties keep page order)."""
    groups = regions_by_page.values() if isinstance(regions_by_page, dict) else regions_by_page
    ranked = sorted((r for group in groups for r in group), key=lambda r: r.score, reverse=True)
    return ranked if k is None else ranked[:k]
