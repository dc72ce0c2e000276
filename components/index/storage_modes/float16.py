"""``index.storage: float16``: the exact fallback, 2 bytes per component."""

from __future__ import annotations

import numpy as np

from components.index.float16_scores import float16_scores
from components.index.storage_modes.base import StorageMode


class Float16Storage(StorageMode):
    name = "float16"

    def empty_codes(self) -> np.ndarray:
        return np.zeros((0, self.grid * self.grid, self.dim), dtype=np.float16)

    def encode(self, cells: np.ndarray) -> np.ndarray:
        return cells.astype(np.float16)

    def decode(self, rows) -> np.ndarray:
        return self.codes[rows].astype(np.float32)

    def scores(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        return float16_scores(self.codes[positions], query)
