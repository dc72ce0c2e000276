"""``index.storage: binary``: sign bits packed with numpy (dim/8 bytes per cell); a cell decodes to sign/√dim."""

from __future__ import annotations

import math

import numpy as np

from components.config import IndexParams
from components.index.storage_modes.base import StorageMode

# Bits of every byte value, most significant first (np.packbits' order): [256, 8].
_BYTE_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32)


def binary_scores(packed: np.ndarray, query: np.ndarray) -> np.ndarray:
    """⟨query, sign/√dim⟩ of sign bits packed by np.packbits [..., ceil(dim/8)] -> [...].

    A cell decodes to (2·bit − 1)/√dim, so its score is (2·Σ_{set bits} q_d − Σ_d q_d)/√dim; the sums
    over set bits are looked up per byte from a [bytes, 256] table built from the query, instead of
    unpacking every cell to float32 (ADR 16).
    """
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    n_bytes = packed.shape[-1]
    padded = np.zeros(
        n_bytes * 8, dtype=np.float32
    )  # padding bits are 0 in the codes and weigh 0 here
    padded[: query.shape[0]] = query
    table = padded.reshape(n_bytes, 8) @ _BYTE_BITS.T  # [bytes, 256]
    set_bits = table[np.arange(n_bytes), packed].sum(-1, dtype=np.float32)
    return (2.0 * set_bits - query.sum()) / np.float32(math.sqrt(query.shape[0]))


class BinaryStorage(StorageMode):
    name = "binary"

    def __init__(self, params: IndexParams, grid: int, dim: int):
        if dim % 8:
            raise ValueError(f"binary storage needs a vector size divisible by 8, got {dim}")
        super().__init__(params, grid, dim)

    def empty_codes(self) -> np.ndarray:
        return np.zeros((0, self.grid * self.grid, self.dim // 8), dtype=np.uint8)

    def encode(self, cells: np.ndarray) -> np.ndarray:
        return np.packbits(cells > 0, axis=-1)

    def decode(self, rows) -> np.ndarray:
        signs = (
            np.unpackbits(self.codes[rows], axis=-1, count=self.dim).astype(np.float32) * 2.0 - 1.0
        )
        return signs / math.sqrt(self.dim)

    def scores(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        return binary_scores(self.codes[positions], query)
