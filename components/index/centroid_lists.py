"""The stored page-centroid codes grouped into inverted lists, so a query scans only the lists near it.

The flat fast scan (ADR 15, ADR 16) reads every stored centroid code per query: 61 MB at 10k pages,
bound by memory bandwidth. Here the codes are grouped by their nearest *list centroid* (spherical
k-means over the decoded page centroids) into a faiss ``IndexIVFPQFastScan`` whose PQ codebook holds
the SQ4 levels, so the lists contain the stored codes as they are (no re-encoding). A query scans
the ``probe`` share of lists whose centroids score highest. On disk this costs one list number per
stored centroid (uint16) and the list centroids; the codes themselves stay in ``coarse.npy`` (ADR 17).

faiss's ``add`` would assign every code again (seconds at 10k pages), so lists are filled from a
saved assignment: each list's codes are packed into fast-scan blocks with faiss's own ``CodePacker``
and handed to the block inverted lists in one piece.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

# Below this many lists the flat fast scan reads so few codes that lists would not pay for themselves.
MIN_LISTS = 64
# k-means trains on at most this many points per list (faiss warns below 39; more adds time, not recall).
_TRAIN_POINTS_PER_LIST = 64


def list_count(n_codes: int, max_lists: int) -> int:
    """√(stored centroids), at most ``max_lists``; 0 when that is below ``MIN_LISTS`` (flat scan)."""
    lists = min(int(max_lists), math.isqrt(max(0, int(n_codes))))
    return lists if lists >= MIN_LISTS else 0


def training_rows(n_codes: int, lists: int, seed: int = 0) -> np.ndarray:
    """Sorted rows of the codes the list centroids are trained on (a seeded sample)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_codes, min(n_codes, lists * _TRAIN_POINTS_PER_LIST), replace=False))


def train_list_centroids(sample: np.ndarray, lists: int, seed: int = 0) -> np.ndarray:
    """float32 [lists, dim] unit list centroids: spherical k-means over decoded centroids [S, dim]."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    kmeans = faiss.Kmeans(
        sample.shape[1], lists, niter=10, seed=seed, spherical=True, verbose=False
    )
    kmeans.train(sample)
    return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)


class CentroidLists:
    """Inverted lists of stored centroid codes (global ids = positions in the flat code array)."""

    def __init__(self, list_centroids: np.ndarray, level_codebook: np.ndarray, probe: float):
        """``level_codebook`` [dim, 16]: the SQ4 levels of each component (a 1-d PQ codebook);
        ``probe``: the share of lists each query scans."""
        self.list_centroids = np.ascontiguousarray(list_centroids, dtype=np.float32)
        lists, dim = self.list_centroids.shape
        if level_codebook.shape != (dim, 16):
            raise ValueError(f"level codebook {level_codebook.shape} != ({dim}, 16)")
        self._quantizer = faiss.IndexFlatIP(dim)
        self._quantizer.add(self.list_centroids)
        self.index = faiss.IndexIVFPQFastScan(
            self._quantizer, dim, lists, dim, 4, faiss.METRIC_INNER_PRODUCT
        )
        self.index.by_residual = False  # codes are the centroids themselves, as stored
        faiss.copy_array_to_vector(
            np.ascontiguousarray(level_codebook, dtype=np.float32).reshape(-1),
            self.index.pq.centroids,
        )
        self.index.is_trained = True
        self.index.nprobe = max(1, min(lists, math.ceil(probe * lists)))
        self._packer = self.index.get_CodePacker()

    @property
    def lists(self) -> int:
        return len(self.list_centroids)

    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def assign(self, decoded: np.ndarray) -> np.ndarray:
        """uint16 list number of each decoded centroid [M, dim] (its best-scoring list centroid)."""
        if len(decoded) == 0:
            return np.zeros(0, dtype=np.uint16)
        _, nearest = self._quantizer.search(np.ascontiguousarray(decoded, dtype=np.float32), 1)
        return nearest[:, 0].astype(np.uint16)

    def fill(self, codes: np.ndarray, assignment: np.ndarray, first_id: int = 0) -> None:
        """Add codes [M, code bytes] with their list numbers [M]; ids continue from ``first_id``.

        Each touched list is rewritten whole: faiss's block lists copy packed blocks only into an
        empty list, and a list is small (~M/lists codes)."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        assignment = np.asarray(assignment).astype(np.int64)
        if len(codes) != len(assignment):
            raise ValueError(f"{len(codes)} codes but {len(assignment)} list numbers")
        if len(codes) == 0:
            return
        if codes.shape[1] != self._packer.code_size:
            raise ValueError(
                f"codes of {codes.shape[1]} bytes, the lists hold {self._packer.code_size}"
            )
        if first_id != self.ntotal:
            raise ValueError(f"new ids must continue at {self.ntotal}, got {first_id}")
        if assignment.min() < 0 or assignment.max() >= self.lists:
            raise ValueError(f"list numbers outside [0, {self.lists})")
        order = np.argsort(assignment, kind="stable")
        bounds = np.searchsorted(assignment[order], np.arange(self.lists + 1))
        invlists = faiss.downcast_InvertedLists(self.index.invlists)
        for lst in np.flatnonzero(np.diff(bounds)):
            new = order[bounds[lst] : bounds[lst + 1]]
            old_ids, old_codes = self._list_contents(invlists, int(lst))
            self._write_list(
                invlists,
                int(lst),
                np.concatenate([old_ids, new + first_id]),
                np.concatenate([old_codes, codes[new]]),
            )
        self.index.ntotal += len(codes)

    def _write_list(self, invlists, lst: int, ids: np.ndarray, flat: np.ndarray) -> None:
        nvec = self._packer.nvec
        n_blocks = -(-len(ids) // nvec)
        padded = np.zeros((n_blocks * nvec, self._packer.code_size), dtype=np.uint8)
        padded[: len(flat)] = flat
        blocks = np.zeros((n_blocks, self._packer.block_size), dtype=np.uint8)
        for b in range(n_blocks):
            self._packer.pack_all(faiss.swig_ptr(padded[b * nvec :]), faiss.swig_ptr(blocks[b]))
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        invlists.resize(lst, 0)
        invlists.add_entries(lst, len(ids), faiss.swig_ptr(ids), faiss.swig_ptr(blocks))

    def _list_contents(self, invlists, lst: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, flat codes) a list holds, unpacked from its fast-scan blocks."""
        n = int(invlists.list_size(lst))
        if n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(
                (0, self._packer.code_size), dtype=np.uint8
            )
        nvec, block = self._packer.nvec, self._packer.block_size
        n_blocks = -(-n // nvec)
        ids = faiss.rev_swig_ptr(invlists.get_ids(lst), n).copy()
        packed = (
            faiss.rev_swig_ptr(invlists.get_codes(lst), n_blocks * block)
            .copy()
            .reshape(n_blocks, block)
        )
        flat = np.zeros((n_blocks * nvec, self._packer.code_size), dtype=np.uint8)
        for b in range(n_blocks):
            self._packer.unpack_all(faiss.swig_ptr(packed[b]), faiss.swig_ptr(flat[b * nvec :]))
        return ids.astype(np.int64), flat[:n]

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(approximate scores, ids) of the ``k`` best codes in the probed lists, best first."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        scores, ids = self.index.search(query, max(1, min(k, self.ntotal)))
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]
