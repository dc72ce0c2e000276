"""The candidate's evaluation, read back from its own MLflow run: what the gate decides from.

The evaluate stage logs each evaluation as its own run, nested under the training run, and
writes the run's id into ``eval/metrics.json`` (the DVC metric). The gate reads the metrics
from that run through ``MlflowClient``; metrics.json is the DVC artifact of the same
evaluation and must agree with the run value for value. Any disagreement (a hand-edited or
stale metrics.json, a run of another candidate or another evaluation set, a run that never
finished) is an ``EvaluationRunError`` naming what differs: the gate never picks one of two
sources silently.
"""

from __future__ import annotations

import math
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

RUN_ID_KEY = "mlflow_run_id"  # metrics.json's pointer to its evaluation run
STAGE_TAG, STAGE = "regionops.stage", "evaluate"
DATASET_TAG = "regionops.eval_dataset_id"
TRAINING_RUN_TAG = "regionops.training_run_id"
COUNT_METRIC = "eval.n_questions"
MAKE_IT = "re-run the evaluation (`dvc repro evaluate`, or `regionops evaluate`)"


class EvaluationRunError(RuntimeError):
    """The candidate's evaluation run is missing, is not this candidate's, or disagrees with metrics.json."""


def _numeric(value: Any) -> bool:
    # What the evaluate stage logs as a metric (bools are ints to it, and so they are here).
    return isinstance(value, (int, float)) and value is not None


def logged_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The MLflow metrics an evaluation logs for a metrics.json: ``<system>.<metric>`` and the count."""
    flat = {
        f"{system}.{key}": float(value)
        for system, values in (metrics.get("systems") or {}).items()
        for key, value in (values or {}).items()
        if _numeric(value)
    }
    if _numeric(metrics.get("n_questions")):
        flat[COUNT_METRIC] = float(metrics["n_questions"])
    return flat


def _evaluation_metrics(run_metrics: dict[str, float]) -> dict[str, float]:
    """The run's ``<system>.<metric>`` and count metrics (not e.g. ``system/cpu_*`` samples)."""
    return {k: v for k, v in run_metrics.items() if "." in k and "/" not in k}


def systems_from_run(run_metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """``<system>.<metric>`` run metrics back into metrics.json's ``systems`` table."""
    systems: dict[str, dict[str, float]] = {}
    for key, value in _evaluation_metrics(run_metrics).items():
        if key == COUNT_METRIC:
            continue
        system, metric = key.split(".", 1)
        systems.setdefault(system, {})[metric] = float(value)
    return systems


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(
        a, b, rel_tol=1e-9, abs_tol=1e-12
    )  # MLflow stores doubles: exact, bar rounding


def differences(file_metrics: dict[str, Any], run_metrics: dict[str, float]) -> list[str]:
    """Each metric where metrics.json and the run disagree (or one of them lacks it); [] when equal.

    Every ``<system>.<metric>`` of the run is compared, so a system or metric deleted from
    metrics.json is a difference too; samples such as ``system/cpu_*`` are not.
    """
    expected = logged_metrics(file_metrics)
    observed = _evaluation_metrics(run_metrics)
    out = []
    for key in sorted(set(expected) | set(observed)):
        if key not in observed:
            out.append(f"{key}: metrics.json {expected[key]!r}, run has none")
        elif key not in expected:
            out.append(f"{key}: run {observed[key]!r}, metrics.json has none")
        elif not _same(expected[key], observed[key]):
            out.append(f"{key}: metrics.json {expected[key]!r} != run {observed[key]!r}")
    return out


def candidate_evaluation(
    client: MlflowClient,
    file_metrics: dict[str, Any],
    training_run_id: str | None = None,
    source: str = "metrics.json",
) -> dict[str, Any]:
    """The candidate's metrics as its evaluation run recorded them, checked against metrics.json.

    Returns metrics.json's shape with ``systems`` rebuilt from the run's metrics and
    ``mlflow_run_id`` the run read; the other fields (split, dataset id, the region settings
    chosen on val) come from metrics.json, checked against the run's tags where it has them.
    ``training_run_id``: the candidate's training run (``train_run.json``); an evaluation run
    nested under another training run is refused.
    """
    run_id = file_metrics.get(RUN_ID_KEY)
    if not run_id:
        raise EvaluationRunError(
            f"{source} names no evaluation run ({RUN_ID_KEY}): the gate reads the "
            f"candidate's metrics from its MLflow evaluation run; {MAKE_IT}"
        )
    try:
        run = client.get_run(str(run_id))
    except MlflowException as exc:
        raise EvaluationRunError(
            f"evaluation run {run_id} named by {source} is not in the tracking store "
            f"{client.tracking_uri}: {MAKE_IT}"
        ) from exc
    tags = run.data.tags
    if tags.get(STAGE_TAG) != STAGE:
        raise EvaluationRunError(
            f"run {run_id} named by {source} is not an evaluation run "
            f"({STAGE_TAG}={tags.get(STAGE_TAG)!r})"
        )
    if run.info.status != "FINISHED":
        raise EvaluationRunError(
            f"evaluation run {run_id} did not finish (status {run.info.status}): {MAKE_IT}"
        )
    dataset = tags.get(DATASET_TAG)
    if dataset is not None and dataset != str(file_metrics.get("dataset_id")):
        raise EvaluationRunError(
            f"evaluation run {run_id} scored dataset {dataset[:12]}, {source} says "
            f"{str(file_metrics.get('dataset_id'))[:12]}: not the same evaluation"
        )
    evaluated = tags.get(TRAINING_RUN_TAG)
    if training_run_id and evaluated and evaluated != training_run_id:
        raise EvaluationRunError(
            f"evaluation run {run_id} evaluated training run {evaluated}, the candidate "
            f"is training run {training_run_id}: {MAKE_IT}"
        )
    diff = differences(file_metrics, run.data.metrics)
    if diff:
        shown = "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise EvaluationRunError(
            f"{source} disagrees with its evaluation run {run_id} on {len(diff)} "
            f"metric(s): {shown}. The gate refuses to choose; {MAKE_IT}"
        )
    return {**file_metrics, "systems": systems_from_run(run.data.metrics), RUN_ID_KEY: str(run_id)}
