"""Page summary vectors for the candidate stage: a few k-means centroids of each page's cells.

A page's score is its best cell (max over cells), so one mean vector per page is a poor proxy:
a page whose answer sits in one small block has a mean dominated by everything else. K
centroids per page (max over them) cover the page's distinct contents, at K instead of G*G
vectors per page in the faiss stage.

The k-means is spherical (centroids re-normalised, cosine assignment) and runs batched over all
pages at once as matrix products; faiss.Kmeans would need one Python call per page, which at
10k pages costs more than the clustering itself. Initialisation is deterministic (farthest
point from the page mean onward), so the same cells always give the same summaries.
"""

from __future__ import annotations

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def page_centroids(
    cells: np.ndarray, k: int, iterations: int = 10, chunk: int = 1024
) -> np.ndarray:
    """float32 [N, k, dim] unit centroids of each page's cells [N, C, dim] (k capped at C)."""
    cells = np.asarray(cells, dtype=np.float32)
    if cells.ndim != 3:
        raise ValueError(f"cells must be [N, cells, dim], got shape {cells.shape}")
    if k < 1:
        raise ValueError(f"need at least one centroid per page, got k={k}")
    n, c, d = cells.shape
    k = min(k, c)
    out = np.zeros((n, k, d), dtype=np.float32)
    for start in range(0, n, chunk):
        out[start : start + chunk] = _kmeans(_unit(cells[start : start + chunk]), k, iterations)
    return out


def _kmeans(x: np.ndarray, k: int, iterations: int) -> np.ndarray:
    n, c, _ = x.shape
    rows = np.arange(n)
    # Farthest-point seeding: start from the cell closest to the page mean, then repeatedly add
    # the cell least similar to every seed so far (covers small distinct blocks first).
    first = np.einsum("ncd,nd->nc", x, _unit(x.mean(1))).argmax(1)
    centroids = [x[rows, first]]
    closest = np.einsum("ncd,nd->nc", x, centroids[0])
    for _ in range(1, k):
        pick = closest.argmin(1)
        centroids.append(x[rows, pick])
        closest = np.maximum(closest, np.einsum("ncd,nd->nc", x, centroids[-1]))
    cent = np.stack(centroids, 1)  # [n, k, d]
    for _ in range(iterations):
        assign = np.matmul(x, cent.transpose(0, 2, 1)).argmax(-1)  # [n, c]
        onehot = np.zeros((n, c, k), dtype=np.float32)
        np.put_along_axis(onehot, assign[..., None], 1.0, axis=-1)
        sums = np.matmul(onehot.transpose(0, 2, 1), x)  # [n, k, d]
        empty = onehot.sum(1) == 0  # a centroid that lost every cell keeps its place
        new = _unit(sums)
        new[empty] = cent[empty]
        if np.allclose(new, cent, atol=1e-6):
            break
        cent = new
    return cent
