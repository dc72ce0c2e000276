"""One gate path: `regionops gate`, the promote step (``promote.gate_and_register``) and the re-score
step (``rescore.gate_and_register_rescored``) decide through ``gate.judge`` over
``store.champion_reference``, so the same candidate against the same champion gets the same decision."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from components.config import GateParams, load_params
from components.registry.gate import ChampionReference, Rescore, judge
from components.serving import checkpoint
from tests.registry.test_registry import make_candidate
from tests.support.registry_fakes import fake_factory

REPO = Path(__file__).resolve().parents[2]
GATE = GateParams(floors={"page_r1": 0.3}, tolerance={"page_r1": 0.02, "region_hit1": 0.02})


def _metrics(page_r1: float, region_hit1: float) -> dict:
    return {
        "systems": {"regionops": {"page_r1": page_r1, "region_hit1": region_hit1}},
        "dataset_id": "d",
    }


def test_judge_prefers_the_rescored_champion_and_says_so():
    candidate = _metrics(0.62, 0.42)
    champion = ChampionReference(
        "1",
        recorded=_metrics(0.5, 0.4),
        rescored=_metrics(0.8, 0.42),
        notes=("champion v1 re-scored on dataset d",),
    )
    decision = judge(candidate, champion, GATE)
    assert decision.passed is False  # 0.62 < 0.8 - 0.02: only the re-scored numbers catch it
    assert [r.metric for r in decision.rules if not r.passed] == ["page_r1"]
    assert "champion v1 re-scored on the same evaluation set" in decision.reasons
    assert decision.reasons[-1] == "champion v1 re-scored on dataset d"


def test_judge_falls_back_to_the_recorded_metrics_without_a_rescore():
    decision = judge(
        _metrics(0.62, 0.42), ChampionReference("2", recorded=_metrics(0.5, 0.4)), GATE
    )
    assert decision.passed is True
    assert decision.reasons == ["champion v2 compared by the metrics recorded at its registration"]


def test_judge_without_a_champion_applies_only_the_floors():
    assert judge(_metrics(0.31, 0.0), None, GATE).passed is True
    failed = judge(_metrics(0.2, 0.9), None, GATE)
    assert failed.passed is False and any("no champion" in r for r in failed.reasons)


def test_champion_reference_ignores_a_rescore_of_another_version():
    from components.registry.store import champion_reference

    tags = {"metric.page_r1": "0.5", "metric.region_hit1": "0.4", "lineage.eval_dataset_id": "d"}
    client = SimpleNamespace(get_model_version=lambda name, version: SimpleNamespace(tags=tags))
    champion = SimpleNamespace(name="m", version=3)
    stale = champion_reference(
        client, champion, Rescore("2", _metrics(0.9, 0.9), ["champion v2 re-scored"])
    )
    assert stale.version == "3" and stale.rescored is None and stale.notes == ()
    assert stale.recorded["systems"]["regionops"] == {"page_r1": 0.5, "region_hit1": 0.4}
    fresh = champion_reference(
        client, champion, Rescore("3", _metrics(0.9, 0.9), ["champion v3 re-scored"])
    )
    assert fresh.rescored == _metrics(0.9, 0.9) and fresh.notes == ("champion v3 re-scored",)
    assert champion_reference(client, None, None) is None


def test_gate_stays_pure_and_nothing_in_the_registry_imports_in_a_circle():
    """gate.py decides without MLflow or I/O; the registry modules import one way (no gate <-> promote)."""
    import subprocess
    import sys

    probe = (
        "import sys, components.registry.gate as g; "
        "print(sorted(m for m in sys.modules if m.startswith(('mlflow', 'components.registry'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "['components.registry', 'components.registry.gate']"

    import ast

    registry = REPO / "components" / "registry"
    imports = {}
    for module in registry.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "components.registry."
            ):
                names.add(node.module.rsplit(".", 1)[1])
        imports[module.stem] = names
    for module, names in imports.items():
        for other in names:
            assert module not in imports.get(other, set()), f"{module} <-> {other}"


def printed_json(output: str) -> dict:
    lines = output.splitlines()
    return json.loads("\n".join(lines[lines.index("{") :]))


@pytest.mark.slow
def test_cli_promote_and_rescore_steps_give_the_same_decision(
    tmp_path, regionops_home, monkeypatch
):
    """Same champion, same re-scored numbers, candidates with the same metrics: one decision, three callers."""
    from typer.testing import CliRunner

    from components.cli import app
    from components.cli import registry as cli_registry
    from components.registry import rescore as rescore_mod
    from components.registry.promote import gate_and_register

    name = f"regionops-onegate-{uuid.uuid4().hex[:6]}"
    sets = [f"registry.model_name={name}", f"registry.experiment={name}"]
    params = load_params(REPO / "params.yaml", sets)
    monkeypatch.setattr(checkpoint, "ENGINE_FACTORY", fake_factory)
    champion = make_candidate(tmp_path, seed=61, page_r1=0.6, region_hit1=0.4, experiment=name)
    assert (
        gate_and_register(
            params, champion["model_dir"], champion["index_dir"], champion["metrics_path"]
        )["status"]
        == "promoted"
    )

    # v1 re-scored today is better than recorded: the candidates beat the record but not the re-score.
    rescored = Rescore("1", _metrics(0.9, 0.4), ["champion v1 re-scored on dataset d"])
    monkeypatch.setattr(rescore_mod, "rescore_champion", lambda *args, **kwargs: rescored)
    no_pages = SimpleNamespace(pages=[], image_path=lambda page: None)
    monkeypatch.setattr(cli_registry, "project_corpus", lambda params, accepted=True: no_pages)
    a, b, c = (
        make_candidate(tmp_path, seed=seed, page_r1=0.65, region_hit1=0.42, experiment=name)
        for seed in (62, 63, 64)
    )

    (a["index_dir"] / "CURRENT").write_text(
        "v1"
    )  # the gate command checks an index is there to re-score on
    args = [
        "gate",
        "--metrics",
        str(a["metrics_path"]),
        "--index",
        str(a["index_dir"]),
        "--model",
        str(a["model_dir"]),
    ]
    for override in sets:
        args += ["--set", override]
    judged = CliRunner().invoke(app, args)
    assert judged.exit_code == 1, judged.output
    from_cli = printed_json(judged.output)
    from_promote = gate_and_register(
        params, b["model_dir"], b["index_dir"], b["metrics_path"], rescore=rescored
    )["gate"]
    from_rescore = rescore_mod.gate_and_register_rescored(
        params, no_pages, c["model_dir"], c["index_dir"], c["metrics_path"]
    )["gate"]

    same = lambda decision: (decision["passed"], decision["rules"], decision["reasons"])
    assert same(from_cli) == same(from_promote) == same(from_rescore)
    assert from_cli["passed"] is False
    assert [r["metric"] for r in from_cli["rules"] if not r["passed"]] == ["page_r1"]
    assert "champion v1 re-scored on the same evaluation set" in from_cli["reasons"]
    # each decision names its own candidate's evaluation run
    assert [d["evaluation_run_id"] for d in (from_cli, from_promote, from_rescore)] == [
        a["eval_run_id"],
        b["eval_run_id"],
        c["eval_run_id"],
    ]
