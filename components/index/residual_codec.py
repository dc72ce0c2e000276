"""Cell codec of ``index.storage: pq_residual``: a per-page coarse codebook plus PQ residuals (ADR 11).

Each page's cells are clustered into K spherical k-means centroids (the same batched k-means as
the candidate stage, ``summaries.page_centroids``), stored as faiss scalar-quantiser codes
(``SQ4``/``SQ6``/``SQ8``: dim × bits / 8 bytes each) whose levels span a clipped range of each
component (mean ± 2.25 std by default, ADR 20), not its full min-max. A cell is stored as the id
of its page centroid (one byte) plus the faiss PQ code of its residual (cell - decoded centroid,
``pq_m`` codes of ``pq_bits`` bits). The residual of a cell from its own page's centroid is much
smaller than the cell itself, so the same PQ bytes give a far finer reconstruction than PQ on
the raw cells (measured in ADR 11).

Scores stay exact for the stored code: ⟨q, centroid⟩ per page centroid plus an asymmetric
distance table ⟨q_m, pq_centroid⟩ looked up per cell, so heatmaps never materialise vectors.

Over 400 lines on purpose: training, encoding, decoding and scoring share one code layout
(coarse levels, centroid choices, residual codebooks), and splitting them would spread that
layout over modules.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from components.index.summaries import page_centroids

_ENCODE_CHUNK = 1024  # pages encoded at once
_SQ_TYPES = {
    4: faiss.ScalarQuantizer.QT_4bit,
    6: faiss.ScalarQuantizer.QT_6bit,
    8: faiss.ScalarQuantizer.QT_8bit,
}
# How the quantiser picks each component's [vmin, vmin + vdiff] from the training centroids (ADR 20);
# values outside it are clipped to the end levels. Decoding is vmin + (code + 0.5)·step for all of them.
_RANGE_STATS = {
    "minmax": faiss.ScalarQuantizer.RS_minmax,
    "meanstd": faiss.ScalarQuantizer.RS_meanstd,
    "quantiles": faiss.ScalarQuantizer.RS_quantiles,
    "optim": faiss.ScalarQuantizer.RS_optim,
}


def train_pq(
    vectors: np.ndarray, m: int, max_train: int, rng: np.random.Generator, seed: int, bits: int = 8
) -> faiss.IndexPQ:
    """An inner-product faiss PQ (``m`` sub-quantisers of ``bits`` bits) trained on a sample of at most
    ``max_train`` vectors."""
    take = min(len(vectors), max_train)
    sample = (
        vectors[rng.choice(len(vectors), size=take, replace=False)]
        if take < len(vectors)
        else vectors
    )
    # b-bit codes need >= 2**b training points per sub-space; smaller corpora get fewer bits.
    nbits = min(bits, max(1, math.floor(math.log2(max(2, len(sample))))))
    pq = faiss.IndexPQ(vectors.shape[1], m, nbits, faiss.METRIC_INNER_PRODUCT)
    pq.pq.cp.seed = seed
    pq.train(np.ascontiguousarray(sample))
    return pq


def unpack_codes(codes: np.ndarray, m: int, nbits: int) -> np.ndarray:
    """faiss PQ codes [..., ceil(m*nbits/8)] bytes -> sub-quantiser indices [..., m] (intp).

    faiss packs each index least significant bit first, one after the other (BitstringWriter).
    """
    if nbits == 8:
        return codes[..., :m].astype(np.intp)
    bits = np.unpackbits(codes, axis=-1, count=m * nbits, bitorder="little").reshape(
        *codes.shape[:-1], m, nbits
    )
    return bits.astype(np.intp) @ (1 << np.arange(nbits, dtype=np.intp))


class ResidualPQCodec:
    def __init__(
        self,
        dim: int,
        k: int,
        pq_m: int,
        coarse_bits: int = 8,
        pq_bits: int = 8,
        choices: int = 1,
        coarse_range: str = "minmax",
        coarse_range_arg: float = 0.0,
    ):
        if dim % pq_m:
            raise ValueError(f"index.pq_residual.pq_m={pq_m} must divide the vector size {dim}")
        if not 1 <= pq_bits <= 16:
            raise ValueError(f"index.pq_residual.pq_bits must be in 1..16, got {pq_bits}")
        if not 1 <= k <= 256:
            raise ValueError(
                f"index.pq_residual.centroids must be in 1..256 (one byte per cell), got {k}"
            )
        if coarse_bits not in _SQ_TYPES:
            raise ValueError(
                f"index.pq_residual.coarse_bits must be one of {sorted(_SQ_TYPES)}, got {coarse_bits}"
            )
        self.dim, self.k, self.pq_m, self.coarse_bits = (
            int(dim),
            int(k),
            int(pq_m),
            int(coarse_bits),
        )
        self.pq_bits = int(pq_bits)
        if choices < 1:
            raise ValueError(f"index.pq_residual.centroid_choices must be >= 1, got {choices}")
        self.choices = int(
            choices
        )  # encoding only: codes decode the same whichever centroid was chosen
        if coarse_range not in _RANGE_STATS:
            raise ValueError(
                f"index.pq_residual.coarse_range must be one of {sorted(_RANGE_STATS)}, got {coarse_range!r}"
            )
        if coarse_range == "quantiles" and not 0.0 < coarse_range_arg < 0.5:
            raise ValueError(
                "index.pq_residual.coarse_range=quantiles clips this share of each tail: "
                f"pq_residual.coarse_range_arg must be in (0, 0.5), got {coarse_range_arg}"
            )
        if coarse_range == "meanstd" and coarse_range_arg <= 0:
            raise ValueError(
                f"index.pq_residual.coarse_range=meanstd needs pq_residual.coarse_range_arg > 0 "
                f"(standard deviations), got {coarse_range_arg}"
            )
        # training only: a trained quantiser keeps its range (it is serialised with it). faiss widens a
        # min-max range by arg × (max − min) on each side, so min-max takes arg 0.
        self.coarse_range = coarse_range
        self.coarse_range_arg = 0.0 if coarse_range == "minmax" else float(coarse_range_arg)
        self.coarse_sq: faiss.IndexScalarQuantizer | None = None
        self.pq: faiss.IndexPQ | None = None
        # (the quantiser it was derived from, its (vmin, step) or None): see _coarse_affine
        self._affine_cache: tuple | None = None

    @property
    def coarse_code_size(self) -> int:
        """Bytes of one page centroid's scalar code."""
        return math.ceil(self.dim * self.coarse_bits / 8)

    @property
    def pq_code_size(self) -> int:
        """Bytes of one cell's residual code (fewer bits when the training sample was tiny)."""
        return (
            self.pq.pq.code_size if self.pq is not None else math.ceil(self.pq_m * self.pq_bits / 8)
        )

    @property
    def trained(self) -> bool:
        return self.coarse_sq is not None and self.pq is not None

    # ------------------------------------------------------------------ training
    def train(self, cells: np.ndarray, max_train_cells: int, seed: int = 0) -> None:
        """Fit the scalar quantiser of the page centroids and the residual PQ from float32 cells [N, C, dim].

        Only as many pages as ``max_train_cells`` cells fill are clustered here (a seeded sample):
        the per-page k-means is the costly part and ``encode`` runs it on every page anyway.
        """
        rng = np.random.default_rng(seed)
        n_pages = max(1, min(len(cells), math.ceil(max_train_cells / cells.shape[1])))
        if n_pages < len(cells):
            cells = cells[np.sort(rng.choice(len(cells), size=n_pages, replace=False))]
        k = min(self.k, cells.shape[1])
        centroids = page_centroids(cells, k).reshape(-1, self.dim)
        sq = faiss.IndexScalarQuantizer(
            self.dim, _SQ_TYPES[self.coarse_bits], faiss.METRIC_INNER_PRODUCT
        )
        sq.sq.rangestat, sq.sq.rangestat_arg = (
            _RANGE_STATS[self.coarse_range],
            self.coarse_range_arg,
        )
        sq.train(np.ascontiguousarray(centroids))
        self.coarse_sq = sq
        residuals = self._residuals(
            cells, self._encode_coarse(cells, centroids.reshape(len(cells), k, -1))
        )
        self.pq = train_pq(residuals, self.pq_m, max_train_cells, rng, seed, self.pq_bits)

    # ------------------------------------------------------------------ coding
    def _encode_coarse(self, cells: np.ndarray, centroids: np.ndarray | None = None) -> np.ndarray:
        if centroids is None:
            centroids = page_centroids(cells, min(self.k, cells.shape[1]))
        n, k, d = centroids.shape
        codes = self.coarse_sq.sa_encode(
            np.ascontiguousarray(centroids.reshape(-1, d), dtype=np.float32)
        )
        return codes.reshape(n, k, -1)

    def _decode_coarse(self, coarse: np.ndarray) -> np.ndarray:
        n, k, size = coarse.shape
        return self.coarse_sq.sa_decode(np.ascontiguousarray(coarse.reshape(-1, size))).reshape(
            n, k, self.dim
        )

    @staticmethod
    def _nearest_centroids(cells: np.ndarray, decoded: np.ndarray, choices: int) -> np.ndarray:
        """[N*C, choices]: each cell's ``choices`` nearest decoded page centroids [N, K, dim], nearest first."""
        n, c, _ = cells.shape
        similarity = np.matmul(cells, decoded.transpose(0, 2, 1)).reshape(n * c, -1)  # [cells, K]
        choices = min(choices, similarity.shape[1])
        if choices == 1:
            return similarity.argmax(-1)[:, None]
        top = np.argpartition(-similarity, choices - 1, axis=1)[:, :choices]
        return np.take_along_axis(
            top, np.argsort(-np.take_along_axis(similarity, top, 1), axis=1), 1
        )

    def _residuals(self, cells: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        """Residuals [N*C, dim] of the cells [N, C, dim] from their nearest decoded page centroid."""
        decoded = self._decode_coarse(coarse)
        nearest = self._nearest_centroids(cells, decoded, 1)[:, 0]
        page = np.repeat(np.arange(len(cells)), cells.shape[1])
        return cells.reshape(len(nearest), -1) - decoded[page, nearest]

    def encode(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 cells [N, C, dim] -> (centroid codes [N, K, dim*bits/8], cell codes [N, C, 1 + pq_code_size]).

        With ``choices`` > 1 (ADR 18) a cell is coded against whichever of its ``choices`` nearest page
        centroids reconstructs it best (centroid + PQ code of the residual), not simply the nearest:
        the same bytes, ``choices`` PQ encodings per cell at build, a smaller reconstruction error.
        """
        if not self.trained:
            raise RuntimeError("the residual codec is not trained (ResidualPQCodec.train)")
        if len(cells) > _ENCODE_CHUNK:  # bounds the float32 temporaries (4 × cells) at 10k pages
            parts = [
                self.encode(cells[i : i + _ENCODE_CHUNK])
                for i in range(0, len(cells), _ENCODE_CHUNK)
            ]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        n, c, _ = cells.shape
        coarse = self._encode_coarse(cells)
        decoded = self._decode_coarse(coarse)
        ranked = self._nearest_centroids(
            cells, decoded, self.choices
        )  # nearest first: it wins ties
        choices = ranked.shape[1]
        flat = cells.reshape(n * c, -1)
        page = np.repeat(np.arange(n), c)
        assign = ranked[:, 0].copy()
        pq_codes, best_error = None, None
        for j in range(choices):
            residual = np.ascontiguousarray(flat - decoded[page, ranked[:, j]], dtype=np.float32)
            codes = self.pq.pq.compute_codes(residual)
            if choices == 1:
                pq_codes = codes
                break
            error = np.square(residual - self.pq.pq.decode(codes)).sum(-1)
            if j == 0:
                pq_codes, best_error = codes, error
                continue
            better = error < best_error
            assign[better], pq_codes[better], best_error[better] = (
                ranked[better, j],
                codes[better],
                error[better],
            )
        cell_codes = np.concatenate([assign.astype(np.uint8)[:, None], pq_codes], axis=-1)
        return coarse, cell_codes.reshape(n, c, -1)

    def decode(self, coarse: np.ndarray, cell_codes: np.ndarray) -> np.ndarray:
        """float32 cells [N, C, dim] back from their codes."""
        n, c, _ = cell_codes.shape
        base = np.take_along_axis(
            self._decode_coarse(coarse), cell_codes[..., :1].astype(np.intp), 1
        )
        residual = self.pq.pq.decode(np.ascontiguousarray(cell_codes[..., 1:].reshape(n * c, -1)))
        return base + residual.reshape(n, c, self.dim)

    def scores(self, coarse: np.ndarray, cell_codes: np.ndarray, query: np.ndarray) -> np.ndarray:
        """⟨query, decoded cell⟩ [N, C] without decoding the cells."""
        centroid_scores = self.coarse_scores(coarse, query)  # [N, K]
        pq = self.pq.pq
        table = np.einsum(
            "mkd,md->mk",
            faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub),
            query.reshape(pq.M, pq.dsub),
        )
        base = np.take_along_axis(centroid_scores, cell_codes[..., 0].astype(np.intp), 1)
        return base + table[np.arange(pq.M), unpack_codes(cell_codes[..., 1:], pq.M, pq.nbits)].sum(
            -1
        )

    # ------------------------------------------------------------------ candidate stage
    def fast_scan_stage(self, coarse_codes: np.ndarray) -> faiss.IndexPQFastScan | None:
        """The page-centroid codes [M, code bytes] as a faiss 4-bit fast-scan index (ADR 15), or None.

        A 4-bit scalar quantiser is a PQ of one-dimensional sub-spaces with 16 levels each, and faiss
        packs both codes the same way (low nibble first), so the stored SQ4 codes are also valid PQ
        codes of a codebook holding the SQ levels: no re-encoding, no extra bytes on disk. Fast scan
        scores 32 codes per SIMD lookup with 8-bit tables, so its scores are approximate; callers
        re-rank what it returns exactly (``coarse_scores``). None when the centroids are not SQ4 or
        this faiss decodes the two differently (checked on the codes themselves).
        """
        codebook = self.level_codebook()
        if codebook is None:
            return None
        pq = faiss.IndexPQ(self.dim, self.dim, 4, faiss.METRIC_INNER_PRODUCT)
        faiss.copy_array_to_vector(codebook.reshape(-1), pq.pq.centroids)
        pq.is_trained = True
        codes = np.ascontiguousarray(coarse_codes, dtype=np.uint8)
        probe = codes[:256] if len(codes) else self.coarse_sq.sa_encode(codebook.T.copy())
        if not np.allclose(pq.sa_decode(probe), self.coarse_sq.sa_decode(probe), atol=1e-5):
            return None
        if len(codes):
            pq.add_sa_codes(codes)
        return faiss.IndexPQFastScan(pq)

    def level_codebook(self) -> np.ndarray | None:
        """[dim, 16] float32: the 16 values each component's 4-bit code decodes to, i.e. the SQ4 codes
        read as a PQ of one-dimensional sub-spaces; None unless the centroids are SQ4 decoded affinely."""
        if self.coarse_bits != 4 or self.coarse_sq is None:
            return None
        affine = self._coarse_affine()
        if affine is None:
            return None
        vmin, step = affine
        return (
            vmin[:, None] + (np.arange(16, dtype=np.float32)[None, :] + 0.5) * step[:, None]
        ).astype(np.float32)

    def coarse_scores(self, coarse_codes: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Exact ⟨query, decoded centroid⟩ of centroid codes [..., code bytes] -> [...] (the stored-stage
        score, and each page centroid's share of a cell score).

        A faiss uniform scalar quantiser decodes component d as ``vmin_d + (code_d + 0.5) · step_d``, so
        the score is affine in the integer codes: ``Σ_d code_d · q_d·step_d + const``. Multiplying the
        codes (4-bit: low and high nibbles apart) by that weight vector skips decoding every centroid to
        float32 (×1.2–2.2 on a query's 128 × 96 centroids in the bench, ADR 16); 6-bit codes decode.
        """
        shape, size = coarse_codes.shape[:-1], coarse_codes.shape[-1]
        codes = np.ascontiguousarray(coarse_codes, dtype=np.uint8).reshape(-1, size)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        affine = self._coarse_affine()
        if affine is None:
            return (self.coarse_sq.sa_decode(codes) @ query).reshape(shape)
        vmin, step = affine
        weights = np.zeros(
            size * 8 // self.coarse_bits, dtype=np.float32
        )  # zero weight on padding nibbles
        weights[: self.dim] = query * step
        const = np.float32(query @ vmin + 0.5 * weights.sum())
        if self.coarse_bits == 8:
            scores = codes.astype(np.float32) @ weights
        else:  # faiss packs component 2i in the low nibble of byte i and 2i + 1 in the high one
            scores = (codes & 15).astype(np.float32) @ weights[0::2] + (codes >> 4).astype(
                np.float32
            ) @ weights[1::2]
        return (scores + const).reshape(shape)

    def _coarse_affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(vmin, step) per component with decode(code) = vmin + (code + 0.5) · step, checked against
        faiss's own decoding once per quantiser; None for a quantiser that does not decode so."""
        sq = self.coarse_sq
        if self._affine_cache is not None and self._affine_cache[0] is sq:
            return self._affine_cache[1]
        affine = None  # 6-bit codes straddle bytes: they keep faiss's decoding
        # Every range statistic decodes affinely (it only chooses vmin and vdiff); the probe below checks it.
        if (
            sq is not None
            and self.coarse_bits in (4, 8)
            and sq.sq.qtype == _SQ_TYPES[self.coarse_bits]
        ):
            trained = faiss.vector_to_array(
                sq.sq.trained
            )  # [vmin per component, vdiff per component]
            vmin = trained[: self.dim].astype(np.float32)
            step = (trained[self.dim :] / float(2**self.coarse_bits - 1)).astype(np.float32)
            probe = np.random.default_rng(0).integers(
                0, 256, (64, self.coarse_code_size), dtype=np.uint8
            )
            if self.coarse_bits == 4:
                levels = np.stack([probe & 15, probe >> 4], axis=-1).reshape(64, -1)[:, : self.dim]
            else:
                levels = probe[:, : self.dim]
            if np.allclose(vmin + (levels + 0.5) * step, sq.sa_decode(probe), atol=1e-5):
                affine = (vmin, step)
        self._affine_cache = (sq, affine)
        return affine

    # ------------------------------------------------------------------ persistence
    def serialized(self) -> tuple[bytes, bytes]:
        """(centroid scalar quantiser, residual PQ) as faiss index bytes (no pickle)."""
        return (
            faiss.serialize_index(self.coarse_sq).tobytes(),
            faiss.serialize_index(self.pq).tobytes(),
        )

    def nbytes(self) -> int:
        """Serialized size of the shared codebooks (amortised over the pages in ``stats``)."""
        return sum(len(b) for b in self.serialized()) if self.trained else 0

    @classmethod
    def from_serialized(
        cls,
        dim: int,
        k: int,
        pq_m: int,
        coarse_bits: int,
        pq_bits: int,
        coarse_sq: bytes,
        pq: bytes,
        choices: int = 1,
    ) -> ResidualPQCodec:
        codec = cls(dim, k, pq_m, coarse_bits, pq_bits, choices)
        codec.coarse_sq = faiss.deserialize_index(np.frombuffer(coarse_sq, dtype=np.uint8))
        # the range it was trained with travels inside the quantiser (an index from before ADR 20: minmax)
        codec.coarse_range = next(
            (name for name, stat in _RANGE_STATS.items() if stat == codec.coarse_sq.sq.rangestat),
            codec.coarse_range,
        )
        codec.coarse_range_arg = float(codec.coarse_sq.sq.rangestat_arg)
        codec.pq = faiss.deserialize_index(np.frombuffer(pq, dtype=np.uint8))
        if codec.pq.d != dim or codec.pq.pq.M != pq_m or codec.coarse_sq.d != dim:
            raise ValueError("residual codec files do not match the index's dim / pq_m")
        return codec
