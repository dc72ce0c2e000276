"""Centroid candidate stage (ADR 7): per-page k-means summaries find pages a pooled mean misses."""

from __future__ import annotations

import numpy as np
import pytest

from components.config import IndexParams
from components.index.region_index import PageMeta, RegionIndex
from components.index.summaries import page_centroids
from tests.support.cell_vectors import clustered_pages, index_params, unit

G, D = 4, 32


def _clustered_pages(n: int, seed: int = 0) -> np.ndarray:
    return clustered_pages(n, G, D, seed)


def _metas(n: int) -> list[PageMeta]:
    return [PageMeta(page_id=f"doc{i}.pdf#0", doc=f"doc{i}.pdf") for i in range(n)]


def test_page_centroids_cover_each_distinct_content_and_are_deterministic():
    rng = np.random.default_rng(0)
    directions = unit(rng.standard_normal((4, D)))
    page = directions[np.arange(G * G) % 4][None]  # 4 distinct contents, 4 cells each
    cent = page_centroids(page, 4)
    assert cent.shape == (1, 4, D)
    np.testing.assert_allclose(np.linalg.norm(cent, axis=-1), 1.0, atol=1e-5)
    # Every content direction has its own centroid (cosine ~1), none is averaged away.
    np.testing.assert_allclose((directions @ cent[0].T).max(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(page_centroids(page, 4), cent)
    assert page_centroids(page, 64).shape == (1, G * G, D)  # k is capped at the cell count
    with pytest.raises(ValueError, match="at least one centroid"):
        page_centroids(page, 0)


def test_centroids_find_a_small_answer_block_the_pooled_mean_misses():
    """One page holds a single cell matching the query; 30 others match it moderately everywhere."""
    n, target = 31, 17
    rng = np.random.default_rng(1)
    q = unit(rng.standard_normal(D))
    cells = _clustered_pages(n, seed=2)
    # Distractors: every cell leans towards q (score ~0.5 each, so a high pooled mean).
    others = np.arange(n) != target
    cells[others] = unit(cells[others] + 0.7 * q)
    cells[target, 5] = q  # the answer: one cell, exact match (best max-cell score of all pages)
    exact_best = int((cells @ q).max(1).argmax())
    assert exact_best == target
    recall = {}
    for vectors in ("pooled", "centroids"):
        params = IndexParams(
            faiss="flat", candidates=4, candidate_vectors=vectors, centroids_per_page=4
        )
        index = RegionIndex.build(_metas(n), cells, params, "fp")
        recall[vectors] = target in index.candidate_pages(q, 4).tolist()
        if vectors == "centroids":
            assert index.search(q, 1)[0].page_id == f"doc{target}.pdf#0"
            # 4 centroids per page as 8-bit codes (plus the faiss header spread over the pages)
            assert 4 * D <= index.stats()["bytes_per_page"]["candidates"] < 4 * D + 64
    assert recall == {"pooled": False, "centroids": True}


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_centroid_stage_returns_c_distinct_pages_and_honours_filters(kind):
    n = 60
    cells = _clustered_pages(n, seed=3)
    metas = [
        PageMeta(
            page_id=f"doc{i // 2}.pdf#{i % 2}",
            doc=f"doc{i // 2}.pdf",
            collection="left" if i < n // 2 else "right",
        )
        for i in range(n)
    ]
    params = IndexParams(
        faiss=kind, candidates=10, candidate_vectors="centroids", centroids_per_page=3
    )
    index = RegionIndex.build(metas, cells, params, "fp")
    q = cells[41, 7]
    cand = index.candidate_pages(q, 10)
    assert len(cand) == 10 and len(set(cand.tolist())) == 10
    assert index.search(q, 1)[0].page_id == metas[41].page_id
    right = index.search(q, 5, filters={"collection": "right"})
    assert len(right) == 5 and all(index.meta(h.page_id).collection == "right" for h in right)
    left = index.search(q, 5, filters={"collection": "left"})
    assert len(left) == 5 and all(index.meta(h.page_id).collection == "left" for h in left)


def test_centroid_index_add_delete_save_load(tmp_path):
    n = 40
    cells = _clustered_pages(n, seed=4)
    metas = _metas(n)
    params = index_params(
        storage="pq", pq__m=8, candidates=5, candidate_vectors="centroids", centroids_per_page=3
    )
    index = RegionIndex.build(metas[:30], cells[:30], params, "fp")
    index.add(metas[30:], cells[30:])
    q = cells[35, 0]
    assert index.search(q, 1)[0].page_id == metas[35].page_id
    assert index.delete_doc(metas[35].doc) == 1
    assert index.stage.faiss_index.ntotal == 39 * 3
    assert metas[35].page_id not in [h.page_id for h in index.search(q, 39)]
    index.save(tmp_path / "idx")
    loaded = RegionIndex.load(tmp_path / "idx", expected_fingerprint="fp")
    assert loaded.stage.faiss_index.ntotal == 39 * 3
    q2 = cells[12, 3]
    assert [h.page_id for h in loaded.search(q2, 3)] == [h.page_id for h in index.search(q2, 3)]


def test_generator_families_beyond_the_company_name_space_terminate(tiny_params):
    """10k-page bench corpora need more families than company names: repeats get a number, not a hang."""
    from components.data.synthetic_families import draw_families

    params = tiny_params.model_copy(deep=True)
    params.data.n_docs = 7000
    families = draw_families(params)
    companies = [f.company for f in families]
    assert len(companies) > 2688  # 28 x 12 x 8 drawn names
    assert len(set(companies)) == len(companies)
