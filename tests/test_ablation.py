"""`regionops ablate retriever`: every variant trained, indexed and scored per seed, then summarised."""

from __future__ import annotations

import json

import pytest

from components.evaluation.ablation import RETRIEVER_VARIANTS, ablate_retriever, summarise

pytestmark = pytest.mark.slow


def test_summarise_means_and_stds_per_variant():
    rows = [
        {"variant": "a", "regionops.page_r1": 0.5, "regionops.region_hit1": 0.2,
         "regionops_dense.page_r1": 0.1, "regionops_dense.region_hit1": None},
        {"variant": "a", "regionops.page_r1": 0.7, "regionops.region_hit1": 0.4,
         "regionops_dense.page_r1": 0.3, "regionops_dense.region_hit1": None},
    ]
    summary = summarise(rows)["a"]
    assert summary["regionops.page_r1"]["mean"] == pytest.approx(0.6)
    assert summary["regionops.page_r1"]["std"] == pytest.approx(0.1414, abs=1e-3)
    assert summary["regionops_dense.region_hit1"] == {"mean": None, "std": None}


def test_ablation_trains_each_variant_and_writes_tables(tiny_params, tiny_corpus, tmp_path):
    from components.settings import get_settings

    report = ablate_retriever(tiny_params, tiny_corpus, tmp_path, get_settings(), seeds=[5])
    assert [r["variant"] for r in report["rows"]] == list(RETRIEVER_VARIANTS)
    assert [r["local_loss"] for r in report["rows"]] == ["none", "labelled", "hybrid"]
    assert len({r["train_run_id"] for r in report["rows"]}) == 3  # three real training runs
    for row in report["rows"]:
        assert 0.0 <= row["regionops.page_r1"] <= 1.0
    saved = json.loads((tmp_path / "ablation_retriever.json").read_text())
    assert set(saved["summary"]) == set(RETRIEVER_VARIANTS)
    table = (tmp_path / "ablation_retriever.md").read_text()
    assert "global_only" in table and "±" in table

    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=get_settings().tracking_uri).get_run(report["mlflow_run_id"])
    assert "global_only.regionops.page_r1.mean" in run.data.metrics
