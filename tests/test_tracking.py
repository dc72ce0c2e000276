"""The validation outcome lands on the candidate's MLflow run, once."""

import json

import mlflow
from mlflow import MlflowClient

from components.settings import get_settings
from components.tracking import TAG, log_validation_report


def test_validation_report_is_logged_once(tmp_path):
    settings = get_settings()
    mlflow.set_tracking_uri(settings.tracking_uri)
    exp = MlflowClient().create_experiment("tracking-test", artifact_location=(tmp_path / "art").as_uri())
    run_id = MlflowClient().create_run(exp).info.run_id
    model_dir, validation = tmp_path / "model", tmp_path / "validation"
    model_dir.mkdir()
    (model_dir / "train_run.json").write_text(json.dumps({"run_id": run_id}))
    (validation / "data_docs").mkdir(parents=True)
    (validation / "data_docs" / "index.html").write_text("<html>docs</html>")
    report = {
        "pages": {"accepted": 9, "quarantined": 1, "total": 10},
        "questions": {"accepted": 20, "quarantined": 2, "total": 22},
        "quarantine_fraction": 3 / 32, "passed": True, "top_reasons": [["box out of range", 2]],
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
