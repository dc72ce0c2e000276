"""The stored-centroid fast-scan stage split into shards that one query scans on parallel threads.

faiss's fast scan runs one query on one thread whatever ``omp_set_num_threads`` says (a 960k-code
stage: 6.7 ms on one OpenMP thread and 6.8 ms on two). Splitting the codes into consecutive shards and
scanning each on its own Python thread (faiss releases the GIL) uses the second core: 5.5 against
8.1 ms p50 on an idle machine, 8.4 against 7.6 ms with another process busy on one core (ADR 16).
Plain threads waiting on futures do not spin, unlike an OpenMP barrier (ADR 11's stalls).

Shards cover consecutive id ranges, so a shard-local id plus its shard's offset is the global id.
Fast scan's lookup tables depend on the query alone, so the merged scores equal the scores one
unsharded index would give.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

_POOL: tuple[ThreadPoolExecutor, int] | None = None  # (pool, its thread count)
_POOL_LOCK = threading.Lock()


def _forget_pool_in_child() -> None:
    # A forked child inherits the pool but not its threads: work submitted there would never run.
    global _POOL
    _POOL = None


os.register_at_fork(after_in_child=_forget_pool_in_child)


def _pool(workers: int) -> ThreadPoolExecutor:
    """One process-wide pool, replaced by a larger one when a stage needs more threads than it has."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[1] < workers:
            _POOL = (
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="regionops-fast-scan"),
                workers,
            )
        return _POOL[0]


class FastScanShards:
    """``shards`` fast-scan indexes over one code array, searched side by side."""

    def __init__(
        self, codes: np.ndarray, make_shard: Callable[[np.ndarray], faiss.Index | None], shards: int
    ):
        """``make_shard(codes) -> index or None`` builds one shard (None: fast scan does not apply)."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        n = max(1, min(int(shards), len(codes) or 1))
        bounds = np.linspace(0, len(codes), n + 1).astype(np.int64)
        self.shards = [make_shard(codes[a:b]) for a, b in itertools.pairwise(bounds)]
        self.offsets = bounds[:-1].copy()

    @property
    def available(self) -> bool:
        return all(s is not None for s in self.shards)

    @property
    def ntotal(self) -> int:
        return int(sum(s.ntotal for s in self.shards))

    def add(self, vectors: np.ndarray) -> None:
        """Append to the last shard: the global ids stay positions in the code array."""
        self.shards[-1].add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(approximate scores, global ids) of the ``k`` best codes over all shards, best first."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if len(self.shards) == 1:
            scores, ids = self.shards[0].search(query, min(k, self.shards[0].ntotal))
            keep = ids[0] >= 0
            return scores[0][keep], ids[0][keep]
        pool = _pool(len(self.shards))
        futures = [pool.submit(s.search, query, min(k, s.ntotal)) for s in self.shards if s.ntotal]
        offsets = [o for o, s in zip(self.offsets, self.shards) if s.ntotal]
        parts = [f.result() for f in futures]
        scores = np.concatenate([d[0][i[0] >= 0] for d, i in parts])
        ids = np.concatenate([i[0][i[0] >= 0] + off for (_, i), off in zip(parts, offsets)])
        order = np.argsort(-scores, kind="stable")[:k]
        return scores[order], ids[order]
