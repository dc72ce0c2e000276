"""The stored-centroid stage scanned with faiss fast scan (ADR 15): same codes, same candidates."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from components.index.region_index import RegionIndex
from tests.support.cell_vectors import (
    clustered_pages,
    exact_candidates,
    queries_near_cells,
    stored_stage_params,
    two_page_docs,
)

G, D = 8, 64


def _params(**kw):
    # every code scanned (ADR 15, 16); the inverted lists are tested in test_centroid_lists.py
    return stored_stage_params(**{"pq_residual.stage_lists": 0, **kw})


@pytest.fixture(scope="module")
def pages():
    return clustered_pages(400, G, D, seed=7, spread=0.4)


@pytest.fixture(scope="module")
def queries(pages):
    return queries_near_cells(pages, 60, seed=8)


def test_fast_scan_reads_the_stored_codes_as_they_are(pages):
    index = RegionIndex.build(two_page_docs(len(pages)), pages, _params(), "fp")
    fast = index.stage.fast_stage
    assert len(fast.shards) == 2 and all(isinstance(s, faiss.IndexPQFastScan) for s in fast.shards)
    assert fast.ntotal == index.stage.faiss_index.ntotal == len(pages) * 16
    # The SQ4 codes decode identically through the PQ codebook the fast scan is built on.
    codes = index.storage_mode.coarse.reshape(-1, index.storage_mode.coarse.shape[-1])
    pq = faiss.IndexPQ(D, D, 4, faiss.METRIC_INNER_PRODUCT)
    pq.pq.centroids = fast.shards[0].pq.centroids
    np.testing.assert_allclose(
        pq.sa_decode(codes[:500]),
        index.storage_mode.codec.coarse_sq.sa_decode(codes[:500]),
        atol=1e-6,
    )
    # No bytes on disk for it: the stage's size is the exact scan's (zero extra, ADR 12).
    assert index.stats()["bytes_per_page"]["candidates"] == 0


def test_fast_scan_returns_the_exact_scans_candidates(pages, queries):
    fast = RegionIndex.build(two_page_docs(len(pages)), pages, _params(), "fp")
    exact = RegionIndex.build(
        two_page_docs(len(pages)), pages, _params(pq_residual__fast_scan=False), "fp"
    )
    one_shard = RegionIndex.build(
        two_page_docs(len(pages)), pages, _params(pq_residual__fast_scan_threads=1), "fp"
    )
    assert exact.stage.fast_stage is None and len(one_shard.stage.fast_stage.shards) == 1
    for c in (8, 24, 64):
        for q in queries:
            # each index against the exact scan of its own codes (exact_candidates)
            assert list(fast.candidate_pages(q, c)) == exact_candidates(fast, q, c)
            assert list(one_shard.candidate_pages(q, c)) == exact_candidates(one_shard, q, c)
    assert fast.stage.fast_stage is not None and fast.stage.fast_scan  # switched back on
    # The approximate scores alone do disagree sometimes: the exact re-rank is what makes them equal.
    codes = fast.storage_mode.coarse.reshape(-1, fast.storage_mode.coarse.shape[-1])
    differ = 0
    for q in queries:
        _, approx = fast.stage.fast_stage.search(q, 32)
        exact_top = np.argsort(-fast.storage_mode.codec.coarse_scores(codes, q), kind="stable")[:32]
        differ += int(list(approx) != list(exact_top))
    assert differ > 0


def test_fast_scan_follows_add_delete_and_load(pages, queries, tmp_path):
    index = RegionIndex.build(two_page_docs(300), pages[:300], _params(), "fp")
    index.add(two_page_docs(100, start=300), pages[300:])
    assert index.stage.fast_stage.ntotal == len(pages) * 16
    for q in queries[:20]:
        assert list(index.candidate_pages(q, 24)) == exact_candidates(index, q, 24)
    assert index.delete_doc("doc160.pdf") == 2
    assert index.stage.fast_stage.ntotal == (len(pages) - 2) * 16
    index.save(tmp_path / "idx")
    loaded = RegionIndex.load(tmp_path / "idx", expected_fingerprint="fp")
    assert loaded.stage.fast_stage is not None
    for q in queries[20:40]:
        want = exact_candidates(index, q, 24)
        assert list(index.candidate_pages(q, 24)) == want == list(loaded.candidate_pages(q, 24))
        assert exact_candidates(loaded, q, 24) == want


def test_filters_take_the_exact_scan_and_other_bit_widths_have_no_fast_stage(pages, queries):
    index = RegionIndex.build(two_page_docs(len(pages)), pages, _params(), "fp")
    got = index.candidate_pages(queries[0], 10, filters={"collection": "c2"})
    assert len(got) == 10 and all(index.metas[i].collection == "c2" for i in got)
    sq8 = RegionIndex.build(
        two_page_docs(40), pages[:40], _params(pq_residual__coarse_bits=8), "fp"
    )
    assert sq8.stage.fast_stage is None and sq8.candidate_pages(queries[0], 5).size == 5
