"""The gate decides from the candidate's MLflow evaluation run; metrics.json must agree with it.

Real MLflow (the session's sqlite store under $REGIONOPS_HOME); each evaluation run is logged
by the evaluate stage's own logging code (tests/support/eval_runs.py).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from components.config import load_params
from components.registry.evaluation_run import EvaluationRunError, candidate_evaluation, differences
from components.registry.gate import decide
from tests.support.eval_runs import log_evaluation_run

REPO = Path(__file__).resolve().parents[2]


def _candidate(root: Path, page_r1: float = 0.6) -> dict:
    """A candidate as train + evaluate leave it: train_run.json naming a training run, and an
    evaluation run nested under it whose id metrics.json records."""
    from components.registry.client import ensure_experiment, registry_client

    name = f"regionops-evalrun-{uuid.uuid4().hex[:6]}"
    params = load_params(
        REPO / "params.yaml", [f"registry.model_name={name}", f"registry.experiment={name}"]
    )
    client = registry_client()
    training = client.create_run(ensure_experiment(client, name), run_name="train")
    client.set_terminated(training.info.run_id)
    model_dir = root / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "train_run.json").write_text(json.dumps({"run_id": training.info.run_id}))
    metrics_path = root / "metrics.json"
    metrics_path.write_text(
        json.dumps(
            {
                "systems": {
                    "regionops": {"page_r1": page_r1, "region_hit1": 0.4, "n": 20},
                    "bm25_blocks": {"page_r1": 0.5},
                },
                "n_questions": 20,
                "dataset_id": "a" * 64,
                "split": "test",
                "regions": {"chosen": {"threshold_value": 0.5}},
            }
        )
    )
    eval_run = log_evaluation_run(metrics_path, model_dir, params)
    return {
        "client": client,
        "params": params,
        "model_dir": model_dir,
        "metrics_path": metrics_path,
        "training_run": training.info.run_id,
        "eval_run": eval_run,
    }


def _tamper(path: Path, **regionops) -> None:
    metrics = json.loads(path.read_text())
    metrics["systems"]["regionops"].update(regionops)
    path.write_text(json.dumps(metrics))


def test_gate_reads_the_evaluation_run_and_records_its_id(tmp_path):
    cand = _candidate(tmp_path)
    file_metrics = json.loads(cand["metrics_path"].read_text())
    read = candidate_evaluation(cand["client"], file_metrics, cand["training_run"])
    assert read["mlflow_run_id"] == cand["eval_run"]
    assert read["systems"]["regionops"] == {"page_r1": 0.6, "region_hit1": 0.4, "n": 20.0}
    assert (
        read["regions"] == file_metrics["regions"]
    )  # non-metric fields still come from the DVC artifact
    decision = decide(read, None, cand["params"].gate)
    assert decision.evaluation_run_id == cand["eval_run"]
    assert decision.to_dict()["evaluation_run_id"] == cand["eval_run"]
    assert decision.tags()["gate.evaluation_run_id"] == cand["eval_run"]
    assert cand["eval_run"] in decision.to_markdown()


def test_tampered_metrics_json_is_refused_naming_the_metric(tmp_path):
    cand = _candidate(tmp_path, page_r1=0.2)
    _tamper(cand["metrics_path"], page_r1=0.95)  # hand-edited to pass the floor
    with pytest.raises(
        EvaluationRunError, match=r"regionops\.page_r1: metrics\.json 0\.95 != run 0\.2"
    ):
        candidate_evaluation(
            cand["client"], json.loads(cand["metrics_path"].read_text()), cand["training_run"]
        )


def test_metric_or_system_missing_from_either_side_is_a_difference():
    run = {
        "regionops.page_r1": 0.5,
        "bm25_blocks.page_r1": 0.4,
        "eval.n_questions": 3.0,
        "system/cpu_utilization_percentage": 12.0,
    }
    same = {
        "systems": {"regionops": {"page_r1": 0.5}, "bm25_blocks": {"page_r1": 0.4}},
        "n_questions": 3,
    }
    assert differences(same, run) == []
    dropped_system = {"systems": {"regionops": {"page_r1": 0.5}}, "n_questions": 3}
    assert differences(dropped_system, run) == [
        "bm25_blocks.page_r1: run 0.4, metrics.json has none"
    ]
    added = {
        "systems": {"regionops": {"page_r1": 0.5, "mrr": 0.9}, "bm25_blocks": {"page_r1": 0.4}},
        "n_questions": 3,
    }
    assert differences(added, run) == ["regionops.mrr: metrics.json 0.9, run has none"]


def test_metrics_json_without_an_evaluation_run_is_a_clear_error(tmp_path):
    cand = _candidate(tmp_path)
    metrics = json.loads(cand["metrics_path"].read_text())
    with pytest.raises(EvaluationRunError, match="names no evaluation run"):
        candidate_evaluation(
            cand["client"], {k: v for k, v in metrics.items() if k != "mlflow_run_id"}
        )
    with pytest.raises(EvaluationRunError, match="is not in the tracking store"):
        candidate_evaluation(cand["client"], {**metrics, "mlflow_run_id": uuid.uuid4().hex})


def test_evaluation_run_of_another_candidate_or_dataset_is_refused(tmp_path):
    cand = _candidate(tmp_path)
    metrics = json.loads(cand["metrics_path"].read_text())
    with pytest.raises(EvaluationRunError, match="evaluated training run"):
        candidate_evaluation(cand["client"], metrics, training_run_id="another-training-run")
    with pytest.raises(EvaluationRunError, match="scored dataset"):
        candidate_evaluation(
            cand["client"], {**metrics, "dataset_id": "b" * 64}, cand["training_run"]
        )
    # the training run itself is no evaluation run
    with pytest.raises(EvaluationRunError, match="is not an evaluation run"):
        candidate_evaluation(cand["client"], {**metrics, "mlflow_run_id": cand["training_run"]})


def test_register_refuses_a_tampered_candidate_and_registers_nothing(tmp_path):
    from components.registry.promote import gate_and_register

    cand = _candidate(tmp_path, page_r1=0.2)
    (tmp_path / "index").mkdir()
    _tamper(cand["metrics_path"], page_r1=0.95)
    with pytest.raises(EvaluationRunError, match="disagrees with its evaluation run"):
        gate_and_register(
            cand["params"], cand["model_dir"], tmp_path / "index", cand["metrics_path"]
        )
    assert (
        list(cand["client"].search_model_versions(f"name='{cand['params'].registry.model_name}'"))
        == []
    )


def test_gate_command_exits_2_on_a_tampered_metrics_json_and_decides_from_the_run(tmp_path):
    from typer.testing import CliRunner

    from components.cli import app

    cand = _candidate(tmp_path, page_r1=0.6)
    name = cand["params"].registry.model_name
    args = [
        "gate",
        "--metrics",
        str(cand["metrics_path"]),
        "--model",
        str(cand["model_dir"]),
        "--set",
        f"registry.model_name={name}",
        "--set",
        f"registry.experiment={name}",
    ]
    runner = CliRunner()
    good = runner.invoke(app, args)
    assert good.exit_code == 0, good.output
    lines = good.output.splitlines()
    decision = json.loads("\n".join(lines[lines.index("{") :]))
    assert decision["evaluation_run_id"] == cand["eval_run"]

    _tamper(cand["metrics_path"], page_r1=0.1)
    bad = runner.invoke(app, args)
    assert bad.exit_code == 2, bad.output
    assert "cannot gate" in bad.output and "regionops.page_r1" in bad.output
