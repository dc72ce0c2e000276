"""Where runtime state lives and which services to talk to, picked from environment variables.

Two profiles, chosen by ``REGIONOPS_PROFILE`` with no code change:

* ``embedded`` (default): everything under one git-ignored folder (``.regionops/``):
  MLflow's SQLite database and artifacts, Prefect's home, the DVC local remote. Setting
  ``REGIONOPS_HOME`` moves all of it (the tests point it at a temp dir); setting
  ``MLFLOW_TRACKING_URI`` / ``PREFECT_API_URL`` still points at shared servers.
* ``production``: shared services (``infra/``): an HTTP MLflow tracking server, a
  Prefect server, an S3 DVC remote. Every one of them must be named, or start-up fails
  saying which variable is missing.

``ENV_VARS`` lists every variable read here; ``infra/.env.example`` must list them all
(a test checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# docs/design.md §8: every tool's telemetry is off. MLflow ignores DO_NOT_TRACK=1, hence "true".
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

PROFILES = ("embedded", "production")

# Every variable get_settings() reads, with what it means (README "Scaling out" repeats this).
ENV_VARS = {
    "REGIONOPS_PROFILE": "embedded (default) or production",
    "REGIONOPS_HOME": "local state: checkpoints, locks, Prefect home; in embedded also MLflow and the DVC remote",
    "MLFLOW_TRACKING_URI": "MLflow tracking + registry; production: http(s)://host:5000",
    "REGIONOPS_ARTIFACT_ROOT": "embedded only: where MLflow artifacts go (production: the server's S3)",
    "PREFECT_HOME": "Prefect's local home",
    "PREFECT_API_URL": "Prefect server API; production: http(s)://host:4200/api",
    "REGIONOPS_DVC_REMOTE": "DVC remote: a folder (embedded) or s3://bucket/prefix (production)",
    "AWS_ENDPOINT_URL": "S3 endpoint for a non-AWS store (MinIO); unset for AWS itself",
    "REGIONOPS_REGISTRY_LOCK_URL": "PostgreSQL database whose advisory lock serialises promotions and "
    "rollbacks across machines; production: postgresql://user@host/db "
    "(the password from PGPASSWORD)",
    "REGIONOPS_NOTIFY_WEBHOOK_URL": "optional: `regionops deploy` makes Prefect POST failed runs and kept champions here",
}


class SettingsError(ValueError):
    """The environment names an unknown profile or leaves a production service unset."""


@dataclass(frozen=True)
class Settings:
    profile: str
    home: Path
    tracking_uri: str
    artifact_root: Path
    prefect_home: Path
    prefect_api_url: str | None  # None: Prefect's temporary local server
    dvc_remote: str  # a folder (embedded default) or an s3:// URL
    s3_endpoint_url: str | None = None
    registry_lock_url: str | None = None  # None: the lock lives next to the sqlite registry
    notify_webhook_url: str | None = (
        None  # a secret in Slack/Teams URLs: environment only, never params.yaml
    )

    @property
    def uses_embedded_mlflow(self) -> bool:
        return self.tracking_uri.startswith("sqlite:")

    @property
    def artifact_location(self) -> str | None:
        """Where new experiments keep artifacts: a local folder, or the tracking server's own store."""
        return self.artifact_root.as_uri() if self.uses_embedded_mlflow else None


def _env(name: str) -> str | None:
    if name not in ENV_VARS:  # keeps ENV_VARS, and so .env.example, complete
        raise KeyError(f"{name} is read but not listed in ENV_VARS")
    return os.environ.get(name) or None


def _check_production(
    tracking: str, prefect_api: str | None, dvc_remote: str | None, lock_url: str | None
) -> None:
    problems = []
    if not tracking.startswith(("http://", "https://")):
        problems.append(
            f"MLFLOW_TRACKING_URI must be an http(s):// tracking server (got {tracking!r})"
        )
    if not (prefect_api or "").startswith(("http://", "https://")):
        problems.append(
            f"PREFECT_API_URL must be an http(s):// Prefect server API (got {prefect_api!r})"
        )
    if not (dvc_remote or "").startswith("s3://"):
        problems.append(f"REGIONOPS_DVC_REMOTE must be an s3:// URL (got {dvc_remote!r})")
    if not (lock_url or "").startswith(("postgresql://", "postgres://")):
        # Pods on different machines share no file: promotions must wait on the database.
        problems.append(
            f"REGIONOPS_REGISTRY_LOCK_URL must be a postgresql:// URL (got {lock_url!r})"
        )
    if problems:
        raise SettingsError("REGIONOPS_PROFILE=production: " + "; ".join(problems))


def get_settings() -> Settings:
    profile = (_env("REGIONOPS_PROFILE") or "embedded").lower()
    if profile not in PROFILES:
        raise SettingsError(f"REGIONOPS_PROFILE={profile!r}: use one of {', '.join(PROFILES)}")
    home = Path(_env("REGIONOPS_HOME") or ".regionops").resolve()
    tracking = _env("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
    if tracking.startswith("file:") or (
        ":" not in tracking.split("/")[0] and not tracking.startswith("sqlite")
    ):
        # MLflow's plain-folder store now raises (docs/design.md §8): refuse it with a clear message.
        raise SettingsError(
            f"MLFLOW_TRACKING_URI={tracking!r}: use an sqlite:/// or http(s):// URI"
        )
    prefect_api = _env("PREFECT_API_URL")
    dvc_remote = _env("REGIONOPS_DVC_REMOTE")
    lock_url = _env("REGIONOPS_REGISTRY_LOCK_URL")
    if profile == "production":
        _check_production(tracking, prefect_api, dvc_remote, lock_url)
    return Settings(
        profile=profile,
        home=home,
        tracking_uri=tracking,
        artifact_root=Path(_env("REGIONOPS_ARTIFACT_ROOT") or home / "mlartifacts"),
        prefect_home=Path(_env("PREFECT_HOME") or home / "prefect"),
        prefect_api_url=prefect_api,
        dvc_remote=dvc_remote or str(home / "dvc-remote"),
        s3_endpoint_url=_env("AWS_ENDPOINT_URL"),
        registry_lock_url=lock_url,
        notify_webhook_url=_env("REGIONOPS_NOTIFY_WEBHOOK_URL"),
    )


def configure_environment() -> Settings:
    """Turn telemetry off and point MLflow/Prefect at the project's state; idempotent."""
    for key, value in TELEMETRY_OFF.items():
        os.environ[key] = value
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    # The registry lives in the tracking store. mlflow.set_registry_uri() exports this variable to
    # child processes, so a stale value inherited from a parent would send registrations elsewhere.
    os.environ["MLFLOW_REGISTRY_URI"] = settings.tracking_uri
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home))
    # The temporary Prefect server needs 7-15 s to start on this class of machine (docs/design.md §8).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_API_HOST", "127.0.0.1")
    return settings
