"""The validation outcome lands on the candidate's MLflow run, once."""

import json

import mlflow
from mlflow import MlflowClient

from components.settings import get_settings
from components.tracking import TAG, log_validation_report


def test_validation_report_is_logged_once(tmp_path):
    settings = get_settings()
    mlflow.set_tracking_uri(settings.tracking_uri)
    exp = MlflowClient().create_experiment(
        "tracking-test", artifact_location=(tmp_path / "art").as_uri()
    )
    run_id = MlflowClient().create_run(exp).info.run_id
    model_dir, validation = tmp_path / "model", tmp_path / "validation"
    model_dir.mkdir()
    (model_dir / "train_run.json").write_text(json.dumps({"run_id": run_id}))
    (validation / "data_docs").mkdir(parents=True)
    (validation / "data_docs" / "index.html").write_text("<html>docs</html>")
    report = {
        "pages": {"accepted": 9, "quarantined": 1, "total": 10},
        "questions": {"accepted": 20, "quarantined": 2, "total": 22},
        "quarantine_fraction": 3 / 32,
        "passed": True,
        "top_reasons": [["box out of range", 2]],
    }
    (validation / "report.json").write_text(json.dumps(report))

    assert log_validation_report(model_dir, validation)["logged"] is True
    run = MlflowClient().get_run(run_id)
    assert run.data.metrics["data.pages_quarantined"] == 1.0
    assert run.data.metrics["data.questions_accepted"] == 20.0
    assert "box out of range" in run.data.tags["data.top_quarantine_reasons"]
    assert run.data.tags[TAG]
    artifacts = {a.path for a in MlflowClient().list_artifacts(run_id, "validation")}
    assert {"validation/report.json", "validation/data_docs"} <= artifacts
    assert log_validation_report(model_dir, validation)["logged"] is False


def test_run_name_says_what_differs_from_params_yaml():
    from components.config import load_params
    from components.tracking import changed_params_name
    from tests.conftest import REPO

    base = load_params(REPO / "params.yaml")
    assert changed_params_name("train", base) == f"train seed={base.seed}"
    changed = load_params(
        REPO / "params.yaml",
        ["seed=13", "train.lambda_local=2", "train.weight_decay=0.5", "reader.weight_decay=0.2"],
    )
    name = changed_params_name("train", changed)
    # both weight_decay keys changed: their short names would be ambiguous, so the keys are kept
    assert name == "train seed=13 reader.weight_decay=0.2 lambda_local=2.0 train.weight_decay=0.5"
    cut = changed_params_name("train", changed, max_len=20)
    assert len(cut) == 20 and cut.endswith("…") and name.startswith(cut[:-1])


def test_experiments_open_on_their_runs_not_the_traces_view(tmp_path):
    from components.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, ensure_experiment

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    new = ensure_experiment(client, "kind-new")
    assert client.get_experiment(new).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    old = client.create_experiment("kind-old", artifact_location=(tmp_path / "art").as_uri())
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(old).tags  # made before the tag existed
    assert ensure_experiment(client, "kind-old") == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_a_run_shorter_than_the_sampling_interval_still_gets_system_metrics(tmp_path, monkeypatch):
    """The monitor publishes once per interval; the block's end publishes one last sample."""
    from components.tracking import system_metrics

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "60")
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("system-metrics", artifact_location=(tmp_path / "a").as_uri())
    run_id = client.create_run(exp).info.run_id
    with system_metrics(run_id, uri):
        pass  # far shorter than 60 s: the sampling thread never publishes
    metrics = client.get_run(run_id).data.metrics
    assert any(name.startswith("system/cpu_utilization") for name in metrics), sorted(metrics)
