"""Indexes saved before the nested ``index`` sections (issue 30) still load: their manifests' flat
keys are mapped to the sections in one place, ``config.upgrade_index_params``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from components.config import LEGACY_INDEX_KEYS, IndexParams, upgrade_index_params
from components.index.region_index import RegionIndex

FIXTURE = Path(__file__).parent / "fixtures" / "index-flat-params"

# A value each flat key accepts that differs from its default, so a key mapped nowhere is caught.
NON_DEFAULT = {
    "pq_m": 4,
    "pq_train_cells": 1024,
    "hnsw_m": 8,
    "hnsw_ef_search": 7,
    "ivf_nlist": 5,
    "ivf_nprobe": 2,
    "residual_centroids": 12,
    "residual_coarse_bits": 8,
    "residual_pq_m": 2,
    "residual_pq_bits": 6,
    "residual_centroid_choices": 3,
    "residual_coarse_range": "optim",
    "residual_coarse_range_arg": 1.5,
    "residual_candidates": "separate",
    "residual_fast_scan": False,
    "residual_fast_scan_threads": 3,
    "residual_stage_lists": 0,
    "residual_stage_probe": 0.5,
}


def test_every_legacy_index_key_lands_in_its_section():
    assert set(NON_DEFAULT) == set(LEGACY_INDEX_KEYS)
    params = IndexParams.model_validate(
        upgrade_index_params({"storage": "pq", "candidates": 9, **NON_DEFAULT})
    )
    assert params.storage == "pq" and params.candidates == 9
    for old, targets in LEGACY_INDEX_KEYS.items():
        for section, key in targets:
            assert getattr(getattr(params, section), key) == NON_DEFAULT[old], old
    assert IndexParams().pq.train_cells != 1024 and params.pq_residual.train_cells == 1024


def test_nested_index_params_pass_the_upgrade_unchanged():
    tree = IndexParams(storage="binary").model_dump(mode="json")
    assert upgrade_index_params(tree) == tree
    with pytest.raises(ValueError, match="residual_centroids"):
        IndexParams.model_validate(
            {"residual_centroids": 4}
        )  # params.yaml itself takes only the sections


def test_index_saved_with_flat_params_loads_and_searches_as_it_did(tmp_path):
    shutil.copytree(FIXTURE / "index", tmp_path / "index")
    index = RegionIndex.load(tmp_path / "index", expected_fingerprint="fp-flat")
    p = index.params
    assert (p.storage, p.pq.m, p.hnsw.ef_search, p.ivf.nprobe) == ("pq_residual", 2, 33, 3)
    r = p.pq_residual
    assert (
        r.centroids,
        r.coarse_bits,
        r.pq_m,
        r.pq_bits,
        r.centroid_choices,
        r.coarse_range,
        r.fast_scan,
        r.stage_probe,
        r.stage_lists,
        r.train_cells,
    ) == (2, 8, 4, 4, 2, "minmax", False, 0.5, 100, 256)
    expected = json.loads((FIXTURE / "expected.json").read_text())
    for query, hits in zip(expected["queries"], expected["hits"]):
        got = index.search(np.asarray(query, dtype=np.float32), 3)
        assert [h.page_id for h in got] == [h[0] for h in hits]
        assert [h.score for h in got] == [h[1] for h in hits]
        for hit, (_, _, heatmap) in zip(got, hits):
            np.testing.assert_array_equal(hit.heatmap, np.asarray(heatmap, dtype=np.float32))
    index.save(tmp_path / "index")  # saved again, it records the sections
    manifest = json.loads(next((tmp_path / "index").glob("v-*/manifest.json")).read_text())
    assert (
        manifest["params"]["pq_residual"]["centroids"] == 2
        and "residual_centroids" not in manifest["params"]
    )
    assert RegionIndex.load(tmp_path / "index").params == p
