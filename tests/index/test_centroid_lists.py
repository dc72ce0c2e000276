"""The stored-centroid stage in inverted lists (ADR 17): lists filled from saved list numbers score like
faiss's own IVF, probing every list gives the exact scan's candidates, and the lists follow add, delete
and save/load without being retrained."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from components.index.centroid_lists import (
    MIN_LISTS,
    CentroidLists,
    list_count,
    train_list_centroids,
)
from components.index.region_index import IndexFormatError, RegionIndex
from tests.support.cell_vectors import (
    clustered_pages,
    exact_candidates,
    queries_near_cells,
    stored_stage_params,
    two_page_docs,
    unit,
)

G, D, K = 8, 64, 16  # K: stored centroids per page (stored_stage_params)


_params = stored_stage_params


@pytest.fixture(scope="module")
def pages():
    return clustered_pages(400, G, D, seed=11, spread=0.4)


@pytest.fixture(scope="module")
def queries(pages):
    return queries_near_cells(pages, 40, seed=12)


def test_list_count_is_the_root_of_the_codes_capped_and_zero_when_too_few():
    assert list_count(960_000, 1024) == 979
    assert list_count(960_000, 256) == 256
    assert list_count(MIN_LISTS**2, 1024) == MIN_LISTS
    assert list_count(MIN_LISTS**2 - 1, 1024) == 0
    assert list_count(10**6, 0) == 0


def test_lists_filled_from_saved_numbers_score_like_faiss_own_ivf():
    rng = np.random.default_rng(0)
    dim, n, lists = 16, 3000, 20
    levels = np.sort(rng.standard_normal((dim, 16)).astype(np.float32), axis=1)
    codes_pq = faiss.ProductQuantizer(dim, dim, 4)
    faiss.copy_array_to_vector(levels.reshape(-1), codes_pq.centroids)
    vectors = levels[
        np.arange(dim), rng.integers(0, 16, (n, dim))
    ]  # codebook entries: exact round trip
    codes = codes_pq.compute_codes(np.ascontiguousarray(vectors))
    centroids = train_list_centroids(vectors, lists, seed=0)
    ours = CentroidLists(centroids, levels, probe=0.3)
    numbers = ours.assign(vectors)
    ours.fill(codes[:1700], numbers[:1700])
    ours.fill(
        codes[1700:], numbers[1700:], first_id=1700
    )  # a second fill appends to lists already filled
    reference = CentroidLists(centroids, levels, probe=0.3)
    reference.index.add(
        np.ascontiguousarray(vectors)
    )  # faiss assigns and encodes everything itself
    assert ours.ntotal == reference.ntotal == n and ours.nprobe == 6
    for q in unit(rng.standard_normal((25, dim))).astype(np.float32):
        got, want = ours.search(q, 50), reference.search(q, 50)
        np.testing.assert_array_equal(got[0], want[0])
        assert set(got[1].tolist()) == set(want[1].tolist())
    with pytest.raises(ValueError, match="continue at"):
        ours.fill(codes[:5], numbers[:5], first_id=0)


def test_probing_every_list_gives_the_exact_scans_candidates(pages, queries):
    everything = RegionIndex.build(
        two_page_docs(len(pages)), pages, _params(pq_residual__stage_probe=1.0), "fp"
    )
    stage = everything.stats()["stage_lists"]
    assert stage == {
        "lists": list_count(len(pages) * K, 1024),
        "nprobe": stage["lists"],
        "in_use": True,
    }
    assert everything.stage.fast_stage is None  # the lists replace the every-code shards
    for c in (8, 24):
        for q in queries:
            assert list(everything.candidate_pages(q, c)) == exact_candidates(everything, q, c)


def test_a_small_probe_scans_fewer_codes_and_falls_back_when_its_lists_hold_too_few_pages(
    pages, queries
):
    index = RegionIndex.build(
        two_page_docs(len(pages)), pages, _params(pq_residual__stage_probe=0.01), "fp"
    )
    assert index.stage.lists.nprobe == 1
    # One list of 80 holds ~80 codes, so fewer than 300 pages: the exact scan answers, so C pages still come back.
    for q in queries[:10]:
        assert list(index.candidate_pages(q, 300)) == exact_candidates(index, q, 300)
    # Fewer pages wanted: the single probed list answers, and it sees only part of the corpus.
    differ = sum(
        set(index.candidate_pages(q, 24).tolist()) != set(exact_candidates(index, q, 24))
        for q in queries
    )
    assert differ > 0


def test_lists_follow_add_delete_and_load_without_retraining(pages, queries, tmp_path):
    index = RegionIndex.build(
        two_page_docs(300), pages[:300], _params(pq_residual__stage_probe=1.0), "fp"
    )
    trained = index.stage.list_centroids.copy()
    index.add(two_page_docs(100, start=300), pages[300:])
    np.testing.assert_array_equal(index.stage.list_centroids, trained)
    assert index.stage.stage_lists.shape == (400, K) and index.stage.lists.ntotal == 400 * K
    added = index.storage_mode.coarse[300:].reshape(-1, index.storage_mode.coarse.shape[-1])
    np.testing.assert_array_equal(
        index.stage.stage_lists[300:].reshape(-1), index.stage._assign_lists(added, None)
    )
    assert index.delete_doc("doc160.pdf") == 2
    assert index.stage.lists.ntotal == 398 * K
    index.save(tmp_path / "idx")
    loaded = RegionIndex.load(tmp_path / "idx", expected_fingerprint="fp")
    np.testing.assert_array_equal(loaded.stage.list_centroids, trained)
    np.testing.assert_array_equal(loaded.stage.stage_lists, index.stage.stage_lists)
    for q in queries:
        want = exact_candidates(index, q, 24)
        assert list(index.candidate_pages(q, 24)) == want == list(loaded.candidate_pages(q, 24))
        assert exact_candidates(loaded, q, 24) == want
    assert loaded.stats()["bytes_per_page"]["candidates"] == pytest.approx(
        (loaded.stage.stage_lists.nbytes + loaded.stage.list_centroids.nbytes) / 398, abs=0.1
    )


def test_disagreeing_lists_on_disk_are_a_clear_error_and_old_indexes_stay_flat(pages, tmp_path):
    index = RegionIndex.build(two_page_docs(300), pages[:300], _params(), "fp")
    folder = index.save(tmp_path / "idx")
    np.save(folder / "stage_lists.npy", index.stage.stage_lists[:-1], allow_pickle=False)
    # verify=False: past the checksums (which catch any edit), the parts' own consistency checks
    with pytest.raises(IndexFormatError, match="inverted lists"):
        RegionIndex.load(tmp_path / "idx", expected_fingerprint="fp", verify=False)
    (folder / "stage_lists.npy").unlink()
    (folder / "stage_centroids.npy").unlink()
    flat = RegionIndex.load(
        tmp_path / "idx", expected_fingerprint="fp", verify=False
    )  # before ADR 17
    assert (
        flat.stage.list_centroids is None
        and flat.stage.lists is None
        and flat.stage.fast_stage is not None
    )


def test_a_corpus_that_grows_past_the_threshold_gets_lists(pages):
    small = RegionIndex.build(
        two_page_docs(100), pages[:100], _params(), "fp"
    )  # 1600 codes: flat scan
    assert small.stage.lists is None and small.stage.list_centroids is None
    small.add(two_page_docs(300, start=100), pages[100:])
    assert small.stage.lists is not None and small.stage.lists.ntotal == 400 * K
    assert small.stage.stage_lists.shape == (400, K)


def test_lists_experiment_times_both_stages_on_the_same_questions(pages, queries):
    from scripts.experiments.candidate_stage_ab import lists_ab

    index = RegionIndex.build(
        two_page_docs(len(pages)), pages, _params(pq_residual__stage_probe=1.0), "fp"
    )
    best = np.array([int(np.argmax(np.einsum("pcd,d->pc", pages, q).max(1))) for q in queries])
    ab = lists_ab(index, queries, best, 24)
    assert ab["queries"] == len(queries) and ab["nprobe"] == ab["lists"] == index.stage.lists.lists
    assert ab["same_candidates"] == 1.0  # every list probed: the pages of the every-code scan
    assert ab["candidate_recall"]["lists"] == ab["candidate_recall"]["all_codes"] >= 0.25
    assert ab["p50_ms"]["all_codes"] > 0 and ab["p50_ms"]["lists"] > 0
    assert index.stats()["stage_lists"]["in_use"] is True  # the A/B leaves the lists on
    flat = RegionIndex.build(two_page_docs(100), pages[:100], _params(), "fp")
    assert lists_ab(flat, queries, best, 24) is None  # too few codes for lists: nothing to compare
