"""Query-oriented visual token refinement (RORA-VLM) and visual-token accounting.

A context (region) hands the reader at most ``m`` of its cells' vectors:

* ``refine``: the m cells most relevant to the query. For a text query the relevance is the
  cell's dot product with the query vector (the heatmap score). For an image query it is the
  cell's best similarity to the query image's own kept cells (the image's m cells most relevant
  to the question), as RORA-VLM ranks a retrieved image's tokens against the query image's.
* ``avgpool``: the region's cells, in row-major order, average-pooled into m groups;
* ``random``: m cells drawn at random (the control for refinement).

The tokens handed over are counted where they are encoded (``model.Encoded``: text pieces and
visual tokens), for region-level and page-level contexts alike; no notional cell count.
"""

from __future__ import annotations

import numpy as np

MODES = ("refine", "avgpool", "random")


def image_query_keep(
    image_cells: np.ndarray, question_vec: np.ndarray | None, m: int
) -> np.ndarray:
    """The query image's kept cells [<=m, D]: its m cells most relevant to the question text.

    Without a question vector (an image alone) the image's cells closest to their own mean are kept.
    """
    image_cells = np.asarray(image_cells, dtype=np.float32)
    if image_cells.ndim != 2 or len(image_cells) == 0:
        raise ValueError(
            f"image_cells must be a non-empty [N, D] array, got shape {image_cells.shape}"
        )
    anchor = question_vec if question_vec is not None else image_cells.mean(0)
    order = np.argsort(-(image_cells @ np.asarray(anchor, dtype=np.float32)), kind="stable")
    return image_cells[order[: max(1, m)]]


def cell_relevance(
    cells: np.ndarray, query_vec: np.ndarray | None = None, image_keep: np.ndarray | None = None
) -> np.ndarray:
    """Relevance [N] of a region's cells [N, D]: to the kept query-image cells when given, else to the query."""
    cells = np.asarray(cells, dtype=np.float32)
    if image_keep is not None:
        return (cells @ np.asarray(image_keep, dtype=np.float32).T).max(1)
    if query_vec is None:
        raise ValueError("cell_relevance needs a query vector or the query image's kept cells")
    return cells @ np.asarray(query_vec, dtype=np.float32)


def select_cells(
    cells: np.ndarray,
    m: int,
    mode: str = "refine",
    relevance: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """At most ``m`` visual tokens [<=m, D] from a region's cells [N, D] (row-major order kept)."""
    cells = np.asarray(cells, dtype=np.float32)
    if mode not in MODES:
        raise ValueError(f"unknown visual token mode {mode!r} ({' | '.join(MODES)})")
    n = len(cells)
    if m <= 0 or n == 0:
        return np.zeros((0, cells.shape[-1] if cells.ndim == 2 else 0), dtype=np.float32)
    if n <= m and mode != "avgpool":
        return cells
    if mode == "refine":
        if relevance is None or len(relevance) != n:
            raise ValueError("mode=refine needs one relevance score per cell")
        keep = np.sort(np.argsort(-np.asarray(relevance), kind="stable")[:m])
        return cells[keep]
    if mode == "random":
        rng = rng or np.random.default_rng(0)
        return cells[np.sort(rng.choice(n, size=m, replace=False))]
    groups = np.array_split(np.arange(n), min(m, n))  # avgpool: contiguous row-major groups
    return np.stack([cells[g].mean(0) for g in groups])
