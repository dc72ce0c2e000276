"""MLflow bookkeeping shared by the stages: experiments, datasets, run names, system metrics, and
the data report.

Attach the data-validation outcome to the candidate's MLflow run, so reviewers see what data it saw.

The validate stage runs before training creates the run, so the pipeline calls this once
the run exists. Counts become metrics, the report, quarantine files and Great
Expectations Data Docs and a montage of sample pages become artifacts under ``validation/``. Idempotent: a run that
already carries this report (same content hash) is left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.settings import get_settings

log = logging.getLogger(__name__)

TAG = "regionops.validation_sha256"
# MLflow 3's UI opens an experiment on its GenAI traces view unless told it holds model
# development: with this tag it opens on the runs table, where the training and evaluation runs are.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow nests a run under this one in the runs table
DATASET_CONTEXT_TAG = "mlflow.data.context"
MAX_RUN_NAME = 120


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The experiment's id, creating it with artifacts under the project's artifact root.

    Without an explicit location the sqlite store would put artifacts in ./mlruns of
    whatever directory the process runs in. The experiment is marked as model development
    (``EXPERIMENT_KIND_TAG``), so the UI opens on its runs, not on the traces view.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(
                name,
                artifact_location=get_settings().artifact_location,
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        except MlflowException:  # created meanwhile by another process
            experiment = client.get_experiment_by_name(name)
        else:
            return experiment_id
    if EXPERIMENT_KIND_TAG not in (experiment.tags or {}):  # an experiment from before the tag
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def _baseline(params: Any) -> dict[str, Any]:
    """The project's params.yaml as loaded without overrides (the pydantic defaults without one)."""
    from components.config import ConfigError, load_params

    path = Path(__file__).resolve().parents[1] / "params.yaml"
    try:
        return load_params(path).flat() if path.is_file() else type(params)().flat()
    except ConfigError:
        return type(params)().flat()


def changed_params_name(
    stage: str, params: Any, always: tuple[str, ...] = ("seed",), max_len: int = MAX_RUN_NAME
) -> str:
    """A run name that says what this run is: ``always`` keys, then every parameter that differs
    from the project's params.yaml, e.g. ``train seed=13 global_weight=4 max_steps=250``.

    Keys are shortened to their last part unless that is ambiguous; a name over ``max_len``
    characters is cut (the full parameters are the run's params).
    """
    flat, baseline = params.flat(), _baseline(params)
    keys = [k for k in always if k in flat] + sorted(
        k for k, v in flat.items() if k not in always and baseline.get(k) != v
    )
    last = [k.rsplit(".", 1)[-1] for k in keys]
    parts = []
    for key in keys:
        short = key.rsplit(".", 1)[-1]
        value = flat[key]
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        parts.append(f"{short if last.count(short) == 1 else key}={text}")
    name = " ".join([stage, *parts])
    return name if len(name) <= max_len else name[: max_len - 1] + "…"


def _dataset_input(dataset: Any, context: str):
    from mlflow.entities import DatasetInput, InputTag

    return DatasetInput(
        dataset=dataset._to_mlflow_entity(), tags=[InputTag(key=DATASET_CONTEXT_TAG, value=context)]
    )


def log_dataset(
    client: MlflowClient,
    run_id: str,
    rows: Iterable[dict[str, Any]],
    *,
    name: str,
    digest: str,
    source: str | Path,
    context: str,
) -> None:
    """Record a dataset as an input of the run (MLflow's Datasets panel): name, digest, schema, size.

    Only the metadata is stored, never the rows' content beyond the schema and row count.
    """
    import mlflow.data
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    # MLflow's dataset digest column holds 36 characters; our digests are sha256 hex.
    dataset = mlflow.data.from_pandas(frame, source=str(source), name=name, digest=str(digest)[:32])
    client.log_inputs(run_id, datasets=[_dataset_input(dataset, context)])


def question_rows(questions: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": q.id,
            "type": q.type or "untyped",
            "split": q.split,
            "doc": q.doc,
            "page": q.page,
            "has_box": q.box is not None,
            "has_query_image": bool(q.query_image),
        }
        for q in questions
    ]


def page_rows(pages: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        {"id": p.id, "split": p.split, "collection": p.collection, "n_words": len(p.words)}
        for p in pages
    ]


@contextlib.contextmanager
def system_metrics(run_id: str, tracking_uri: str) -> Iterator[None]:
    """Sample CPU, memory, disk and network into the run (``system/*`` metrics) while the block runs.

    On by default; ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false`` turns it off. Needs psutil (a
    dependency); a monitor that cannot start never stops the training. The monitor publishes once
    per sampling interval, so a run shorter than one interval would show no ``system/*`` chart:
    one last sample is published when the block ends, so every run has at least one.
    """
    if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true").lower() in ("false", "0"):
        yield
        return
    monitor = None
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, tracking_uri=tracking_uri)
        monitor.start()
    except Exception as exc:  # noqa: BLE001 - monitoring is best effort; the training must go on
        log.warning("system metrics are not logged: %s", exc)
        monitor = None
    try:
        yield
    finally:
        if monitor is not None:
            monitor.finish()  # joins the sampling thread and flushes what it queued
            try:
                monitor.collect_metrics()
                monitor.publish_metrics(monitor.aggregate_metrics())
                monitor.mlflow_logger.flush()
            except Exception as exc:  # noqa: BLE001 - best effort, as above
                log.warning("the last system metrics sample is not logged: %s", exc)


def candidate_run_id(model_dir: Path) -> str:
    record = Path(model_dir) / "train_run.json"
    if not record.exists():
        raise FileNotFoundError(
            f"{record} not found: the train stage records the candidate's MLflow run there"
        )
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
        client.set_tag(
            run_id, "data.top_quarantine_reasons", json.dumps(report["top_reasons"])[:5000]
        )
    client.log_artifact(run_id, str(report_file), "validation")
    if (validation_dir / "montage.png").is_file():  # sample pages with their evidence boxes
        client.log_artifact(run_id, str(validation_dir / "montage.png"), "validation")
    for sub in ("quarantine", "data_docs"):
        if (validation_dir / sub).is_dir():
            client.log_artifacts(run_id, str(validation_dir / sub), f"validation/{sub}")
    client.set_tag(run_id, TAG, digest)
    return {"run_id": run_id, "logged": True}
