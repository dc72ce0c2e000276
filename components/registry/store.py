"""Reads from the MLflow registry and tracking store: versions, aliases, recorded metrics, bundles.

Nothing here moves an alias or writes a tag (``audit.record_move`` and ``promote`` do): these are
the lookups the gate, the promotion, the re-score and the rollback share.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import yaml
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from components.config import Params
from components.registry.client import registry_client
from components.registry.evaluation_run import candidate_evaluation
from components.registry.gate import GATED_SYSTEM, ChampionReference, Rescore
from components.serving import checkpoint

CHAMPION = "champion"
CHALLENGER = "challenger"
HASH_TAG = "regionops.content_hash"
METRIC_TAG = "metric."  # version tags metric.<name> = the gated system's metrics
GATE_CHAMPION_TAG = (
    "gate.champion_version"  # the champion the gate compared against ("none": no champion)
)


def version_number(version: ModelVersion | None) -> str | None:
    """A version's number as a string (MLflow returns int or str depending on the call)."""
    return None if version is None else str(version.version)


def champion_version(client: MlflowClient, name: str, alias: str = CHAMPION) -> ModelVersion | None:
    """The version holding ``alias`` (default: champion), or None."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None  # no such model or no such alias yet


def version_metrics(client: MlflowClient, version: ModelVersion) -> dict[str, Any]:
    """A version's gated metrics, rebuilt in metrics.json shape from its ``metric.*`` tags."""
    tags = client.get_model_version(version.name, version.version).tags
    values = {k[len(METRIC_TAG) :]: float(v) for k, v in tags.items() if k.startswith(METRIC_TAG)}
    return {
        "systems": {GATED_SYSTEM: values},
        "dataset_id": tags.get("lineage.eval_dataset_id", "unknown"),
    }


def champion_metrics(client: MlflowClient, name: str) -> dict | None:
    """The current champion's recorded metrics in metrics.json shape, or None when there is no champion."""
    version = champion_version(client, name)
    return None if version is None else version_metrics(client, version)


def champion_reference(
    client: MlflowClient, champion: ModelVersion | None, rescore: Rescore | None = None
) -> ChampionReference | None:
    """What the gate compares ``champion`` by: its recorded metrics, plus ``rescore`` when that
    re-scored this very version; None when there is no champion."""
    if champion is None:
        return None
    version = version_number(champion)
    applies = rescore is not None and rescore.version == version
    return ChampionReference(
        version=version,
        recorded=version_metrics(client, champion),
        rescored=rescore.metrics if applies else None,
        notes=tuple(rescore.notes) if applies else (),
    )


def versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    try:
        return list(client.search_model_versions(f"name='{name}'"))
    except MlflowException:
        return []


def find_by_hash(client: MlflowClient, name: str, digest: str) -> ModelVersion | None:
    """The oldest version holding this content hash (the candidate registered before), or None."""
    matches = [v for v in versions(client, name) if v.tags.get(HASH_TAG) == digest]
    return min(matches, key=lambda v: int(v.version)) if matches else None


def aliases_of(client: MlflowClient, name: str, version: str) -> list[str]:
    return list(client.get_model_version(name, version).aliases or [])


def read_train_run(model_dir: Path) -> dict[str, Any]:
    """The candidate's ``train_run.json`` (its training run id), {} when it has none."""
    path = Path(model_dir) / "train_run.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_candidate(
    client: MlflowClient, metrics_path: Path, model_dir: Path | None = None
) -> dict[str, Any]:
    """The candidate's metrics from its MLflow evaluation run, which ``metrics_path`` must agree with.

    Raises ``EvaluationRunError`` when metrics.json names no run, the run is missing or is
    another candidate's, or the two disagree on any metric.
    """
    metrics_path = Path(metrics_path)
    if not metrics_path.is_file():
        raise FileNotFoundError(
            f"cannot gate: {metrics_path} does not exist (`dvc repro evaluate` writes it)"
        )
    training_run = read_train_run(Path(model_dir)).get("run_id") if model_dir is not None else None
    return candidate_evaluation(
        client, json.loads(metrics_path.read_text()), training_run, str(metrics_path)
    )


def download_champion(params: Params, dest: Path, alias: str = CHAMPION) -> dict[str, Any] | None:
    """Fetch the champion's bundled model, index and params, so it can be re-scored on today's eval set.

    Returns None when there is no champion. The evaluation stage scores these folders
    exactly as it scores the candidate (``rescore.rescore_champion``), so that the gate never
    compares old numbers with new ones.
    """
    client = registry_client()
    version = champion_version(client, params.registry.model_name, alias)
    if version is None:
        return None
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{params.registry.model_name}/{version_number(version)}",
            dst_path=str(dest),
        )
    )
    spec = yaml.safe_load((local / "MLmodel").read_text())
    saved = spec["flavors"]["python_function"]["artifacts"]
    path = lambda key: local / saved[key]["path"]
    from components.reader.io import bundled_reader_dir

    return {
        "version": version_number(version),
        "model_dir": path(checkpoint.ARTIFACT_MODEL),
        "reader_dir": bundled_reader_dir(path(checkpoint.ARTIFACT_MODEL)),
        "index_dir": path(checkpoint.ARTIFACT_INDEX),
        "params_file": path(checkpoint.ARTIFACT_PARAMS),
    }
