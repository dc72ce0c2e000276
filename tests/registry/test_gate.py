"""Gate rules: floors, non-regression within tolerance, missing metrics, no champion."""

from __future__ import annotations

import json

from components.config import GateParams
from components.registry.gate import decide
from tests.support.eval_runs import log_evaluation_run


def metrics(**values) -> dict:
    return {"systems": {"regionops": values, "bm25_blocks": {"page_r1": 0.9}}, "n_questions": 10}


GATE = GateParams(
    floors={"page_r1": 0.3, "region_hit1": 0.15}, tolerance={"page_r1": 0.02, "region_hit1": 0.02}
)


def rule(decision, kind, metric):
    return next(r for r in decision.rules if r.kind == kind and r.metric == metric)


def test_floors_pass_without_champion_and_skip_is_recorded():
    d = decide(metrics(page_r1=0.5, region_hit1=0.2), None, GATE)
    assert d.passed
    assert {r.kind for r in d.rules} == {"floor"}
    assert any("no champion" in reason for reason in d.reasons)
    assert rule(d, "floor", "page_r1").bound == 0.3


def test_floor_failure_names_metric_and_bound():
    d = decide(metrics(page_r1=0.29, region_hit1=0.2), None, GATE)
    assert not d.passed
    r = rule(d, "floor", "page_r1")
    assert not r.passed and r.value == 0.29 and r.bound == 0.3
    assert any("page_r1" in reason for reason in d.reasons)
    # a baseline's numbers are never what is gated
    assert rule(d, "floor", "region_hit1").passed


def test_missing_metric_fails_its_rule():
    d = decide(metrics(page_r1=0.9), metrics(page_r1=0.9, region_hit1=0.5), GATE)
    assert not d.passed
    assert not rule(d, "floor", "region_hit1").passed
    assert rule(d, "floor", "region_hit1").value is None
    assert not rule(d, "non_regression", "region_hit1").passed
    assert "no numeric regionops.region_hit1" in rule(d, "floor", "region_hit1").reason


def test_nan_or_non_numeric_counts_as_missing():
    d = decide(metrics(page_r1=float("nan"), region_hit1="0.9"), None, GATE)
    assert not d.passed and all(not r.passed for r in d.rules)


def test_no_systems_at_all_fails():
    assert not decide({}, None, GATE).passed


def test_non_regression_within_tolerance_passes_and_beyond_fails():
    champion = metrics(page_r1=0.60, region_hit1=0.40)
    within = decide(metrics(page_r1=0.585, region_hit1=0.41), champion, GATE)
    assert within.passed
    assert abs(rule(within, "non_regression", "page_r1").bound - 0.58) < 1e-9

    worse = decide(metrics(page_r1=0.55, region_hit1=0.41), champion, GATE)
    assert not worse.passed
    r = rule(worse, "non_regression", "page_r1")
    assert not r.passed and "dropped by 0.0500" in r.reason
    assert rule(worse, "floor", "page_r1").passed  # floors alone would have let it through


def test_champion_without_metric_is_not_a_regression():
    d = decide(metrics(page_r1=0.6, region_hit1=0.3), metrics(page_r1=0.5), GATE)
    r = rule(d, "non_regression", "region_hit1")
    assert r.passed and "not applicable" in r.reason
    assert d.passed


def test_serialisations():
    d = decide(metrics(page_r1=0.2, region_hit1=0.2), metrics(page_r1=0.6, region_hit1=0.2), GATE)
    as_dict = json.loads(d.to_json())
    assert as_dict["passed"] is False and len(as_dict["rules"]) == 4
    md = d.to_markdown()
    assert "FAILED" in md and "| floor | page_r1 | 0.2000 | 0.3000 | no |" in md
    tags = d.tags()
    assert tags["gate.passed"] == "false"
    assert tags["gate.floor.page_r1"].startswith("FAIL")
    assert tags["gate.non_regression.region_hit1"].startswith("pass")


def test_gate_command_without_champion_applies_floors(tmp_path, regionops_home):
    import uuid

    from typer.testing import CliRunner

    from components.cli import app

    name = f"regionops-gatecli-{uuid.uuid4().hex[:6]}"
    runner = CliRunner()
    for page_r1, code in ((0.1, 1), (0.5, 0)):
        path = tmp_path / f"metrics{page_r1}.json"
        path.write_text(json.dumps(metrics(page_r1=page_r1, region_hit1=0.2)))
        log_evaluation_run(path)
        out = runner.invoke(
            app, ["gate", "--metrics", str(path), "--set", f"registry.model_name={name}"]
        )
        assert out.exit_code == code, out.output
        decision = printed_json(out.output)
        assert decision["passed"] is (code == 0)
        assert any("no champion" in r for r in decision["reasons"])


def printed_json(output: str) -> dict:
    """The JSON document a command printed (MLflow may log lines before it on the same stream)."""
    lines = output.splitlines()
    return json.loads("\n".join(lines[lines.index("{") :]))


def test_served_params_take_the_region_settings_chosen_on_val(tiny_params):
    from components.registry.bundle import served_params

    chosen = tiny_params.regions.model_copy(
        update={"threshold": "quantile", "threshold_value": 0.9, "snap": "none"}
    ).model_dump()
    served = served_params(tiny_params, {"regions": {"tuned_on": "val", "chosen": chosen}})
    assert served.regions.threshold == "quantile" and served.regions.snap == "none"
    assert served.model == tiny_params.model and served.rag == tiny_params.rag
    assert served_params(tiny_params, {"regions": {"tuned_on": None}}) is tiny_params
