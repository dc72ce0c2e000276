"""The candidate stage of ``storage: pq_residual`` with ``pq_residual.candidates: stored`` (ADR 12).

A flat faiss scan of the stored page centroids themselves (their scalar codes handed to faiss as
they are), so it costs no bytes beyond the cells' own codes; ``candidates.faiss`` then holds only
the empty, trained quantiser and the stage is refilled from ``coarse.npy`` on load. With 4-bit
centroids and ``pq_residual.fast_scan`` (ADR 15) an unfiltered query scans the same codes with
faiss's SIMD fast scan instead and re-ranks its top hits exactly; filtered queries keep the exact
scan (fast scan takes no IDSelector). Once there are enough codes (ADR 17) that fast scan runs
over inverted lists of the codes (``stage_centroids.npy``, ``stage_lists.npy``), probing the share
``pq_residual.stage_probe`` of lists nearest the query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import faiss
import numpy as np

from components.index.candidate_stages.base import (
    CANDIDATES_FILE,
    CandidateStage,
    IndexRows,
    distinct_pages,
)
from components.index.centroid_lists import (
    CentroidLists,
    list_count,
    train_list_centroids,
    training_rows,
)
from components.index.device import to_cpu, to_device
from components.index.errors import IndexFormatError
from components.index.fast_scan_shards import FastScanShards
from components.index.storage_modes.pq_residual import PqResidualStorage

if TYPE_CHECKING:
    from components.index.storage_modes.base import ReadPart, WritePart

# Fast scan over the stored centroids fetches this many times the wanted ids before the exact re-rank:
# ×2 gave the exact scan's top 512 on every query of a synthetic 960k-code test, ×1 only 96.6 % (ADR 15).
FAST_SCAN_OVERFETCH = 2
# Centroids fetched per wanted candidate page on the fast stage's first scan (the exact scan: 4).
FAST_SCAN_FIRST_FETCH = 8
LIST_CENTROIDS_FILE, LISTS_FILE = "stage_centroids.npy", "stage_lists.npy"


class StoredCentroidStage(CandidateStage):
    kind = "stored"

    def __init__(self, params, grid: int, dim: int, store: PqResidualStorage):
        if params.faiss != "flat":
            raise ValueError(
                "index.pq_residual.candidates=stored scans the stored page centroids (faiss: flat); "
                f"got faiss={params.faiss} (use pq_residual.candidates=separate for hnsw/ivf)"
            )
        super().__init__(params, grid, dim)
        self.store = store
        self.fast_scan = params.pq_residual.fast_scan
        self.fast_stage: FastScanShards | None = None  # unfiltered queries (ADR 15, ADR 16)
        # Inverted lists (ADR 17): the list centroids, each stored centroid's list number [N, K] (both
        # persisted), the lists themselves (rebuilt on load), and whether they are used.
        self.list_centroids: np.ndarray | None = None
        self.stage_lists: np.ndarray | None = None
        self.lists: CentroidLists | None = None
        self.use_lists = True

    @property
    def per_page(self) -> int:
        return self.store.codec.k

    def _flat_index(self) -> faiss.Index:
        """Flat faiss scan over the stored page-centroid codes: the codec's own (trained) scalar
        quantiser, filled with the codes as they are, so scores equal ⟨q, decoded centroid⟩."""
        index = faiss.clone_index(self.store.codec.coarse_sq)
        index.reset()
        if len(self.store.coarse):
            index.add_sa_codes(np.ascontiguousarray(self.store.flat_coarse()))
        return index

    def rebuild(
        self, index: IndexRows, exact: np.ndarray | None = None, train_lists: bool = True
    ) -> None:
        """``train_lists=False``: no new inverted lists (loading an index saved without them stays flat)."""
        self.faiss_index, self.device = to_device(self._flat_index(), self.params.faiss)
        use = self.fast_scan and (train_lists or self.list_centroids is not None)
        self.lists = self._new_lists() if use else None
        want_shards = self.fast_scan and (self.lists is None or not self.use_lists)
        self.fast_stage = self._new_fast_stage() if want_shards else None

    def add(self, index: IndexRows, start: int, exact: np.ndarray) -> None:
        coarse = self.store.coarse[start:]
        if (
            self.list_centroids is None
            and self.fast_scan
            and self.device == "cpu"
            and list_count(
                self.store.coarse.shape[0] * self.store.coarse.shape[1],
                self.params.pq_residual.stage_lists,
            )
        ):
            self.rebuild(index)  # the corpus has grown enough for inverted lists: train them
            return
        codes = np.ascontiguousarray(coarse.reshape(-1, coarse.shape[-1]))
        self.faiss_index.add_sa_codes(codes)
        if self.list_centroids is not None:
            new_lists = self._assign_lists(codes, self.lists).reshape(len(coarse), -1)
            self.stage_lists = np.concatenate([self.stage_lists, new_lists])
            if self.lists is not None:
                self.lists.fill(codes, new_lists.reshape(-1), first_id=start * coarse.shape[1])
        if (
            self.fast_stage is not None
        ):  # decoded SQ4 values are codebook entries: they re-encode to `codes`
            self.fast_stage.add(self.store.codec.coarse_sq.sa_decode(codes))

    def keep(self, rows: np.ndarray) -> None:
        if self.stage_lists is not None:
            self.stage_lists = self.stage_lists[rows]

    def pages(
        self, query: np.ndarray, candidates: int, allowed: np.ndarray | None, n_pages: int
    ) -> np.ndarray:
        """First C distinct pages by their best stored centroid. Fetching C*K centroids would
        guarantee C pages but makes faiss keep a C*K heap (a synthetic 640k-code SQ4 scan: 33 ms at
        k = 8192 vs 21 ms at k = 128), so fetch 4*C (fast scan: 8*C) and double until C distinct
        pages (or every allowed page) are in."""
        params = self.search_params(allowed)
        n_allowed = len(allowed) if allowed is not None else n_pages
        k = self.per_page
        want = min(candidates, n_allowed)
        use_fast = self.fast_scan and getattr(params, "sel", None) is None
        fast = self.fast_stage if use_fast else None
        if use_fast and self.lists is not None and self.use_lists:
            # Inverted lists (ADR 17): the probed lists normally hold C pages; if not, the exact scan below.
            fetch = min(self.lists.ntotal, FAST_SCAN_FIRST_FETCH * candidates)
            pages = distinct_pages(self._fast_top(self.lists, query, fetch), k)
            if len(pages) >= want:
                return pages[:candidates]
            fast = None
        # Fast scan's cost barely grows with k (a 960k-code scan: 7.0 ms at k = 1024, 8.6 ms at 4096),
        # so it starts at 8*C: on the bench's 10k pages 4*C needed a second scan for 6 % of questions
        # (p95 9.8 ms against 7.4 ms at 8*C, p50 5.1 against 5.5 ms; ADR 16).
        fetch = min(
            self.faiss_index.ntotal, (FAST_SCAN_FIRST_FETCH if fast is not None else 4) * candidates
        )
        while True:
            ids = (
                self._fast_top(fast, query, fetch)
                if fast is not None
                else self.faiss_index.search(query, fetch, params=params)[1][0]
            )
            pages = distinct_pages(ids, k)
            if len(pages) >= want or fetch >= min(self.faiss_index.ntotal, n_allowed * k):
                return pages[:candidates]
            fetch = min(self.faiss_index.ntotal, fetch * 2)

    def set_fast_scan(self, enabled: bool) -> bool:
        self.fast_scan = bool(enabled)
        if (
            enabled and self.fast_stage is None
        ):  # switching off keeps it built (and kept up to date by add)
            self.fast_stage = self._new_fast_stage()
        return bool(enabled) and self.fast_stage is not None

    def set_stage_lists(self, enabled: bool) -> bool:
        self.use_lists = bool(enabled)
        if not self.fast_scan:
            return False
        if not enabled and self.fast_stage is None:
            self.fast_stage = self._new_fast_stage()
        return bool(enabled) and self.lists is not None

    def _assign_lists(
        self, codes: np.ndarray, stage: CentroidLists | None, chunk: int = 65536
    ) -> np.ndarray:
        """uint16 list number of each centroid code [M, code bytes] by ``stage``'s list centroids (None:
        lists not built here, e.g. fast scan off: a stage only for its quantiser); decoded in chunks
        (490 MB at 10k pages)."""
        codec = self.store.codec
        if stage is None:
            stage = CentroidLists(
                self.list_centroids, codec.level_codebook(), self.params.pq_residual.stage_probe
            )
        parts = [
            stage.assign(codec.coarse_sq.sa_decode(np.ascontiguousarray(codes[i : i + chunk])))
            for i in range(0, len(codes), chunk)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)

    def _new_lists(self, seed: int = 0) -> CentroidLists | None:
        """The stored centroid codes in inverted lists (CPU, SQ4 centroids, enough codes; else None).

        The list centroids are trained once, when the corpus first has enough codes; later rebuilds
        (load, delete) and adds reuse them and the stored list numbers."""
        codec, coarse = self.store.codec, self.store.coarse
        codebook = codec.level_codebook()
        if self.device != "cpu" or codebook is None:
            return None
        flat = np.ascontiguousarray(self.store.flat_coarse())
        if self.list_centroids is None:
            lists = list_count(len(flat), self.params.pq_residual.stage_lists)
            if lists == 0:
                return None
            sample = codec.coarse_sq.sa_decode(flat[training_rows(len(flat), lists, seed)])
            self.list_centroids = train_list_centroids(sample, lists, seed)
            self.stage_lists = None
        stage = CentroidLists(self.list_centroids, codebook, self.params.pq_residual.stage_probe)
        if self.stage_lists is None or self.stage_lists.shape != coarse.shape[:2]:
            self.stage_lists = self._assign_lists(flat, stage).reshape(coarse.shape[:2])
        stage.fill(flat, self.stage_lists.reshape(-1))
        return stage

    def _new_fast_stage(self) -> FastScanShards | None:
        """The stored centroid codes as fast-scan shards, one per ``pq_residual.fast_scan_threads`` (CPU
        only; None where fast scan does not apply)."""
        if self.device != "cpu":
            return None
        stage = FastScanShards(
            self.store.flat_coarse(),
            self.store.codec.fast_scan_stage,
            self.params.pq_residual.fast_scan_threads,
        )
        return stage if stage.available else None

    def _fast_top(
        self, stage: FastScanShards | CentroidLists, query: np.ndarray, fetch: int
    ) -> np.ndarray:
        """Ids of the ``fetch`` best stored centroids a fast-scan stage finds: it fetches twice as many
        by its approximate (8-bit table) scores, then they are re-ranked by their exact SQ4 scores, so
        the result matches the exact scan's top ``fetch`` over what the stage scanned (ADR 15)."""
        _, ids = stage.search(query, min(stage.ntotal, FAST_SCAN_OVERFETCH * fetch))
        exact = self.store.codec.coarse_scores(self.store.flat_coarse()[ids], query)
        return ids[np.argsort(-exact, kind="stable")][:fetch]

    def nbytes(self) -> int:
        """Its codes are the stored centroids (counted as ``coarse``); only the inverted lists add
        bytes: the list numbers and the list centroids."""
        if self.list_centroids is not None:
            return self.stage_lists.nbytes + self.list_centroids.nbytes
        return 0

    def stats(self) -> dict | None:
        if self.lists is None:
            return None
        return {"lists": self.lists.lists, "nprobe": self.lists.nprobe, "in_use": self.use_lists}

    def write_parts(self, write: WritePart) -> None:
        # The codes are in coarse.npy; keep only the trained quantiser.
        empty = faiss.clone_index(to_cpu(self.faiss_index, self.device))
        empty.reset()
        write(CANDIDATES_FILE, faiss.serialize_index(empty).tobytes())
        if self.list_centroids is not None:
            write(LIST_CENTROIDS_FILE, self.list_centroids)
            write(LISTS_FILE, self.stage_lists)

    def read_parts(self, read: ReadPart, index: IndexRows, folder) -> None:
        self._read_lists(read, folder)
        read(
            CANDIDATES_FILE, lambda p: faiss.read_index(str(p))
        )  # the trained quantiser; it must load
        self.rebuild(index, train_lists=False)

    def _read_lists(self, read: ReadPart, folder) -> None:
        """The inverted lists' parts; absent before ADR 17: such an index scans every code."""
        if not (folder / LIST_CENTROIDS_FILE).is_file():
            return
        self.list_centroids = read(LIST_CENTROIDS_FILE, lambda p: np.load(p, allow_pickle=False))
        self.stage_lists = read(LISTS_FILE, lambda p: np.load(p, allow_pickle=False))
        coarse = self.store.coarse
        if (
            self.stage_lists.shape != coarse.shape[:2]
            or self.list_centroids.ndim != 2
            or self.list_centroids.shape[1] != self.dim
            or (self.stage_lists.size and self.stage_lists.max() >= len(self.list_centroids))
        ):
            raise IndexFormatError(
                f"{folder}: the stage's inverted lists and the page centroids "
                "disagree; rebuild the index"
            )
