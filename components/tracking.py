"""MLflow bookkeeping shared by the stages: where experiments keep artifacts, and the data report.

Attach the data-validation outcome to the candidate's MLflow run, so reviewers see what data it saw.

The validate stage runs before training creates the run, so the pipeline calls this once
the run exists. Counts become metrics, the report, quarantine files and Great
Expectations Data Docs and a montage of sample pages become artifacts under ``validation/``. Idempotent: a run that
already carries this report (same content hash) is left alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.settings import get_settings

TAG = "regionops.validation_sha256"


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The experiment's id, creating it with artifacts under the project's artifact root.

    Without an explicit location the sqlite store would put artifacts in ./mlruns of
    whatever directory the process runs in.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=get_settings().artifact_location)
    except MlflowException:  # created meanwhile by another process
        return client.get_experiment_by_name(name).experiment_id


def candidate_run_id(model_dir: Path) -> str:
    record = Path(model_dir) / "train_run.json"
    if not record.exists():
        raise FileNotFoundError(f"{record} not found: the train stage records the candidate's MLflow run there")
    return json.loads(record.read_text())["run_id"]


def log_validation_report(model_dir: Path, validation_dir: Path) -> dict:
    validation_dir = Path(validation_dir)
    report_file = validation_dir / "report.json"
    report = json.loads(report_file.read_text())
    digest = hashlib.sha256(report_file.read_bytes()).hexdigest()
    run_id = candidate_run_id(model_dir)
    client = MlflowClient(tracking_uri=get_settings().tracking_uri)
    if client.get_run(run_id).data.tags.get(TAG) == digest:
        return {"run_id": run_id, "logged": False}
    for table in ("pages", "questions"):
        for key in ("accepted", "quarantined", "total"):
            client.log_metric(run_id, f"data.{table}_{key}", float(report[table][key]))
    client.log_metric(run_id, "data.quarantine_fraction", float(report["quarantine_fraction"]))
    client.set_tag(run_id, "data.validation_passed", str(report["passed"]).lower())
    if report.get("top_reasons"):
        client.set_tag(run_id, "data.top_quarantine_reasons", json.dumps(report["top_reasons"])[:5000])
    client.log_artifact(run_id, str(report_file), "validation")
    if (validation_dir / "montage.png").is_file():  # sample pages with their evidence boxes
        client.log_artifact(run_id, str(validation_dir / "montage.png"), "validation")
    for sub in ("quarantine", "data_docs"):
        if (validation_dir / sub).is_dir():
            client.log_artifacts(run_id, str(validation_dir / sub), f"validation/{sub}")
    client.set_tag(run_id, TAG, digest)
    return {"run_id": run_id, "logged": True}
