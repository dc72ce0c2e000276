"""The one rasterisation between normalised boxes and the G×G cell grid.

Shared by the local training loss (which cells a labelled box makes positive), region
extraction and evaluation, so all three agree on which cells a box covers.
"""

from __future__ import annotations

import math

import numpy as np

# Boxes that end exactly on a cell edge must not spill into the next cell through float noise.
_EDGE_EPS = 1e-6


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
