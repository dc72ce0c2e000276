"""`regionops ablate retriever`: every variant trained, indexed and scored per seed, then summarised."""

from __future__ import annotations

import json

import pytest

from components.evaluation.ablation import (
    REPORTED,
    RETRIEVER_VARIANTS,
    ablate_retriever,
    paired_against_reference,
    render_markdown,
    summarise,
)


def test_summarise_means_and_stds_per_variant():
    rows = [
        {
            "variant": "a",
            "regionops.page_r1": 0.5,
            "regionops.region_hit1": 0.2,
            "regionops_dense.page_r1": 0.1,
            "regionops_dense.region_hit1": None,
        },
        {
            "variant": "a",
            "regionops.page_r1": 0.7,
            "regionops.region_hit1": 0.4,
            "regionops_dense.page_r1": 0.3,
            "regionops_dense.region_hit1": None,
        },
    ]
    summary = summarise(rows)["a"]
    assert summary["regionops.page_r1"]["mean"] == pytest.approx(0.6)
    assert summary["regionops.page_r1"]["std"] == pytest.approx(0.1414, abs=1e-3)
    assert summary["regionops_dense.region_hit1"] == {"mean": None, "std": None}


def test_paired_against_reference_pairs_seeds_and_common_questions():
    """Differences pair each seed with the same seed of global_only, over questions both scored."""

    def scores(hits, dense=None):
        return {
            f"q{i}": {
                "regionops.page_r1": h,
                "regionops.region_hit1": None if dense is None else h,
                "regionops_dense.page_r1": h,
                "regionops_dense.region_hit1": None,
            }
            for i, h in enumerate(hits)
        }

    per_question = {
        ("global_only", 1): scores([1, 0, 0, 0]),
        ("global_only", 2): scores([1, 1, 0, 0]),
        ("hybrid", 1): scores([1, 1, 0, 0]),
        ("hybrid", 2): scores([1, 1, 1, 1]),
        ("hybrid", 3): scores([0, 0, 0, 0]),  # no global_only seed 3: not paired
    }
    paired = paired_against_reference(per_question)
    assert set(paired) == {"hybrid"}
    d = paired["hybrid"]["regionops.page_r1"]
    assert d["seeds"] == 2 and d["questions"] == 4
    assert d["difference"] == pytest.approx(0.375) and d["per_seed"] == pytest.approx([0.25, 0.5])
    assert d["variant_only"] == 3 and d["reference_only"] == 0
    assert "regionops_dense.region_hit1" not in paired["hybrid"]  # never scored: nothing to pair
    summary = summarise([{"variant": "hybrid", **{f"{s}.{m}": 0.5 for s, m in REPORTED}}])
    table = render_markdown(summary, [1, 2], "test", paired)
    assert "| hybrid | regionops.page_r1 | +37.5 |" in table and "+25.0 / +50.0" in table


@pytest.mark.slow
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
    paired = saved["paired_vs_global_only"]
    assert set(paired) == set(RETRIEVER_VARIANTS) - {"global_only"}
    for variant, metrics in paired.items():
        d = metrics["regionops.page_r1"]
        row = next(r for r in report["rows"] if r["variant"] == variant)
        reference = next(r for r in report["rows"] if r["variant"] == "global_only")
        # The paired mean difference is the difference of the two runs' reported means.
        assert d["difference"] == pytest.approx(
            row["regionops.page_r1"] - reference["regionops.page_r1"]
        )
    assert "Paired difference to global_only" in table

    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=get_settings().tracking_uri).get_run(report["mlflow_run_id"])
    assert "global_only.regionops.page_r1.mean" in run.data.metrics
