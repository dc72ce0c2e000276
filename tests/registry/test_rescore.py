"""The promote step re-scores the champion on the candidate's evaluation set before gating.

Real retrievers (randomly initialised, tiny), real indexes and real evaluations on the
session's tiny corpus; the champion is downloaded from the registry and evaluated again.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from components.config import GateParams
from tests.support.eval_runs import log_evaluation_run

pytestmark = pytest.mark.slow


def _candidate(params, corpus, root: Path) -> tuple[Path, dict]:
    from components.evaluation.evaluate import run_evaluation
    from components.index.build import build_index
    from components.model.io import save_retriever
    from components.model.retriever import build_retriever

    save_retriever(build_retriever(params.model), root / "model" / "retriever")
    build_index(params, corpus, root / "model", root / "index")
    metrics = run_evaluation(
        params, corpus, root / "model", root / "index", root / "eval", log_mlflow=False
    )
    log_evaluation_run(
        root / "eval" / "metrics.json", root / "model", params
    )  # what the gate reads
    return root, metrics


def _regressed_copy(a: Path, b: Path, metrics: dict, metric: str, drop: float, params) -> Path:
    """Candidate B: a later training run (its own run id) whose evaluation measured ``metric`` lower.

    Same eval set (same dataset id) as A; only what the evaluation measured differs. Saves a
    second train + index + evaluate, which would cost minutes on a shared 2-core machine.
    """
    import shutil

    shutil.copytree(a / "model", b / "model")
    shutil.copytree(a / "index", b / "index")
    (b / "model" / "train_run.json").write_text(
        json.dumps({"run_id": f"candidate-b-{uuid.uuid4().hex[:6]}"})
    )
    system = metrics["systems"]["regionops"]
    worse = {
        **metrics,
        "systems": {**metrics["systems"], "regionops": {**system, metric: system[metric] - drop}},
    }
    (b / "eval").mkdir(parents=True)
    (b / "eval" / "metrics.json").write_text(json.dumps(worse))
    log_evaluation_run(b / "eval" / "metrics.json", b / "model", params)  # B's own evaluation run
    return b


@pytest.fixture(scope="module")
def rescored(tiny_params, tiny_corpus, tmp_path_factory, regionops_home):
    from components.registry import rescore
    from components.registry.client import registry_client

    name = f"regionops-rescore-{uuid.uuid4().hex[:6]}"
    params = tiny_params.model_copy(deep=True)
    params.registry.model_name = name
    params.registry.experiment = name
    params.gate = GateParams(floors={}, tolerance={"mrr": 0.01})
    root = tmp_path_factory.mktemp("rescore")

    a, a_metrics = _candidate(params, tiny_corpus, root / "a")
    files = lambda d: (d / "model", d / "index", d / "eval" / "metrics.json")
    first = rescore.gate_and_register_rescored(params, tiny_corpus, *files(a))

    # The champion's recorded numbers go stale (as if measured on an easier, older eval set):
    # against them any candidate would pass; only the re-score can catch a regression.
    client = registry_client()
    client.set_model_version_tag(name, first["version"], "metric.mrr", "0.0")

    assert a_metrics["systems"]["regionops"]["mrr"] >= 0.05, (
        "precondition: the tiny champion finds gold pages"
    )
    b = _regressed_copy(a, root / "b", a_metrics, "mrr", 0.05, params)
    second = rescore.gate_and_register_rescored(params, tiny_corpus, *files(b))
    again = rescore.gate_and_register_rescored(params, tiny_corpus, *files(b))
    champion_now = str(client.get_model_version_by_alias(name, "champion").version)
    return {
        "name": name,
        "first": first,
        "second": second,
        "again": again,
        "a_metrics": a_metrics,
        "champion_now": champion_now,
        "client": client,
        "b": b,
        "corpus_root": tiny_corpus.root,
    }


def test_first_candidate_has_no_champion_to_rescore(rescored):
    first = rescored["first"]
    assert first["status"] == "promoted"
    assert first["rescore"]["version"] is None and first["rescore"]["notes"] == [
        "no champion to re-score"
    ]


def test_champion_rescored_equals_its_own_evaluation(rescored):
    """The champion, downloaded from the registry and re-evaluated, scores what it scored before."""
    again = rescored["second"]["rescore"]
    assert again["version"] == rescored["first"]["version"]
    measured = again["metrics"]["systems"]["regionops"]
    original = rescored["a_metrics"]["systems"]["regionops"]
    for key in ("page_r1", "page_r5", "mrr", "region_hit1", "region_miou"):
        assert measured[key] == pytest.approx(original[key]), key
    assert again["metrics"]["dataset_id"] == rescored["a_metrics"]["dataset_id"]


def test_regression_against_the_rescored_champion_makes_a_challenger(rescored):
    second = rescored["second"]
    assert second["status"] == "challenger"
    assert rescored["champion_now"] == rescored["first"]["version"]  # champion untouched
    failed = [r for r in second["gate"]["rules"] if not r["passed"]]
    assert [(r["kind"], r["metric"]) for r in failed] == [("non_regression", "mrr")]
    assert failed[0]["bound"] == pytest.approx(
        rescored["a_metrics"]["systems"]["regionops"]["mrr"] - 0.01
    )
    assert any("re-scored on the same evaluation set" in r for r in second["gate"]["reasons"])
    tags = rescored["client"].get_model_version(rescored["name"], second["version"]).tags
    assert tags["gate.passed"] == "false" and "mrr" in tags["gate.reasons"]


def test_gating_the_same_candidate_again_changes_nothing(rescored):
    again = rescored["again"]
    assert again["status"] == "unchanged" and again["version"] == rescored["second"]["version"]
    assert again["rescore"]["notes"] == ["candidate already registered: champion not re-scored"]
    versions = rescored["client"].search_model_versions(f"name='{rescored['name']}'")
    assert len(versions) == 2


def test_gate_command_rescores_the_champion(rescored):
    """`regionops gate` judges B against the champion re-scored now, not against its stale tags."""
    from typer.testing import CliRunner

    from components.cli import app
    from tests.conftest import TINY_OVERRIDES

    overrides = [
        *TINY_OVERRIDES,
        f"registry.model_name={rescored['name']}",
        f"registry.experiment={rescored['name']}",
        "gate.floors={}",
        "gate.tolerance={mrr: 0.01}",
        f"data.corpus_dir={rescored['corpus_root']}",
    ]
    args = [
        "gate",
        "--metrics",
        str(rescored["b"] / "eval" / "metrics.json"),
        "--index",
        str(rescored["b"] / "index"),
    ]
    for override in overrides:
        args += ["--set", override]
    runner = CliRunner()
    judged = runner.invoke(app, args)
    assert judged.exit_code == 1, judged.output
    decision = printed_json(judged.output)
    assert [r["metric"] for r in decision["rules"] if not r["passed"]] == ["mrr"]
    assert any("re-scored on dataset" in r for r in decision["reasons"])
    # Without the re-score the stale recorded numbers (mrr 0.0) would have let it through.
    stale = runner.invoke(app, [*args, "--no-rescore"])
    assert stale.exit_code == 0, stale.output
    assert any("recorded at its registration" in r for r in printed_json(stale.output)["reasons"])


@pytest.mark.integration
def test_served_real_champion_answers_with_page_and_boxes(rescored, tiny_corpus, tmp_path):
    """The registered RAG checkpoint (real retriever, index, engine) over HTTP via `mlflow models serve`."""
    from tests.support.serving import serve

    page_ids = {p.id for p in tiny_corpus.pages}
    question = tiny_corpus.questions_in("test")[0].question
    with serve(f"models:/{rescored['name']}@champion", tmp_path / "serve.log") as server:
        status, body = server.post([{"question": question, "k": 3}])
        assert status == 200, body
        row = body["predictions"][0]
        assert row["page_id"] in page_ids
        assert 1 <= len(row["boxes"]) <= 3 and len(row["scores"]) == len(row["boxes"])
        assert all(
            len(b) == 4 and 0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1 for b in row["boxes"]
        )
        assert isinstance(row["answer"], str)
        status, body = server.post([{"question": "   "}])
        assert status == 400 and "'question' is empty" in body["message"]
        status, again = server.post([{"question": question, "k": 3}])
        assert (
            status == 200 and again["predictions"][0] == row
        )  # still answering, deterministically


def printed_json(output: str) -> dict:
    """The JSON document a command printed (MLflow may log lines before it on the same stream)."""
    lines = output.splitlines()
    return json.loads("\n".join(lines[lines.index("{") :]))
