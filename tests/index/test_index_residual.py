"""storage=pq_residual (ADR 11): per-page SQ8 centroids + PQ residual codes."""

from __future__ import annotations

import numpy as np
import pytest

from components.config import IndexParams, RegionParams
from components.index import residual_codec
from components.index.region_index import CURRENT, PageMeta, RegionIndex
from components.index.summaries import page_centroids
from components.regions.extract import extract_regions
from tests.support.cell_vectors import clustered_pages, index_params, unit

G, D, M, K = 4, 32, 8, 3


def _pages(n: int, seed: int = 0) -> np.ndarray:
    return clustered_pages(n, G, D, seed, spread=0.3)


def _metas(n: int) -> list[PageMeta]:
    return [PageMeta(page_id=f"doc{i // 2}.pdf#{i % 2}", doc=f"doc{i // 2}.pdf") for i in range(n)]


def _params(**kw) -> IndexParams:
    return index_params(
        storage="pq_residual",
        pq_residual__pq_m=M,
        pq_residual__centroids=K,
        pq_residual__coarse_bits=8,
        candidates=8,
        **kw,
    )


def test_heatmap_is_the_decoded_dot_product_and_finer_than_plain_pq(monkeypatch):
    n = 60
    cells, metas = _pages(n), _metas(n)
    residual = RegionIndex.build(metas, cells, _params(), "fp")
    plain = RegionIndex.build(metas, cells, index_params(storage="pq", pq__m=M), "fp")
    decoded = residual.decoded_cells()
    assert decoded.shape == cells.shape and residual.cells.shape == (n, G * G, 1 + M)
    assert (
        residual.storage_mode.coarse.shape == (n, K, D)
        and residual.storage_mode.coarse.dtype == np.uint8
    )
    q = cells[9, 4]
    np.testing.assert_allclose(
        residual.heatmap(metas[9].page_id, q).ravel(), decoded[9] @ q, atol=1e-4
    )
    # Same PQ bytes per cell, but coded against the page's own centroids: a smaller error.
    err_residual = np.linalg.norm(decoded - cells, axis=-1).mean()
    err_plain = np.linalg.norm(plain.decoded_cells() - cells, axis=-1).mean()
    assert err_residual < err_plain
    # Large adds are encoded in chunks of pages; the codes do not depend on the chunking.
    monkeypatch.setattr(residual_codec, "_ENCODE_CHUNK", 7)
    chunked = residual.storage_mode.codec.encode(cells)
    monkeypatch.undo()
    whole = residual.storage_mode.codec.encode(cells)
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])
    stats = residual.stats()["bytes_per_page"]
    assert stats["cells"] == G * G * (1 + M) and stats["coarse"] == K * D
    # 4-bit centroids: half a byte per component.
    four = RegionIndex.build(
        metas, cells, _params().with_updates({"pq_residual.coarse_bits": 4}), "fp"
    )
    assert (
        four.storage_mode.coarse.shape == (n, K, D // 2)
        and four.stats()["bytes_per_page"]["coarse"] == K * D / 2
    )
    np.testing.assert_allclose(
        four.heatmap(metas[9].page_id, q).ravel(), four.decoded_cells([9])[0] @ q, atol=1e-4
    )


def test_add_delete_save_load_keep_codes_and_centroids_aligned(tmp_path):
    n = 40
    cells, metas = _pages(n, seed=3), _metas(n)
    index = RegionIndex.build(
        metas[:30], cells[:30], _params(candidate_vectors="centroids", centroids_per_page=2), "fp"
    )
    index.add(metas[30:], cells[30:])
    assert (
        index.stats()["bytes_per_page"]["pooled"] == 0
    )  # mean vectors are not the candidate stage here
    q = cells[35, 2]
    assert index.search(q, 1)[0].page_id == metas[35].page_id
    before = index.cell_vectors(metas[37].page_id)
    assert index.delete_doc(metas[35].doc) == 2
    assert len(index.storage_mode.coarse) == len(index.cells) == len(index) == 38
    assert metas[35].page_id not in [h.page_id for h in index.search(q, 38)]
    # Rows after the deleted doc shifted; each still decodes with its own page's centroids.
    np.testing.assert_array_equal(index.cell_vectors(metas[37].page_id), before)
    index.save(tmp_path / "idx")
    folder = tmp_path / "idx" / (tmp_path / "idx" / CURRENT).read_text()
    assert {"coarse.npy", "coarse_sq.faiss", "residual_pq.faiss"} <= {
        p.name for p in folder.iterdir()
    }
    loaded = RegionIndex.load(tmp_path / "idx", expected_fingerprint="fp")
    q2 = cells[12, 5]
    got, want = loaded.search(q2, 3), index.search(q2, 3)
    assert [h.page_id for h in got] == [h.page_id for h in want]
    np.testing.assert_allclose(got[0].heatmap, want[0].heatmap, atol=1e-6)
    loaded.add(
        metas[34:36], cells[34:36]
    )  # a loaded index takes new pages with the stored codebooks
    assert loaded.search(q, 1)[0].page_id == metas[35].page_id


def test_regions_come_from_the_compressed_heatmap():
    n = 30
    cells, metas = _pages(n, seed=5), _metas(n)
    q = unit(np.random.default_rng(6).standard_normal(D))
    cells[7, [5, 6]] = q  # a two-cell answer block on page 7 (row 1, columns 1-2)
    index = RegionIndex.build(metas, cells, _params(), "fp")
    hit = index.search(q, 1)[0]
    assert hit.page_id == metas[7].page_id
    regions = extract_regions(hit.heatmap, RegionParams(snap="none"), hit.page_id)
    assert regions and regions[0].cells.reshape(-1)[[5, 6]].all()


def test_bad_residual_settings_are_clear_errors():
    with pytest.raises(ValueError, match="pq_residual.pq_m=5 must divide"):
        RegionIndex.build(
            _metas(4), _pages(4), index_params(storage="pq_residual", pq_residual__pq_m=5), "fp"
        )
    with pytest.raises(ValueError, match="pq_residual.centroids"):
        index_params(storage="pq_residual", pq_residual__centroids=300)


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_centroid_scores_from_the_integer_codes_equal_faiss_decoding(bits):
    # 33 components: the 4-bit codes end in a padding nibble, which must weigh nothing.
    dim = 33
    cells = clustered_pages(30, G, dim, seed=5, spread=0.3)
    codec = residual_codec.ResidualPQCodec(dim, K, 3, coarse_bits=bits)
    codec.train(cells, max_train_cells=10_000)
    coarse, _ = codec.encode(cells)
    assert (codec._coarse_affine() is not None) == (bits in (4, 8))  # 6 bits keep faiss's decoding
    q = unit(np.random.default_rng(6).standard_normal(dim)).astype(np.float32)
    want = codec._decode_coarse(coarse) @ q
    got = codec.coarse_scores(coarse, q)
    assert got.shape == (30, K)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_best_of_nearest_centroids_never_codes_a_cell_worse_than_the_nearest():
    # ADR 18: the nearest centroid is the first choice, and another replaces it only when its
    # centroid + PQ residual reconstructs the cell strictly better, so no cell gets worse.
    cells = clustered_pages(
        40, 8, D, seed=8, spread=0.5
    )  # 64 cells per page, 4 centroids: cells share them
    # Coarse residual codes (4 sub-quantisers of 3 bits) so that the centroid choice matters.
    nearest = residual_codec.ResidualPQCodec(D, 4, 4, coarse_bits=4, pq_bits=3)
    nearest.train(cells, max_train_cells=10_000)
    best_of = residual_codec.ResidualPQCodec(D, 4, 4, coarse_bits=4, pq_bits=3, choices=3)
    best_of.coarse_sq, best_of.pq = nearest.coarse_sq, nearest.pq  # the same trained codebooks
    coarse_n, codes_n = nearest.encode(cells)
    coarse_b, codes_b = best_of.encode(cells)
    np.testing.assert_array_equal(coarse_n, coarse_b)  # only the cells' choice differs: same bytes
    assert codes_b.shape == codes_n.shape and codes_b.dtype == codes_n.dtype
    err_n = np.linalg.norm(nearest.decode(coarse_n, codes_n) - cells, axis=-1)
    err_b = np.linalg.norm(best_of.decode(coarse_b, codes_b) - cells, axis=-1)
    assert np.all(err_b <= err_n + 1e-6)
    moved = codes_b[..., 0] != codes_n[..., 0]
    assert moved.any() and err_b.mean() < err_n.mean()
    assert np.all(err_b[moved] < err_n[moved])
    # Every chosen centroid is among the cell's 3 nearest decoded centroids.
    decoded = nearest._decode_coarse(coarse_n)
    rank = (
        np.matmul(cells, decoded.transpose(0, 2, 1))
        > np.take_along_axis(
            np.matmul(cells, decoded.transpose(0, 2, 1)), codes_b[..., :1].astype(np.intp), -1
        )
    ).sum(-1)
    assert rank.max() < 3 and rank.max() > 0
    with pytest.raises(ValueError, match="pq_residual.centroid_choices"):
        residual_codec.ResidualPQCodec(D, 6, M, choices=0)


def test_centroid_choices_are_kept_by_a_loaded_index_for_later_adds(tmp_path):
    n = 30
    cells, metas = _pages(n), _metas(n)
    index = RegionIndex.build(
        metas[:20], cells[:20], _params(pq_residual__centroid_choices=3), "fp"
    )
    index.save(tmp_path / "idx")
    loaded = RegionIndex.load(
        tmp_path / "idx", expected_fingerprint="fp"
    )  # choices from its manifest
    assert loaded.storage_mode.codec.choices == 3
    loaded.add(metas[20:], cells[20:])
    index.add(metas[20:], cells[20:])
    np.testing.assert_array_equal(loaded.cells, index.cells)


def test_clipped_centroid_range_lowers_the_error_and_keeps_scores_and_fast_scan_exact(tmp_path):
    """ADR 20: 4-bit centroid levels over mean ± k·std (or clipped quantiles) instead of min-max."""
    n, k = 120, 16
    cells, metas = clustered_pages(n, 8, D, seed=3, spread=0.3), _metas(n)
    four = {"pq_residual.coarse_bits": 4, "pq_residual.centroids": k}
    centroids = page_centroids(cells, k)  # what the index clusters each page into (deterministic)
    errors = {}
    for rng_name, arg in (("minmax", 1.0), ("meanstd", 2.25), ("quantiles", 0.01), ("optim", 1.0)):
        index = RegionIndex.build(
            metas,
            cells,
            _params().with_updates(
                {**four, "pq_residual.coarse_range": rng_name, "pq_residual.coarse_range_arg": arg}
            ),
            "fp",
        )
        codec = index.storage_mode.codec
        if (
            rng_name == "minmax"
        ):  # faiss would widen the range by arg × (max − min): min-max ignores arg
            assert codec.coarse_sq.sq.rangestat_arg == 0.0
        errors[rng_name] = (  # (page centroids, cells): what the range changes, and what is scored
            float(
                np.linalg.norm(
                    codec._decode_coarse(index.storage_mode.coarse) - centroids, axis=-1
                ).mean()
            ),
            float(np.linalg.norm(index.decoded_cells() - cells, axis=-1).mean()),
        )
        # The scores read straight from the codes (affine in the 4-bit levels) equal the decoded ones,
        # and the codes still double as the fast-scan stage's PQ codes.
        assert codec._coarse_affine() is not None and codec.level_codebook() is not None
        q = cells[5, 7]
        np.testing.assert_allclose(
            codec.coarse_scores(index.storage_mode.coarse, q),
            codec._decode_coarse(index.storage_mode.coarse) @ q,
            atol=1e-4,
        )
        assert (
            codec.fast_scan_stage(
                index.storage_mode.coarse.reshape(-1, index.storage_mode.coarse.shape[-1])
            )
            is not None
        )
    for clipped in ("meanstd", "quantiles", "optim"):
        assert (
            errors[clipped][0] < 0.9 * errors["minmax"][0]
            and errors[clipped][1] < errors["minmax"][1]
        )
    # The range is a training choice; a loaded index reports the one its quantiser was trained with.
    index.save(tmp_path / "idx")
    loaded = RegionIndex.load(tmp_path / "idx", "fp").storage_mode.codec
    assert (loaded.coarse_range, loaded.coarse_range_arg) == ("optim", 1.0)


@pytest.mark.parametrize("name,arg", [("quantiles", 0.5), ("quantiles", 0.7), ("spread", 1.0)])
def test_invalid_centroid_range_is_a_clear_error(name, arg):
    with pytest.raises(ValueError, match="pq_residual.coarse_range"):
        residual_codec.ResidualPQCodec(D, K, M, 4, 8, 1, name, arg)
