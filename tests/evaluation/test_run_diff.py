"""`regionops compare RUN_A RUN_B`: params diff and metrics side by side with deltas."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from components.cli import app
from components.evaluation.run_diff import RunNotFound, diff_runs
from components.registry.client import registry_client
from components.tracking import ensure_experiment


@pytest.fixture(scope="module")
def two_runs(regionops_home):
    client = registry_client()
    exp = ensure_experiment(client, f"compare-{uuid.uuid4().hex[:6]}")
    runs = []
    for lr, steps, r1, extra in (("0.001", "100", 0.50, None), ("0.0003", "100", 0.62, "0.9")):
        run = client.create_run(exp)
        rid = run.info.run_id
        client.log_param(rid, "train.lr", lr)
        client.log_param(rid, "train.max_steps", steps)
        client.log_metric(
            rid, "regionops.page_r1", 0.1
        )  # an earlier value: the latest one is compared
        client.log_metric(rid, "regionops.page_r1", r1)
        client.log_metric(rid, "regionops.region_hit1", 0.3)
        if extra:
            client.log_param(rid, "rag.lexical_weight", "0.5")
            client.log_metric(rid, "bm25_blocks.page_r1", float(extra))
        client.set_terminated(rid)
        runs.append(rid)
    return runs


def test_diff_lists_changed_params_and_metric_deltas(two_runs):
    a, b = two_runs
    diff = diff_runs(registry_client(), a, b)
    assert [(p.key, p.a, p.b) for p in diff.params] == [
        ("rag.lexical_weight", None, "0.5"),
        ("train.lr", "0.001", "0.0003"),
    ]
    assert diff.n_same_params == 1
    rows = {m.key: m for m in diff.metrics}
    assert rows["regionops.page_r1"].delta == pytest.approx(0.12)
    assert rows["regionops.region_hit1"].delta == 0.0
    assert rows["bm25_blocks.page_r1"].a is None and rows["bm25_blocks.page_r1"].delta is None


def test_compare_command_prints_tables_and_json(two_runs):
    a, b = two_runs
    runner = CliRunner()
    out = runner.invoke(app, ["compare", a, b])
    assert out.exit_code == 0, out.output
    assert "| train.lr | 0.001 | 0.0003 |" in out.output
    assert "| regionops.page_r1 | 0.5000 | 0.6200 | +0.1200 |" in out.output
    assert "| rag.lexical_weight | (absent) | 0.5 |" in out.output
    as_json = json.loads(runner.invoke(app, ["compare", a, b, "--json"]).output)
    assert as_json["run_a"] == a and as_json["n_same_params"] == 1
    assert {m["key"]: m["delta"] for m in as_json["metrics"]}["regionops.page_r1"] == pytest.approx(
        0.12
    )


def test_unknown_run_is_a_clear_error(two_runs):
    with pytest.raises(RunNotFound, match="nope"):
        diff_runs(registry_client(), two_runs[0], "nope")
    out = CliRunner().invoke(app, ["compare", two_runs[0], "0" * 32])
    assert out.exit_code == 1
