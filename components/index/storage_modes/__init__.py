"""The storage modes of the cell vectors (``index.storage``), one module each, behind ``StorageMode``."""

from __future__ import annotations

from components.config import IndexParams
from components.index.storage_modes.base import StorageMode
from components.index.storage_modes.binary import BinaryStorage
from components.index.storage_modes.float16 import Float16Storage
from components.index.storage_modes.pq import PqStorage
from components.index.storage_modes.pq_residual import PqResidualStorage

STORAGE_MODES: dict[str, type[StorageMode]] = {
    mode.name: mode for mode in (Float16Storage, PqStorage, BinaryStorage, PqResidualStorage)
}


def storage_mode(params: IndexParams, grid: int, dim: int) -> StorageMode:
    """The (empty) storage mode ``params.storage`` names."""
    return STORAGE_MODES[params.storage](params, grid, dim)


__all__ = [
    "STORAGE_MODES",
    "BinaryStorage",
    "Float16Storage",
    "PqResidualStorage",
    "PqStorage",
    "StorageMode",
    "storage_mode",
]
