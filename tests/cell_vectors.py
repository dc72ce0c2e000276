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
    return unit(centres[np.arange(n)[:, None], assign] + spread * rng.standard_normal((n, grid * grid, dim)))
