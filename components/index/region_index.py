"""The region index (docs/design.md §6): compressed per-page cell vectors + a faiss candidate stage.

Search runs in two steps. A faiss index over pooled page vectors (or over every cell) finds C
candidate pages; only those candidates get an exact heatmap (decompressed cells · query), and a
page's score is its best cell. Metadata filters restrict the faiss search itself (an IDSelector),
so a filtered query still returns up to k matching pages instead of k minus the filtered ones.

Storage modes for the cell vectors:
  float16  exact fallback (2 bytes per component);
  pq       faiss product-quantiser codes (pq_m bytes per cell); heatmaps by asymmetric distance
           tables, i.e. exactly ⟨q, decode(code)⟩ without materialising decoded vectors;
  binary   sign bits packed with numpy (dim/8 bytes per cell); a cell decodes to sign/√dim.
  pq_residual  per page K k-means centroids (scalar-quantised) + per cell its centroid id and the
           PQ code of its residual (1 + residual_pq_m * residual_pq_bits / 8 bytes; ADR 11, ADR 12);
           the centroid is the nearest, or the best of residual_centroid_choices nearest (ADR 18).

On disk (all safe formats, no pickle)::

    <dir>/CURRENT             name of the live version folder (replaced atomically)
    <dir>/v-<id>/manifest.json  fingerprint, storage, grid, dim, faiss kind, params
    <dir>/v-<id>/pages.json     per-page metadata and text layer
    <dir>/v-<id>/cells.npy      compressed cells, [N, G*G, ...]
    <dir>/v-<id>/pooled.npy     float32 pooled page vectors [N, dim] ([N, 0] unless candidate_vectors=pooled)
    <dir>/v-<id>/candidates.faiss, pq.faiss (pq mode)
    <dir>/v-<id>/coarse.npy, coarse_sq.faiss, residual_pq.faiss (pq_residual mode)
    <dir>/v-<id>/stage_centroids.npy, stage_lists.npy (pq_residual stored stage in inverted lists)

With ``storage: pq_residual`` and ``residual_candidates: stored`` (ADR 12) the candidate stage is a
flat faiss scan of the stored page centroids themselves (their scalar codes handed to faiss as
they are), so it costs no bytes beyond the cells' own codes; candidates.faiss then holds only the
empty, trained quantiser and the stage is refilled from coarse.npy on load. With 4-bit centroids
and ``residual_fast_scan`` (ADR 15) an unfiltered query scans the same codes with faiss's SIMD fast
scan instead and re-ranks its top hits exactly; filtered queries keep the exact scan (fast scan
takes no IDSelector). Once there are enough codes (ADR 17) that fast scan runs over inverted lists
of the codes, probing the share ``residual_stage_probe`` of lists nearest the query.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from components.config import IndexParams
from components.index.centroid_lists import (
    CentroidLists,
    list_count,
    train_list_centroids,
    training_rows,
)
from components.index.device import to_cpu, to_device
from components.index.fast_scan_shards import FastScanShards
from components.index.float16_scores import float16_scores
from components.index.lexical import LexicalChannel
from components.index.residual_codec import ResidualPQCodec, train_pq
from components.index.summaries import page_centroids
from components.index.version_folders import (
    CURRENT,
    ChecksumMismatchError,
    check_target,
    file_checksums,
    index_lock,
    mark_version,
    new_version_name,
    remove_stale,
    temp_folder,
    temp_pointer,
    verify_files,
)

FORMAT_VERSION = 1
# Fast scan over the stored centroids fetches this many times the wanted ids before the exact re-rank:
# ×2 gave the exact scan's top 512 on every query of a synthetic 960k-code test, ×1 only 96.6 % (ADR 15).
FAST_SCAN_OVERFETCH = 2
# Centroids fetched per wanted candidate page on the fast stage's first scan (the exact scan: 4).
FAST_SCAN_FIRST_FETCH = 8
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
    padded = np.zeros(n_bytes * 8, dtype=np.float32)  # padding bits are 0 in the codes and weigh 0 here
    padded[: query.shape[0]] = query
    table = padded.reshape(n_bytes, 8) @ _BYTE_BITS.T  # [bytes, 256]
    set_bits = table[np.arange(n_bytes), packed].sum(-1, dtype=np.float32)
    return (2.0 * set_bits - query.sum()) / np.float32(math.sqrt(query.shape[0]))


class IndexError_(RuntimeError):
    """Base class of index errors (the trailing underscore avoids shadowing the builtin)."""


class FingerprintMismatchError(IndexError_):
    """The index was built by a different encoder than the one that will query it."""


class IndexFormatError(IndexError_):
    """The folder is not a (complete) region index."""


@dataclass
class PageMeta:
    page_id: str
    doc: str
    collection: str = "default"
    tags: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0
    # Text layer as [text, x0, y0, x1, y1] rows so answers and region text need no corpus at serve time.
    words: list[list] = field(default_factory=list)
    split: str | None = None
    # Layout blocks as [x0, y0, x1, y1] rows: what region boxes snap to (components.regions.snap).
    blocks: list[list] = field(default_factory=list)
    # Pictures with their match descriptors (components.index.pictures), for image queries; an
    # index saved before they were stored has none and stage 1 falls back to the pixel path.
    pictures: list[dict] = field(default_factory=list)

    @classmethod
    def from_page(cls, page, image=None) -> PageMeta:
        """Metadata of a corpus page; with its rendered ``image`` the page's pictures are described too."""
        from components.data.layout import page_blocks
        from components.index.pictures import page_pictures

        words = [[w.text, *map(float, w.box)] for w in page.words]
        return cls(
            page_id=page.id,
            doc=page.doc,
            collection=page.collection,
            tags=list(page.tags),
            width=page.width,
            height=page.height,
            words=words,
            split=page.split,
            blocks=[[float(v) for v in b.box] for b in page_blocks(page)],
            pictures=page_pictures(image, words) if image is not None else [],
        )

    @classmethod
    def coerce(cls, item: Any) -> PageMeta:
        if isinstance(item, PageMeta):
            return item
        if isinstance(item, dict):
            return cls(**item)
        if hasattr(item, "words") and hasattr(item, "doc"):
            return cls.from_page(item)
        raise TypeError(f"cannot make page metadata from {type(item).__name__}")


@dataclass
class PageHit:
    page_id: str
    score: float
    heatmap: np.ndarray  # [G, G] exact cell scores of the query on this page


def _distinct_pages(ids: np.ndarray, per_page: int) -> np.ndarray:
    """Row positions of the pages that stage vector ids (best first, -1 = none) belong to, each
    page once, in the order of its best vector."""
    pages = ids[ids >= 0] // per_page
    _, first = np.unique(pages, return_index=True)
    return pages[np.sort(first)]


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bytes_synced(path: Path, write) -> None:
    with open(path, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def _npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def _faiss(path: Path):
    return faiss.read_index(str(path))


def _page_metas(path: Path) -> list[PageMeta]:
    return [PageMeta(**m) for m in json.loads(path.read_text("utf-8"))]


class RegionIndex:
    def __init__(self, params: IndexParams, grid: int, dim: int, fingerprint: str):
        if params.storage == "pq" and dim % params.pq_m:
            raise ValueError(f"index.pq_m={params.pq_m} must divide the vector size {dim}")
        if params.storage == "binary" and dim % 8:
            raise ValueError(f"binary storage needs a vector size divisible by 8, got {dim}")
        if params.storage == "pq_residual" and params.residual_candidates == "stored" and params.faiss != "flat":
            raise ValueError("index.residual_candidates=stored scans the stored page centroids (faiss: flat); "
                             f"got faiss={params.faiss} (use residual_candidates=separate for hnsw/ivf)")
        self.params = params
        self.grid, self.dim, self.fingerprint = int(grid), int(dim), str(fingerprint)
        self.metas: list[PageMeta] = []
        self.pq: faiss.IndexPQ | None = None
        # pq_residual: the codec and each page's centroid codes [N, K, code bytes]
        self.residual = (ResidualPQCodec(dim, min(params.residual_centroids, grid * grid), params.residual_pq_m,
                                         params.residual_coarse_bits, params.residual_pq_bits,
                                         params.residual_centroid_choices, params.residual_coarse_range,
                                         params.residual_coarse_range_arg)
                         if params.storage == "pq_residual" else None)
        self.cells = self._empty_cells()
        self.pooled = np.zeros((0, self._pooled_width()), dtype=np.float32)
        self.coarse = (np.zeros((0, self.residual.k, self.residual.coarse_code_size), dtype=np.uint8)
                       if self.residual else None)
        self.candidates_index: faiss.Index | None = None
        self._fast_stage: FastScanShards | None = None  # stored stage, unfiltered queries (ADR 15, ADR 16)
        # Stored stage over inverted lists (ADR 17): the list centroids, each stored centroid's list
        # number [N, K] (both persisted), the lists themselves (rebuilt on load), and whether they are used.
        self.list_centroids: np.ndarray | None = None
        self.stage_lists: np.ndarray | None = None
        self._lists: CentroidLists | None = None
        self._use_lists = True
        self.device = "cpu"
        self._pos: dict[str, int] = {}
        self._lexical: LexicalChannel | None = None  # built from the text layers on first use
        self._pictures = None  # PictureIndex over the stored picture descriptors, built on first use

    # ---------------------------------------------------------------- construction
    @classmethod
    def build(
        cls,
        metas: Iterable[Any],
        cell_vectors: np.ndarray,
        params: IndexParams,
        fingerprint: str,
        grid: int | None = None,
        seed: int = 0,
    ) -> RegionIndex:
        """A new index from page metadata (PageMeta / dict / Page) and float32 cells [N, G*G, dim]."""
        cell_vectors = np.asarray(cell_vectors, dtype=np.float32)
        if cell_vectors.ndim != 3:
            raise ValueError(f"cell_vectors must be [N, G*G, dim], got shape {cell_vectors.shape}")
        n_cells, dim = cell_vectors.shape[1:]
        grid = grid or math.isqrt(n_cells)
        if grid * grid != n_cells:
            raise ValueError(f"{n_cells} cells per page is not a square grid")
        index = cls(params, grid, dim, fingerprint)
        if params.storage == "pq":
            index._train_pq(cell_vectors, seed)
        if params.storage == "pq_residual":
            index.residual.train(cell_vectors, params.pq_train_cells, seed)
        index.add(metas, cell_vectors)
        return index

    def _empty_cells(self) -> np.ndarray:
        n = self.grid * self.grid
        if self.params.storage == "float16":
            return np.zeros((0, n, self.dim), dtype=np.float16)
        if self.params.storage == "pq":
            return np.zeros((0, n, self.params.pq_m), dtype=np.uint8)
        if self.params.storage == "pq_residual":
            return np.zeros((0, n, 1 + self.residual.pq_code_size), dtype=np.uint8)
        return np.zeros((0, n, self.dim // 8), dtype=np.uint8)

    def _train_pq(self, cell_vectors: np.ndarray, seed: int) -> None:
        self.pq = train_pq(cell_vectors.reshape(-1, self.dim), self.params.pq_m, self.params.pq_train_cells,
                           np.random.default_rng(seed), seed)

    # ---------------------------------------------------------------- compression
    def _compress(self, cells: np.ndarray) -> np.ndarray:
        n, c, d = cells.shape
        if self.params.storage == "float16":
            return cells.astype(np.float16)
        if self.params.storage == "pq":
            codes = self.pq.pq.compute_codes(np.ascontiguousarray(cells.reshape(-1, d)))
            return codes.reshape(n, c, -1)
        return np.packbits(cells > 0, axis=-1)

    def decoded_cells(self, rows=slice(None)) -> np.ndarray:
        """float32 cells of the given rows back from storage (rebuilds, the bench and tests; search uses _scores)."""
        stored = self.cells[rows]
        n, c = stored.shape[:2]
        if self.params.storage == "pq_residual":
            return self.residual.decode(self.coarse[rows], stored)
        if self.params.storage == "float16":
            return stored.astype(np.float32)
        if self.params.storage == "pq":
            flat = self.pq.pq.decode(np.ascontiguousarray(stored.reshape(n * c, -1)))
            return flat.reshape(n, c, self.dim)
        signs = np.unpackbits(stored, axis=-1, count=self.dim).astype(np.float32) * 2.0 - 1.0
        return signs / math.sqrt(self.dim)

    def _scores(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Exact cell scores [len(positions), G*G] of ``query`` against the stored cells."""
        stored = self.cells[positions]
        if self.params.storage == "float16":
            return float16_scores(stored, query)
        if self.params.storage == "pq_residual":
            return self.residual.scores(self.coarse[positions], stored, query)
        if self.params.storage == "pq":
            pq = self.pq.pq
            centroids = faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub)
            # Asymmetric distance table: ⟨q_m, centroid⟩ per sub-space, then a lookup-and-sum per cell.
            table = np.einsum("mkd,md->mk", centroids, query.reshape(pq.M, pq.dsub))
            return table[np.arange(pq.M), stored.astype(np.intp)].sum(-1)
        return binary_scores(stored, query)

    # ---------------------------------------------------------------- candidate stage
    def _new_candidate_index(self, train: np.ndarray) -> faiss.Index:
        p = self.params
        if p.candidate_vectors == "centroids":
            return self._new_sq8_candidate_index(train)
        if p.faiss == "flat":
            return faiss.IndexFlatIP(self.dim)
        if p.faiss == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, p.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = p.hnsw_ef_search
            return index
        # IVF: nlist cannot exceed the training points; faiss wants ~39 points per list.
        nlist = max(1, min(p.ivf_nlist, len(train) // 39 or 1))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(train))
        index.nprobe = min(p.ivf_nprobe, nlist)
        # No own_fields: faiss's Python wrapper already keeps ``quantizer`` referenced by ``index``
        # (setting own_fields too frees it twice at exit).
        return index

    @property
    def _stage(self) -> str:
        """What the faiss stage holds: the stored residual centroids ("stored") or candidate_vectors."""
        if self.params.storage == "pq_residual" and self.params.residual_candidates == "stored":
            return "stored"
        return self.params.candidate_vectors

    def _per_page(self) -> int:
        """Candidate-stage vectors per page: faiss id // this = row position."""
        kind = self._stage
        if kind == "stored":
            return self.residual.k
        if kind == "pooled":
            return 1
        if kind == "centroids":
            return min(self.params.centroids_per_page, self.grid * self.grid)
        return self.grid * self.grid

    def _new_sq8_candidate_index(self, train: np.ndarray) -> faiss.Index:
        """Centroid vectors stored as 8-bit scalar codes (dim bytes each): K of them per page must
        fit the compressed byte budget next to the cells (ADR 7)."""
        p = self.params
        if p.faiss == "flat":
            spec = "SQ8"
        elif p.faiss == "hnsw":
            spec = f"HNSW{p.hnsw_m},SQ8"
        else:
            spec = f"IVF{max(1, min(p.ivf_nlist, len(train) // 39 or 1))},SQ8"
        index = faiss.index_factory(self.dim, spec, faiss.METRIC_INNER_PRODUCT)
        if len(train):
            index.train(np.ascontiguousarray(train, dtype=np.float32))
        if p.faiss == "hnsw":
            faiss.downcast_index(index).hnsw.efSearch = p.hnsw_ef_search
        elif p.faiss == "ivf":
            faiss.extract_index_ivf(index).nprobe = min(p.ivf_nprobe, faiss.extract_index_ivf(index).nlist)
        return index

    def _candidate_vectors(self, positions: np.ndarray | None = None, exact: np.ndarray | None = None) -> np.ndarray:
        """faiss-stage vectors of the given rows; ``exact`` = their float32 cells when at hand (add)."""
        if self.params.candidate_vectors == "pooled":
            return self.pooled if positions is None else self.pooled[positions]
        sel = slice(None) if positions is None else positions
        if self.params.candidate_vectors == "centroids":
            # Not stored separately (budget): from the exact cells on add, from the stored cells on rebuilds.
            cells = exact if exact is not None else self.decoded_cells(sel)
            return np.ascontiguousarray(page_centroids(cells, self._per_page()).reshape(-1, self.dim))
        return np.ascontiguousarray(self.decoded_cells(sel).reshape(-1, self.dim))

    def _stored_stage(self) -> faiss.Index:
        """Flat faiss scan over the stored page-centroid codes: the codec's own (trained) scalar
        quantiser, filled with the codes as they are, so scores equal ⟨q, decoded centroid⟩."""
        index = faiss.clone_index(self.residual.coarse_sq)
        index.reset()
        if len(self.coarse):
            index.add_sa_codes(np.ascontiguousarray(self.coarse.reshape(-1, self.coarse.shape[-1])))
        return index

    def _rebuild_candidates(self, exact_tail: np.ndarray | None = None, train_lists: bool = True) -> None:
        """A fresh faiss stage over every page; ``exact_tail`` = float32 cells of all pages when at hand;
        ``train_lists=False``: no new inverted lists (loading an index saved without them stays flat)."""
        if self._stage == "stored":
            self.candidates_index, self.device = to_device(self._stored_stage(), self.params.faiss)
            use = self.params.residual_fast_scan and (train_lists or self.list_centroids is not None)
            self._lists = self._new_lists() if use else None
            want_shards = self.params.residual_fast_scan and (self._lists is None or not self._use_lists)
            self._fast_stage = self._new_fast_stage() if want_shards else None
            return
        vectors = self._candidate_vectors(exact=exact_tail)
        index = self._new_candidate_index(vectors)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.candidates_index, self.device = to_device(index, self.params.faiss)

    # ---------------------------------------------------------------- maintenance
    def add(self, metas: Iterable[Any], cell_vectors: np.ndarray) -> int:
        """Append pages without rebuilding; returns how many were added. Duplicate ids are an error."""
        metas = [PageMeta.coerce(m) for m in metas]
        cell_vectors = np.asarray(cell_vectors, dtype=np.float32)
        expected = (len(metas), self.grid * self.grid, self.dim)
        if cell_vectors.shape != expected:
            raise ValueError(f"cell_vectors shape {cell_vectors.shape} != expected {expected}")
        if not np.isfinite(cell_vectors).all():
            raise ValueError("cell_vectors hold NaN or inf")
        seen = set(self._pos)
        for m in metas:
            if m.page_id in seen:
                raise ValueError(f"page {m.page_id!r} is already in the index (delete its doc first)")
            seen.add(m.page_id)
        if not metas:
            return 0
        if self.params.storage == "pq" and self.pq is None:
            self._train_pq(cell_vectors, 0)
        start = len(self.metas)
        if self.residual is not None:
            if not self.residual.trained:
                self.residual.train(cell_vectors, self.params.pq_train_cells)
            coarse, codes = self.residual.encode(cell_vectors)
            # The first add fixes the code width (a tiny training sample trains fewer PQ bits).
            self.coarse = np.concatenate([self.coarse, coarse]) if len(self.coarse) else coarse
            self.cells = np.concatenate([self.cells, codes]) if len(self.cells) else codes
        else:
            self.cells = np.concatenate([self.cells, self._compress(cell_vectors)])
        self.pooled = np.concatenate([self.pooled, _normalise(cell_vectors.mean(1))[:, : self._pooled_width()]])
        self.metas.extend(metas)
        self._pos = {m.page_id: i for i, m in enumerate(self.metas)}
        self._lexical = None
        self._pictures = None
        new_rows = np.arange(start, len(self.metas))
        if self.candidates_index is None or self.params.faiss == "ivf" and not self._ivf_trained():
            self._rebuild_candidates(exact_tail=cell_vectors if start == 0 else None)
        elif self._stage == "stored":
            if (self.list_centroids is None and self.params.residual_fast_scan and self.device == "cpu"
                    and list_count(self.coarse.shape[0] * self.coarse.shape[1], self.params.residual_stage_lists)):
                self._rebuild_candidates()  # the corpus has grown enough for inverted lists: train them
                return len(metas)
            codes = np.ascontiguousarray(coarse.reshape(-1, coarse.shape[-1]))
            self.candidates_index.add_sa_codes(codes)
            if self.list_centroids is not None:
                new_lists = self._assign_lists(codes, self._lists).reshape(len(coarse), -1)
                self.stage_lists = np.concatenate([self.stage_lists, new_lists])
                if self._lists is not None:
                    self._lists.fill(codes, new_lists.reshape(-1), first_id=start * coarse.shape[1])
            if self._fast_stage is not None:  # decoded SQ4 values are codebook entries: they re-encode to `codes`
                self._fast_stage.add(self.residual.coarse_sq.sa_decode(codes))
        else:
            self.candidates_index.add(self._candidate_vectors(new_rows, exact=cell_vectors).astype(np.float32))
        return len(metas)

    def _pooled_width(self) -> int:
        """Mean page vectors are kept only when they are the candidate stage (they count in the byte budget)."""
        return self.dim if self._stage == "pooled" else 0

    def _ivf_trained(self) -> bool:
        return bool(self.candidates_index is not None and self.candidates_index.is_trained)

    def delete_doc(self, doc: str) -> int:
        """Remove every page of ``doc``; returns the number removed (0 for an unknown doc)."""
        keep = np.array([m.doc != doc for m in self.metas], dtype=bool)
        removed = int((~keep).sum())
        if removed == 0:
            return 0
        self.cells = self.cells[keep]
        if self.coarse is not None:
            self.coarse = self.coarse[keep]
        if self.stage_lists is not None:
            self.stage_lists = self.stage_lists[keep]
        self.pooled = self.pooled[keep]
        self.metas = [m for m, k in zip(self.metas, keep) if k]
        self._pos = {m.page_id: i for i, m in enumerate(self.metas)}
        self._lexical = None
        self._pictures = None
        # faiss ids are row positions, which shift: rebuild the (small) candidate stage.
        self._rebuild_candidates()
        return removed

    # ---------------------------------------------------------------- search
    def __len__(self) -> int:
        return len(self.metas)

    @property
    def page_ids(self) -> list[str]:
        return [m.page_id for m in self.metas]

    def meta(self, page_id: str) -> PageMeta:
        return self.metas[self._pos[page_id]]

    def position(self, page_id: str) -> int:
        """The page's row in the index (its position in ``page_ids``, the lexical channel's pages)."""
        return self._pos[page_id]

    def has_page(self, page_id: str) -> bool:
        return page_id in self._pos

    def cell_vectors(self, page_id: str) -> np.ndarray:
        """float32 [G*G, dim]: one page's stored cell vectors (decompressed), for the reader's visual tokens."""
        return self.decoded_cells([self._pos[page_id]])[0]

    def _allowed(self, filters: dict | None) -> np.ndarray | None:
        """Row positions that pass the filters (None = no filter). Lists mean "any of"; tags need all."""
        if not filters:
            return None
        unknown = set(filters) - {"doc", "collection", "tags"}
        if unknown:
            raise ValueError(f"unknown filter keys {sorted(unknown)} (doc, collection, tags)")

        def as_set(value) -> set[str]:
            return {value} if isinstance(value, str) else set(value)

        docs = as_set(filters["doc"]) if filters.get("doc") is not None else None
        colls = as_set(filters["collection"]) if filters.get("collection") is not None else None
        tags = as_set(filters["tags"]) if filters.get("tags") else None
        keep = [
            i
            for i, m in enumerate(self.metas)
            if (docs is None or m.doc in docs)
            and (colls is None or m.collection in colls)
            and (tags is None or tags <= set(m.tags))
        ]
        return np.asarray(keep, dtype=np.int64)

    def _search_params(self, allowed: np.ndarray | None):
        if allowed is None:
            sel = None
        elif self._stage == "pooled":
            sel = faiss.IDSelectorBatch(allowed)
        else:
            n = self._per_page()
            ids = (allowed[:, None] * n + np.arange(n)[None, :]).ravel().astype(np.int64)
            sel = faiss.IDSelectorBatch(ids)
        kind = self.params.faiss
        if kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=self.params.hnsw_ef_search)
        elif kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.candidates_index.nprobe)
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
            params._sel = sel  # keep the selector referenced while faiss uses it
        return params

    def candidate_pages(
        self, query: np.ndarray, candidates: int, filters: dict | None = None
    ) -> np.ndarray:
        """Row positions of up to ``candidates`` pages from the faiss stage (filters applied inside)."""
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        allowed = self._allowed(filters)
        if allowed is not None and len(allowed) <= candidates:
            return allowed  # the filter alone is already a candidate set this small: score them all
        if len(self.metas) <= candidates and allowed is None:
            return np.arange(len(self.metas))
        params = self._search_params(allowed)
        if self._stage == "pooled":
            _, ids = self.candidates_index.search(query, candidates, params=params)
            ids = ids[0]
            return ids[ids >= 0]
        if self._stage == "stored":
            return self._stored_candidates(query, candidates, params,
                                           len(allowed) if allowed is not None else len(self.metas))
        # Several vectors per page: over-fetch, map them to pages, keep the first C distinct pages.
        # Centroids: C*K vectors hold at least C distinct pages (at most K per page), so C is exact.
        n = self._per_page()
        fetch = min(self.candidates_index.ntotal, candidates * (n if self.params.candidate_vectors == "centroids" else 8))
        _, ids = self.candidates_index.search(query, fetch, params=params)
        return _distinct_pages(ids[0], n)[:candidates]

    def _stored_candidates(self, query: np.ndarray, candidates: int, params, n_allowed: int) -> np.ndarray:
        """First C distinct pages by their best stored centroid. Fetching C*K centroids would
        guarantee C pages but makes faiss keep a C*K heap (a synthetic 640k-code SQ4 scan: 33 ms at
        k = 8192 vs 21 ms at k = 128), so fetch 4*C (fast scan: 8*C) and double until C distinct
        pages (or every allowed page) are in."""
        k = self._per_page()
        want = min(candidates, n_allowed)
        use_fast = self.params.residual_fast_scan and getattr(params, "sel", None) is None
        fast = self._fast_stage if use_fast else None
        if use_fast and self._lists is not None and self._use_lists:
            # Inverted lists (ADR 17): the probed lists normally hold C pages; if not, the exact scan below.
            fetch = min(self._lists.ntotal, FAST_SCAN_FIRST_FETCH * candidates)
            pages = _distinct_pages(self._fast_top(self._lists, query, fetch), k)
            if len(pages) >= want:
                return pages[:candidates]
            fast = None
        # Fast scan's cost barely grows with k (a 960k-code scan: 7.0 ms at k = 1024, 8.6 ms at 4096),
        # so it starts at 8*C: on the bench's 10k pages 4*C needed a second scan for 6 % of questions
        # (p95 9.8 ms against 7.4 ms at 8*C, p50 5.1 against 5.5 ms; ADR 16).
        fetch = min(self.candidates_index.ntotal, (FAST_SCAN_FIRST_FETCH if fast is not None else 4) * candidates)
        while True:
            ids = self._fast_top(fast, query, fetch) if fast is not None else \
                self.candidates_index.search(query, fetch, params=params)[1][0]
            pages = _distinct_pages(ids, k)
            if len(pages) >= want or fetch >= min(self.candidates_index.ntotal, n_allowed * k):
                return pages[:candidates]
            fetch = min(self.candidates_index.ntotal, fetch * 2)

    def set_fast_scan(self, enabled: bool) -> bool:
        """Switch the stored stage's fast scan on or off for this instance (the bench compares both);
        returns whether it is on (it stays off where it does not apply: no stored SQ4 stage, GPU)."""
        if self._stage != "stored":
            return False
        self.params = self.params.model_copy(update={"residual_fast_scan": bool(enabled)})
        if enabled and self._fast_stage is None:  # switching off keeps it built (and kept up to date by add)
            self._fast_stage = self._new_fast_stage()
        return bool(enabled) and self._fast_stage is not None

    def set_stage_lists(self, enabled: bool) -> bool:
        """Use the inverted lists (ADR 17) or scan every code (ADR 16's shards) for this instance (the
        bench compares both); returns whether the lists are in use."""
        self._use_lists = bool(enabled)
        if self._stage != "stored" or not self.params.residual_fast_scan:
            return False
        if not enabled and self._fast_stage is None:
            self._fast_stage = self._new_fast_stage()
        return bool(enabled) and self._lists is not None

    def _assign_lists(self, codes: np.ndarray, stage: CentroidLists | None, chunk: int = 65536) -> np.ndarray:
        """uint16 list number of each centroid code [M, code bytes] by ``stage``'s list centroids (None:
        lists not built here, e.g. fast scan off: a stage only for its quantiser); decoded in chunks
        (490 MB at 10k pages)."""
        if stage is None:
            stage = CentroidLists(self.list_centroids, self.residual.level_codebook(),
                                  self.params.residual_stage_probe)
        parts = [stage.assign(self.residual.coarse_sq.sa_decode(np.ascontiguousarray(codes[i : i + chunk])))
                 for i in range(0, len(codes), chunk)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)

    def _new_lists(self, seed: int = 0) -> CentroidLists | None:
        """The stored centroid codes in inverted lists (CPU, SQ4 centroids, enough codes; else None).

        The list centroids are trained once, when the corpus first has enough codes; later rebuilds
        (load, delete) and adds reuse them and the stored list numbers."""
        codebook = self.residual.level_codebook()
        if self.device != "cpu" or codebook is None:
            return None
        flat = np.ascontiguousarray(self.coarse.reshape(-1, self.coarse.shape[-1]))
        if self.list_centroids is None:
            lists = list_count(len(flat), self.params.residual_stage_lists)
            if lists == 0:
                return None
            sample = self.residual.coarse_sq.sa_decode(flat[training_rows(len(flat), lists, seed)])
            self.list_centroids = train_list_centroids(sample, lists, seed)
            self.stage_lists = None
        stage = CentroidLists(self.list_centroids, codebook, self.params.residual_stage_probe)
        if self.stage_lists is None or self.stage_lists.shape != self.coarse.shape[:2]:
            self.stage_lists = self._assign_lists(flat, stage).reshape(self.coarse.shape[:2])
        stage.fill(flat, self.stage_lists.reshape(-1))
        return stage

    def _new_fast_stage(self) -> FastScanShards | None:
        """The stored centroid codes as fast-scan shards, one per ``residual_fast_scan_threads`` (CPU only;
        None where fast scan does not apply)."""
        if self.device != "cpu":
            return None
        stage = FastScanShards(self.coarse.reshape(-1, self.coarse.shape[-1]), self.residual.fast_scan_stage,
                               self.params.residual_fast_scan_threads)
        return stage if stage.available else None

    def _fast_top(self, stage: FastScanShards | CentroidLists, query: np.ndarray, fetch: int) -> np.ndarray:
        """Ids of the ``fetch`` best stored centroids a fast-scan stage finds: it fetches twice as many
        by its approximate (8-bit table) scores, then they are re-ranked by their exact SQ4 scores, so
        the result matches the exact scan's top ``fetch`` over what the stage scanned (ADR 15)."""
        _, ids = stage.search(query, min(stage.ntotal, FAST_SCAN_OVERFETCH * fetch))
        exact = self.residual.coarse_scores(self.coarse.reshape(-1, self.coarse.shape[-1])[ids], query)
        return ids[np.argsort(-exact, kind="stable")][:fetch]

    def heatmaps(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Exact [len(positions), G, G] heatmaps of ``query`` on the given pages."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dim:
            raise ValueError(f"query has {query.shape[0]} dims, the index holds {self.dim}")
        scores = self._scores(np.asarray(positions, dtype=np.int64), query)
        return scores.reshape(-1, self.grid, self.grid).astype(np.float32, copy=False)

    def heatmap(
        self, page_id: str, query: np.ndarray, query_text: str | None = None, lexical_weight: float = 0.0,
        lexical_scope: str = "cell", term_weights: str = "corpus",
    ) -> np.ndarray:
        """One page's heatmap, fused with the lexical channel exactly as ``search`` does
        (``term_weights="page"``: as ``region_heatmaps`` re-weighs it for picking regions)."""
        positions = np.array([self._pos[page_id]])
        dense = self.heatmaps(positions, query)[0]
        if query_text and lexical_weight > 0:
            fused = dense + lexical_weight * self.lexical.heatmaps(query_text, positions, lexical_scope)[0]
            if term_weights == "corpus":
                return fused
            return self._rebase(fused, dense + lexical_weight * self.lexical.heatmaps(
                query_text, positions, lexical_scope, term_weights)[0])
        return dense

    def region_heatmaps(self, hits: list[PageHit], query_text: str, lexical_weight: float,
                        lexical_scope: str) -> list[np.ndarray]:
        """The hits' heatmaps with page-local term weights, for picking regions on each page.

        Each map is shifted so that its peak equals the page's score: pages keep their corpus
        ranking (the top region of each page scores as its page does) while the regions within
        a page are told apart by the terms that are rare on that page.
        """
        if not hits or not query_text or lexical_weight <= 0:
            return [h.heatmap for h in hits]
        positions = np.array([self._pos[h.page_id] for h in hits])
        corpus = self.lexical.heatmaps(query_text, positions, lexical_scope)
        local = self.lexical.heatmaps(query_text, positions, lexical_scope, "page")
        return [self._rebase(h.heatmap, h.heatmap + lexical_weight * (loc - cor))
                for h, cor, loc in zip(hits, corpus, local)]

    @staticmethod
    def _rebase(ranked: np.ndarray, local: np.ndarray) -> np.ndarray:
        return (local + (float(ranked.max()) - float(local.max()))).astype(np.float32)

    @property
    def lexical(self) -> LexicalChannel:
        """BM25 + term-to-cell maps over the stored text layers (derived, so never persisted)."""
        if self._lexical is None:
            self._lexical = LexicalChannel([m.words for m in self.metas], self.grid,
                                           [m.blocks for m in self.metas])
        return self._lexical

    @property
    def pictures(self):
        """Every stored picture, searchable by an image query (derived, so never persisted on its own)."""
        if self._pictures is None:
            from components.index.pictures import PictureIndex

            self._pictures = PictureIndex(self.metas)
        return self._pictures

    def search(
        self,
        query_vec: np.ndarray,
        k_pages: int,
        candidates: int | None = None,
        filters: dict | None = None,
        exhaustive: bool = False,
        query_text: str | None = None,
        lexical_weight: float = 0.0,
        lexical_candidates: int = 0,
        lexical_scope: str = "cell",
    ) -> list[PageHit]:
        """Top ``k_pages`` pages by exact max-cell score among the candidate pages.

        Candidates come from the faiss stage and, when ``query_text`` is given, also from
        BM25 (``lexical_candidates`` pages). With ``lexical_weight`` > 0 each heatmap is
        the dense cell scores plus ``lexical_weight`` times the query terms' idf share
        printed in each cell, or in each cell's layout block (``lexical_scope``).
        """
        if not self.metas or k_pages <= 0:
            return []
        query = np.asarray(query_vec, dtype=np.float32).reshape(-1)
        use_lexical = bool(query_text) and lexical_weight > 0
        if exhaustive:
            allowed = self._allowed(filters)
            positions = np.arange(len(self.metas)) if allowed is None else allowed
        else:
            c = max(candidates or self.params.candidates, k_pages)
            positions = self.candidate_pages(query, c, filters)
            if use_lexical and lexical_candidates > 0:
                sparse = self.lexical.top_pages(query_text, lexical_candidates, self._allowed(filters))
                positions = np.concatenate([positions, sparse[~np.isin(sparse, positions)]])
        if len(positions) == 0:
            return []
        maps = self.heatmaps(positions, query)
        if use_lexical:
            maps = maps + lexical_weight * self.lexical.heatmaps(query_text, positions, lexical_scope)
        page_scores = maps.reshape(len(positions), -1).max(1)
        order = np.argsort(-page_scores, kind="stable")[:k_pages]
        return [
            PageHit(self.metas[positions[i]].page_id, float(page_scores[i]), maps[i]) for i in order
        ]

    # ---------------------------------------------------------------- persistence
    def stats(self) -> dict:
        n = len(self.metas)
        cand_bytes = 0
        if self.candidates_index is not None and self._stage != "stored":  # stored: its codes are `coarse`
            cand_bytes = len(faiss.serialize_index(to_cpu(self.candidates_index, self.device)))
        if self.list_centroids is not None:  # stored stage's inverted lists: list numbers + list centroids
            cand_bytes = self.stage_lists.nbytes + self.list_centroids.nbytes
        pq_bytes = len(faiss.serialize_index(self.pq)) if self.pq is not None else 0
        pq_bytes += self.residual.nbytes() if self.residual is not None else 0
        meta_bytes = len(json.dumps([asdict(m) for m in self.metas]).encode())
        per = (lambda b: round(b / n, 1)) if n else (lambda b: 0.0)
        bytes_per_page = {
            "cells": per(self.cells.nbytes),
            "coarse": per(self.coarse.nbytes if self.coarse is not None else 0),
            "pooled": per(self.pooled.nbytes),
            "candidates": per(cand_bytes),
            "codebook": per(pq_bytes),
            "text_layer": per(meta_bytes),
        }
        # Vector payload = what the storage mode costs (cells, candidate stage, pooled, codebook).
        bytes_per_page["vectors_total"] = round(
            sum(v for k, v in bytes_per_page.items() if k != "text_layer"), 1
        )
        return {
            "pages": n,
            "docs": len({m.doc for m in self.metas}),
            "pictures": sum(len(m.pictures) for m in self.metas),
            "storage": self.params.storage,
            "faiss": self.params.faiss,
            "candidate_vectors": self._stage,
            "stage_lists": ({"lists": self._lists.lists, "nprobe": self._lists.nprobe, "in_use": self._use_lists}
                            if self._lists is not None else None),
            "candidates": self.params.candidates,
            "grid": self.grid,
            "dim": self.dim,
            "device": self.device,
            "fingerprint": self.fingerprint,
            "bytes_per_page": bytes_per_page,
        }

    def save(self, out_dir: Path) -> Path:
        """Write a new version folder, fsync it, then atomically repoint CURRENT; returns the folder.

        A crash at any point before the CURRENT swap leaves the previous version live; a leftover
        half-written version is removed by the next successful save. Saves to one folder take
        turns (a file lock), and only versions and debris the index wrote are ever deleted; a
        non-empty folder that is not an index is refused (version_folders).
        """
        out_dir = Path(out_dir)
        check_target(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with index_lock(out_dir):
            version = new_version_name()
            tmp = temp_folder(out_dir, version)
            tmp.mkdir()
            try:
                mark_version(tmp, version)
                self._write_parts(tmp)
                _fsync_dir(tmp)
                final = out_dir / version
                os.replace(tmp, final)
                pointer = temp_pointer(out_dir, version)
                _write_bytes_synced(pointer, lambda fh: fh.write(version.encode()))
                os.replace(pointer, out_dir / CURRENT)
                _fsync_dir(out_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            remove_stale(out_dir, keep=version)  # older versions and debris of crashed saves
        return final

    def _write_parts(self, folder: Path) -> None:
        manifest = {
            "format": "regionops-region-index",
            "format_version": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "grid": self.grid,
            "dim": self.dim,
            "n_pages": len(self.metas),
            "params": self.params.model_dump(mode="json"),
        }
        for name, array in (("cells.npy", self.cells), ("pooled.npy", self.pooled)):
            _write_bytes_synced(folder / name, lambda fh, a=array: np.save(fh, a, allow_pickle=False))
        pages = json.dumps([asdict(m) for m in self.metas], ensure_ascii=False).encode()
        _write_bytes_synced(folder / "pages.json", lambda fh: fh.write(pages))
        cand = to_cpu(self.candidates_index, self.device)
        if self._stage == "stored":  # the codes are in coarse.npy; keep only the trained quantiser
            cand = faiss.clone_index(cand)
            cand.reset()
        blob = faiss.serialize_index(cand).tobytes()
        _write_bytes_synced(folder / "candidates.faiss", lambda fh: fh.write(blob))
        if self.pq is not None:
            pq_blob = faiss.serialize_index(self.pq).tobytes()
            _write_bytes_synced(folder / "pq.faiss", lambda fh: fh.write(pq_blob))
        if self.residual is not None:
            _write_bytes_synced(folder / "coarse.npy", lambda fh: np.save(fh, self.coarse, allow_pickle=False))
            for name, blob in zip(("coarse_sq.faiss", "residual_pq.faiss"), self.residual.serialized()):
                _write_bytes_synced(folder / name, lambda fh, b=blob: fh.write(b))
        if self.list_centroids is not None:
            for name, array in (("stage_centroids.npy", self.list_centroids), ("stage_lists.npy", self.stage_lists)):
                _write_bytes_synced(folder / name, lambda fh, a=array: np.save(fh, a, allow_pickle=False))
        manifest["files"] = file_checksums(folder)  # sha256 per file, checked on load
        # The manifest goes last: a version folder without it is never treated as complete.
        text = json.dumps(manifest, indent=2, sort_keys=True).encode()
        _write_bytes_synced(folder / "manifest.json", lambda fh: fh.write(text))

    @classmethod
    def load(cls, index_dir: Path, expected_fingerprint: str | None = None,
             verify: bool = True) -> RegionIndex:
        """Load the version ``CURRENT`` names; with ``verify`` every file's sha256 is checked first.

        Damage (byte flips, truncation, bad JSON, a missing file) raises ``IndexFormatError``
        naming the file.
        """
        index_dir = Path(index_dir)
        pointer = index_dir / CURRENT
        if not pointer.is_file():
            raise IndexFormatError(
                f"{index_dir} holds no region index ({CURRENT} missing): run `regionops index build`"
            )
        version = pointer.read_text().strip()
        folder = index_dir / version
        if "/" in version or not (folder / "manifest.json").is_file():
            raise IndexFormatError(f"{index_dir}: {CURRENT} points at an incomplete version {version!r}")

        def part(name: str, read):
            try:
                return read(folder / name)
            except IndexError_:
                raise
            except (ValueError, KeyError, TypeError, RuntimeError, OSError, EOFError) as exc:
                raise IndexFormatError(
                    f"{folder / name}: unreadable ({type(exc).__name__}: {exc}); rebuild the index"
                ) from exc

        manifest = part("manifest.json", lambda p: json.loads(p.read_text("utf-8")))
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
            raise IndexFormatError(f"{folder / 'manifest.json'}: not an index manifest")
        if verify and "files" in manifest:  # indexes saved before checksums have none to check
            try:
                verify_files(folder, manifest["files"])
            except ChecksumMismatchError as exc:
                raise IndexFormatError(f"{exc}; rebuild the index") from exc
        # Errors past the per-file reads (a key the manifest lacks, parts that do not fit) name
        # the manifest, which describes them.
        return part("manifest.json", lambda _: cls._from_parts(folder, manifest, index_dir,
                                                               expected_fingerprint, part))

    @classmethod
    def _from_parts(cls, folder: Path, manifest: dict, index_dir: Path,
                    expected_fingerprint: str | None, part) -> RegionIndex:
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{folder}: format version {manifest.get('format_version')} != {FORMAT_VERSION}; rebuild the index"
            )
        if expected_fingerprint is not None and manifest["fingerprint"] != expected_fingerprint:
            raise FingerprintMismatchError(
                f"index {index_dir} was built by encoder {manifest['fingerprint'][:16]}…, "
                f"but the query encoder is {expected_fingerprint[:16]}…: its cell vectors would be "
                "meaningless for these queries. Rebuild it with `regionops index build`."
            )
        params = IndexParams.model_validate(manifest["params"])
        index = cls(params, manifest["grid"], manifest["dim"], manifest["fingerprint"])
        index.cells = part("cells.npy", _npy)
        # An index saved when every mode kept them drops the unused mean vectors.
        index.pooled = part("pooled.npy", _npy)[:, : index._pooled_width()]
        index.metas = part("pages.json", _page_metas)
        for m in index.metas:  # an index saved before blocks were stored: group them from the words
            if not m.blocks and m.words:
                from components.data.layout import blocks_from_words

                m.blocks = [list(b.box) for b in blocks_from_words(m.page_id, m.words)]
        index._pos = {m.page_id: i for i, m in enumerate(index.metas)}
        if params.storage == "pq":
            index.pq = part("pq.faiss", _faiss)
        if params.storage == "pq_residual":
            index.coarse = part("coarse.npy", _npy)
            index.residual = ResidualPQCodec.from_serialized(
                index.dim, index.coarse.shape[1], params.residual_pq_m, params.residual_coarse_bits,
                params.residual_pq_bits,
                part("coarse_sq.faiss", Path.read_bytes), part("residual_pq.faiss", Path.read_bytes),
                params.residual_centroid_choices)
            if len(index.coarse) != len(index.cells):
                raise IndexFormatError(f"{folder}: page centroids and cells disagree; rebuild the index")
            if (folder / "stage_centroids.npy").is_file():  # absent before ADR 17: such an index scans every code
                index.list_centroids = part("stage_centroids.npy", _npy)
                index.stage_lists = part("stage_lists.npy", _npy)
                if (index.stage_lists.shape != index.coarse.shape[:2] or index.list_centroids.ndim != 2
                        or index.list_centroids.shape[1] != index.dim
                        or (index.stage_lists.size and index.stage_lists.max() >= len(index.list_centroids))):
                    raise IndexFormatError(f"{folder}: the stage's inverted lists and the page centroids "
                                           "disagree; rebuild the index")
        cand = part("candidates.faiss", _faiss)
        if params.faiss == "hnsw":
            faiss.downcast_index(cand).hnsw.efSearch = params.hnsw_ef_search
        if index._stage == "stored":
            index._rebuild_candidates(train_lists=False)
        else:
            if cand.ntotal != len(index.metas) * index._per_page():
                raise IndexFormatError(f"{folder}: candidate stage and pages disagree; rebuild the index")
            index.candidates_index, index.device = to_device(cand, params.faiss)
        if (len(index.metas) != manifest["n_pages"] or len(index.cells) != len(index.metas)):
            raise IndexFormatError(f"{folder}: parts disagree on the page count; rebuild the index")
        return index
