"""Fast-scan shards searched on parallel threads give one unsharded index's results (ADR 16)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from components.index.fast_scan_shards import FastScanShards

D = 32


def _shard_maker(codebook: np.ndarray):
    def make(codes: np.ndarray) -> faiss.IndexPQFastScan:
        pq = faiss.IndexPQ(D, D, 4, faiss.METRIC_INNER_PRODUCT)
        faiss.copy_array_to_vector(codebook.reshape(-1), pq.pq.centroids)
        pq.is_trained = True
        if len(codes):
            pq.add_sa_codes(np.ascontiguousarray(codes))
        return faiss.IndexPQFastScan(pq)

    return make


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    codebook = rng.standard_normal((D, 16)).astype(np.float32)
    codes = rng.integers(0, 256, (5000, D // 2), dtype=np.uint8)
    queries = rng.standard_normal((20, D)).astype(np.float32)
    return codebook, codes, queries


@pytest.mark.parametrize("shards", [2, 3])
def test_shards_score_like_one_index(data, shards):
    codebook, codes, queries = data
    make = _shard_maker(codebook)
    single, sharded = FastScanShards(codes, make, 1), FastScanShards(codes, make, shards)
    assert len(sharded.shards) == shards and sharded.ntotal == single.ntotal == len(codes)
    for q in queries:
        s1, i1 = single.search(q, 100)
        s2, i2 = sharded.search(q, 100)
        # Lookup tables depend on the query alone, so the scores are the same; ids only differ among ties.
        np.testing.assert_array_equal(s1, s2)
        tie = s1 == s1[-1]
        assert set(i1[~tie]) == set(i2[~tie])
        # Every returned id is a global position whose own score is the one reported.
        full = make(codes)
        ref_scores, ref_ids = full.search(q[None], len(codes))
        by_id = dict(zip(ref_ids[0].tolist(), ref_scores[0].tolist()))
        assert all(by_id[int(i)] == pytest.approx(float(s)) for i, s in zip(i2, s2))


def test_add_appends_to_the_last_shard_and_keeps_global_ids(data):
    codebook, codes, queries = data
    make = _shard_maker(codebook)
    stage = FastScanShards(codes[:3000], make, 2)
    pq = faiss.IndexPQ(D, D, 4, faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(codebook.reshape(-1), pq.pq.centroids)
    decoded = pq.sa_decode(
        np.ascontiguousarray(codes[3000:])
    )  # codebook entries re-encode to the same codes
    stage.add(decoded)
    assert stage.ntotal == len(codes) and stage.shards[-1].ntotal == len(codes) - 1500
    whole = FastScanShards(codes, make, 1)
    for q in queries[:5]:
        s1, i1 = whole.search(q, 50)
        s2, i2 = stage.search(q, 50)
        np.testing.assert_array_equal(s1, s2)
        tie = s1 == s1[-1]
        assert set(i1[~tie]) == set(i2[~tie])


def test_tiny_code_arrays_get_one_shard_each_at_most(data):
    codebook, codes, queries = data
    stage = FastScanShards(codes[:1], _shard_maker(codebook), 4)
    assert len(stage.shards) == 1
    scores, ids = stage.search(queries[0], 10)
    assert list(ids) == [0] and len(scores) == 1
    assert not FastScanShards(codes[:10], lambda c: None, 2).available


_INHERITED: list = []  # the stage a forked child finds in its copy of the parent's memory


def test_a_forked_child_searches_with_its_own_threads(data):
    # A pool made before fork has no live threads in the child; the child must not wait on it forever.
    import multiprocessing

    codebook, codes, queries = data
    stage = FastScanShards(codes, _shard_maker(codebook), 2)
    want = stage.search(queries[0], 10)[0]  # starts the pool in the parent
    _INHERITED[:] = [stage]
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:  # forked after the pool started
            got = pool.apply_async(_search_inherited, (queries[0],)).get(timeout=60)
    finally:
        _INHERITED.clear()
    np.testing.assert_array_equal(got, want)


def _search_inherited(query):
    return _INHERITED[0].search(query, 10)[0]
