"""``index.storage: pq_residual`` (section ``index.pq_residual``; ADR 11, ADR 12, ADR 18, ADR 20).

Per page K k-means centroids (scalar-quantised, ``coarse`` [N, K, code bytes]) plus per cell its
centroid id and the PQ code of its residual (1 + pq_m * pq_bits / 8 bytes); the centroid is the
nearest, or the best of ``centroid_choices`` nearest. The codec itself is ``ResidualPQCodec``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.config import IndexParams
from components.index.errors import IndexFormatError
from components.index.residual_codec import ResidualPQCodec
from components.index.storage_modes.base import ReadPart, StorageMode, WritePart

COARSE_FILE = "coarse.npy"
CODEC_FILES = ("coarse_sq.faiss", "residual_pq.faiss")


class PqResidualStorage(StorageMode):
    name = "pq_residual"

    def __init__(self, params: IndexParams, grid: int, dim: int):
        p = params.pq_residual
        self.codec = ResidualPQCodec(
            dim,
            min(p.centroids, grid * grid),
            p.pq_m,
            p.coarse_bits,
            p.pq_bits,
            p.centroid_choices,
            p.coarse_range,
            p.coarse_range_arg,
        )
        super().__init__(params, grid, dim)
        self.coarse = np.zeros((0, self.codec.k, self.codec.coarse_code_size), dtype=np.uint8)

    def empty_codes(self) -> np.ndarray:
        return np.zeros((0, self.grid * self.grid, 1 + self.codec.pq_code_size), dtype=np.uint8)

    @property
    def trained(self) -> bool:
        return self.codec.trained

    def train(self, cells: np.ndarray, seed: int) -> None:
        self.codec.train(cells, self.params.pq_residual.train_cells, seed)

    def encode(self, cells: np.ndarray) -> np.ndarray:
        return self.codec.encode(cells)[1]

    def append(self, cells: np.ndarray) -> None:
        coarse, codes = self.codec.encode(cells)
        # The first add fixes the code width (a tiny training sample trains fewer PQ bits).
        self.coarse = np.concatenate([self.coarse, coarse]) if len(self.coarse) else coarse
        self.codes = np.concatenate([self.codes, codes]) if len(self.codes) else codes

    def keep(self, rows: np.ndarray) -> None:
        self.codes = self.codes[rows]
        self.coarse = self.coarse[rows]

    def flat_coarse(self) -> np.ndarray:
        """Every stored page-centroid code, one per row [N*K, code bytes] (the stored candidate stage)."""
        return self.coarse.reshape(-1, self.coarse.shape[-1])

    def decode(self, rows) -> np.ndarray:
        return self.codec.decode(self.coarse[rows], self.codes[rows])

    def scores(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        return self.codec.scores(self.coarse[positions], self.codes[positions], query)

    def row_bytes(self) -> dict[str, int]:
        return {"cells": self.codes.nbytes, "coarse": self.coarse.nbytes}

    def codebook_bytes(self) -> int:
        return self.codec.nbytes()

    def write_parts(self, write: WritePart) -> None:
        write(COARSE_FILE, self.coarse)
        for name, blob in zip(CODEC_FILES, self.codec.serialized()):
            write(name, blob)

    def read_parts(self, read: ReadPart, codes: np.ndarray, folder: Path) -> None:
        p = self.params.pq_residual
        self.codes = codes
        self.coarse = read(COARSE_FILE, lambda path: np.load(path, allow_pickle=False))
        self.codec = ResidualPQCodec.from_serialized(
            self.dim,
            self.coarse.shape[1],
            p.pq_m,
            p.coarse_bits,
            p.pq_bits,
            read(CODEC_FILES[0], lambda path: path.read_bytes()),
            read(CODEC_FILES[1], lambda path: path.read_bytes()),
            p.centroid_choices,
        )
        if len(self.coarse) != len(self.codes):
            raise IndexFormatError(
                f"{folder}: page centroids and cells disagree; rebuild the index"
            )
