"""What every storage mode of the cell vectors does (``index.storage``), behind one interface.

A storage mode owns the stored codes of every page's cells ([N, G*G, ...], ``codes``) and whatever
it shares between pages (a codebook). ``RegionIndex`` only asks it to encode new pages, drop rows,
decode rows, score rows against a query and save / load its parts; it never asks which mode it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from components.config import IndexParams

# (part name, reader of its path) -> what the reader returns; errors name the part (storage.py).
ReadPart = Callable[[str, Callable[[Path], Any]], Any]
# (part name, array or bytes): written to the version folder and fsynced (storage.py).
WritePart = Callable[[str, "np.ndarray | bytes"], None]


class StorageMode(ABC):
    """The stored cells of an index in one storage mode."""

    name: ClassVar[str]

    def __init__(self, params: IndexParams, grid: int, dim: int):
        self.params, self.grid, self.dim = params, int(grid), int(dim)
        self.codes = self.empty_codes()

    @abstractmethod
    def empty_codes(self) -> np.ndarray:
        """The stored codes of no pages: [0, G*G, bytes or components]."""

    @property
    def trained(self) -> bool:
        """Whether the mode's codebook exists (modes without one are always ready)."""
        return True

    def train(self, cells: np.ndarray, seed: int) -> None:
        """Fit the codebook on float32 cells [N, G*G, dim] (a no-op for modes without one)."""

    @abstractmethod
    def encode(self, cells: np.ndarray) -> np.ndarray:
        """Stored codes [N, G*G, ...] of float32 cells [N, G*G, dim]."""

    def append(self, cells: np.ndarray) -> None:
        """Encode float32 cells [N, G*G, dim] and store them after the current rows."""
        self.codes = np.concatenate([self.codes, self.encode(cells)])

    def keep(self, rows: np.ndarray) -> None:
        """Keep only the rows where the boolean mask ``rows`` is set (deleting pages)."""
        self.codes = self.codes[rows]

    @abstractmethod
    def decode(self, rows) -> np.ndarray:
        """float32 cells [n, G*G, dim] of the given rows back from their codes."""

    @abstractmethod
    def scores(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Exact cell scores [len(positions), G*G] of ``query`` against the stored codes."""

    def row_bytes(self) -> dict[str, int]:
        """Bytes of the per-page arrays by stats name (``cells``; pq_residual adds ``coarse``)."""
        return {"cells": self.codes.nbytes}

    def codebook_bytes(self) -> int:
        """Serialized bytes of what the pages share (amortised over the pages in ``stats``)."""
        return 0

    def write_parts(self, write: WritePart) -> None:
        """Save the shared parts (``cells.npy`` is written by the index for every mode)."""

    def read_parts(self, read: ReadPart, codes: np.ndarray, folder: Path) -> None:
        """Restore the mode from a version folder: its stored ``codes`` and its own parts."""
        self.codes = codes
