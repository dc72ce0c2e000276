"""The MLflow client for the project's tracking/registry URI, and a promotion lock."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from components.settings import get_settings
from components.tracking import ensure_experiment  # noqa: F401  (re-exported for registry callers)


def registry_client() -> MlflowClient:
    """An MlflowClient on the project's tracking URI (sqlite in the embedded default)."""
    uri = get_settings().tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def promotion_lock(name: str) -> Iterator[None]:
    """Serialise promotions of one model on this machine.

    MLflow has no compare-and-set on aliases, so two promotions racing could each read the
    same champion and both move it. An exclusive flock under $REGIONOPS_HOME makes the
    read-gate-register-move sequence atomic for every process sharing that home (the
    embedded default). With a shared tracking server across machines, run promotions from
    one Prefect work queue with concurrency 1 instead.
    """
    lock_dir = get_settings().home / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = Path(lock_dir) / f"promote-{name}.lock"
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
