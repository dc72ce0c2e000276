"""pq_residual with non-byte PQ codes and the candidate stage over the stored page centroids (ADR 12)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from components.config import IndexParams
from components.index.region_index import CURRENT, FingerprintMismatchError, PageMeta, RegionIndex
from components.index.residual_codec import unpack_codes
from tests.support.cell_vectors import clustered_pages, index_params

G, D, M, K = 4, 32, 8, 3


def _metas(n: int) -> list[PageMeta]:
    return [
        PageMeta(page_id=f"doc{i // 2}.pdf#{i % 2}", doc=f"doc{i // 2}.pdf", collection=f"c{i % 3}")
        for i in range(n)
    ]


def _params(**kw) -> IndexParams:
    base = {
        "storage": "pq_residual",
        "pq_residual.pq_m": M,
        "pq_residual.centroids": K,
        "pq_residual.coarse_bits": 4,
        "pq_residual.candidates": "stored",
        "candidates": 6,
    }
    return index_params(**{**base, **kw})


def _expected_candidates(index: RegionIndex, query: np.ndarray, c: int) -> list[int]:
    """Pages ranked by their best decoded stored centroid, brute force."""
    centroids = index.storage_mode.codec._decode_coarse(index.storage_mode.coarse)  # [N, K, D]
    best = (centroids @ query).max(1)
    return list(np.argsort(-best, kind="stable")[:c])


@pytest.mark.parametrize(
    "bits", [6, 9]
)  # 9: codes straddle bytes (960 training cells cap bits at 9)
def test_packed_residual_codes_score_as_their_decoded_cells(bits):
    n = 60
    cells, metas = clustered_pages(n, G, D, seed=1, spread=0.3), _metas(n)
    index = RegionIndex.build(
        metas, cells, _params(pq_residual__pq_bits=bits, pq_residual__candidates="separate"), "fp"
    )
    assert index.storage_mode.codec.pq.pq.nbits == bits
    assert index.cells.shape == (n, G * G, 1 + M * bits // 8)
    assert index.stats()["bytes_per_page"]["cells"] == G * G * (1 + M * bits // 8)
    codes = index.cells[..., 1:].reshape(-1, M * bits // 8)
    # The unpacked indices are what faiss itself decodes the packed codes to.
    idx = unpack_codes(codes, M, bits)
    pq = index.storage_mode.codec.pq.pq
    table = faiss.vector_to_array(pq.centroids).reshape(M, pq.ksub, -1)
    np.testing.assert_allclose(
        table[np.arange(M), idx].reshape(len(codes), -1), pq.decode(codes), atol=1e-6
    )
    q = cells[9, 4]
    np.testing.assert_allclose(
        index.heatmap(metas[9].page_id, q).ravel(), index.decoded_cells([9])[0] @ q, atol=1e-4
    )


def test_stored_stage_ranks_pages_by_their_stored_centroids_and_costs_no_bytes():
    n = 40
    cells, metas = clustered_pages(n, G, D, seed=2, spread=0.3), _metas(n)
    stored = RegionIndex.build(metas, cells, _params(), "fp")
    separate = RegionIndex.build(
        metas,
        cells,
        _params(
            pq_residual__candidates="separate", candidate_vectors="centroids", centroids_per_page=2
        ),
        "fp",
    )
    assert stored.stats()["candidate_vectors"] == "stored"
    assert (
        stored.stats()["bytes_per_page"]["candidates"]
        == 0
        < separate.stats()["bytes_per_page"]["candidates"]
    )
    assert stored.stage.faiss_index.ntotal == n * K
    rng = np.random.default_rng(3)
    for q in (cells[11, 3], cells[30, 0], rng.standard_normal(D).astype(np.float32)):
        got = list(stored.candidate_pages(q, 6))
        assert got == _expected_candidates(stored, q, 6)
    # A filter applies inside the scan: only the filtered pages come back, up to C of them.
    q = cells[11, 3]
    filtered = stored.candidate_pages(q, 4, filters={"collection": "c1"})
    assert len(filtered) == 4 and all(stored.metas[i].collection == "c1" for i in filtered)
    assert stored.search(q, 1)[0].page_id == metas[11].page_id


def test_stored_stage_follows_add_delete_save_load(tmp_path):
    n = 36
    cells, metas = clustered_pages(n, G, D, seed=4, spread=0.3), _metas(n)
    index = RegionIndex.build(metas[:30], cells[:30], _params(), "fp")
    index.add(metas[30:], cells[30:])
    assert index.stage.faiss_index.ntotal == n * K
    q = cells[33, 5]
    assert list(index.candidate_pages(q, 6)) == _expected_candidates(index, q, 6)
    assert index.delete_doc(metas[33].doc) == 2
    assert index.stage.faiss_index.ntotal == (n - 2) * K
    assert list(index.candidate_pages(q, 6)) == _expected_candidates(index, q, 6)
    assert metas[33].page_id not in [h.page_id for h in index.search(q, n)]
    index.save(tmp_path / "idx")
    folder = tmp_path / "idx" / (tmp_path / "idx" / CURRENT).read_text()
    # The saved stage keeps only the trained quantiser; its codes are coarse.npy.
    assert faiss.read_index(str(folder / "candidates.faiss")).ntotal == 0
    loaded = RegionIndex.load(tmp_path / "idx", expected_fingerprint="fp")
    assert loaded.stage.faiss_index.ntotal == (n - 2) * K
    q2 = cells[12, 1]
    assert list(loaded.candidate_pages(q2, 6)) == list(index.candidate_pages(q2, 6))
    got, want = loaded.search(q2, 3), index.search(q2, 3)
    assert [h.page_id for h in got] == [h.page_id for h in want]
    np.testing.assert_allclose(got[0].heatmap, want[0].heatmap, atol=1e-6)
    with pytest.raises(FingerprintMismatchError):
        RegionIndex.load(tmp_path / "idx", expected_fingerprint="other-encoder")


def test_stored_stage_needs_a_flat_scan():
    with pytest.raises(ValueError, match="pq_residual.candidates=stored"):
        RegionIndex.build(_metas(4), clustered_pages(4, G, D), _params(faiss="hnsw"), "fp")
