"""``index.storage: pq`` (section ``index.pq``): faiss product-quantiser codes, ``m`` bytes per cell.

Heatmaps come from asymmetric distance tables, i.e. exactly ⟨q, decode(code)⟩ without
materialising decoded vectors.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from components.config import IndexParams
from components.index.residual_codec import train_pq
from components.index.storage_modes.base import ReadPart, StorageMode, WritePart

PQ_FILE = "pq.faiss"


class PqStorage(StorageMode):
    name = "pq"

    def __init__(self, params: IndexParams, grid: int, dim: int):
        if dim % params.pq.m:
            raise ValueError(f"index.pq.m={params.pq.m} must divide the vector size {dim}")
        super().__init__(params, grid, dim)
        self.pq: faiss.IndexPQ | None = None

    def empty_codes(self) -> np.ndarray:
        return np.zeros((0, self.grid * self.grid, self.params.pq.m), dtype=np.uint8)

    @property
    def trained(self) -> bool:
        return self.pq is not None

    def train(self, cells: np.ndarray, seed: int) -> None:
        self.pq = train_pq(
            cells.reshape(-1, self.dim),
            self.params.pq.m,
            self.params.pq.train_cells,
            np.random.default_rng(seed),
            seed,
        )

    def encode(self, cells: np.ndarray) -> np.ndarray:
        n, c, d = cells.shape
        return self.pq.pq.compute_codes(np.ascontiguousarray(cells.reshape(-1, d))).reshape(
            n, c, -1
        )

    def decode(self, rows) -> np.ndarray:
        stored = self.codes[rows]
        n, c = stored.shape[:2]
        return self.pq.pq.decode(np.ascontiguousarray(stored.reshape(n * c, -1))).reshape(
            n, c, self.dim
        )

    def scores(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        stored = self.codes[positions]
        pq = self.pq.pq
        centroids = faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub)
        # Asymmetric distance table: ⟨q_m, centroid⟩ per sub-space, then a lookup-and-sum per cell.
        table = np.einsum("mkd,md->mk", centroids, query.reshape(pq.M, pq.dsub))
        return table[np.arange(pq.M), stored.astype(np.intp)].sum(-1)

    def codebook_bytes(self) -> int:
        return len(faiss.serialize_index(self.pq)) if self.pq is not None else 0

    def write_parts(self, write: WritePart) -> None:
        if self.pq is not None:
            write(PQ_FILE, faiss.serialize_index(self.pq).tobytes())

    def read_parts(self, read: ReadPart, codes: np.ndarray, folder: Path) -> None:
        self.codes = codes
        self.pq = read(PQ_FILE, lambda p: faiss.read_index(str(p)))
