"""Snap a heatmap region to the layout block it lights up: a content-tight box instead of a cell box.

Grid cells are coarse (a 16×16 grid cuts a page into 38×50-pixel cells at 612×792), so a
region made of whole cells rarely matches the element it found: a table row or a form field
is smaller than, or straddles, its cells. Pages carry layout blocks (the PDF's text blocks,
grouped lines, or the generator's elements: the same blocks the BM25 and dense block
baselines retrieve). Among the blocks the region touches, the one whose own cells score
highest on average is the evidence; its box becomes the region's box. The region keeps its
cells and its score, so ranking is unchanged; only the box is tightened.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.regions.grid import box_to_cells

Box = tuple[float, float, float, float]


def block_cell_masks(blocks: Sequence[Sequence[float]], grid: int) -> list[np.ndarray]:
    """Each block's cell mask on the G×G grid (the same rasterisation as the training loss)."""
    return [box_to_cells(tuple(b), grid) for b in blocks]


def snap_box(
    cells: np.ndarray,
    heatmap: np.ndarray,
    blocks: Sequence[Sequence[float]],
    masks: Sequence[np.ndarray] | None = None,
) -> Box | None:
    """The box of the block, among those overlapping ``cells``, with the highest mean cell score.

    None when the page has no block touching the region (a visual-only page): keep the cell box.
    """
    if not len(blocks):
        return None
    masks = masks if masks is not None else block_cell_masks(blocks, heatmap.shape[0])
    best, best_score = None, -np.inf
    for block, mask in zip(blocks, masks):
        if not (mask & cells).any():
            continue
        score = float(heatmap[mask].mean())
        if score > best_score:
            best, best_score = block, score
    return None if best is None else tuple(float(v) for v in best)
