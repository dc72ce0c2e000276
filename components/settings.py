"""Where runtime state lives and which services to talk to, picked from environment variables.

The embedded default keeps everything under one git-ignored folder (``.regionops/``):
MLflow's SQLite database and artifacts, Prefect's home, the DVC local remote. Setting
``REGIONOPS_HOME`` moves all of it (the tests point it at a temp dir); setting
``MLFLOW_TRACKING_URI`` / ``PREFECT_API_URL`` points at shared servers instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# DESIGN §8: every tool's telemetry is off. MLflow ignores DO_NOT_TRACK=1, hence "true".
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


@dataclass(frozen=True)
class Settings:
    home: Path
    tracking_uri: str
    artifact_root: Path
    prefect_home: Path
    dvc_remote: str  # a folder (embedded default) or an s3:// URL

    @property
    def uses_embedded_mlflow(self) -> bool:
        return self.tracking_uri.startswith("sqlite:")


def get_settings() -> Settings:
    home = Path(os.environ.get("REGIONOPS_HOME", ".regionops")).resolve()
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
    if tracking.startswith("file:") or (":" not in tracking.split("/")[0] and not tracking.startswith("sqlite")):
        # MLflow's plain-folder store now raises (DESIGN §8): refuse it with a clear message.
        raise ValueError(f"MLFLOW_TRACKING_URI={tracking!r}: use an sqlite:/// or http(s):// URI")
    return Settings(
        home=home,
        tracking_uri=tracking,
        artifact_root=Path(os.environ.get("REGIONOPS_ARTIFACT_ROOT", home / "mlartifacts")),
        prefect_home=Path(os.environ.get("PREFECT_HOME", home / "prefect")),
        dvc_remote=os.environ.get("REGIONOPS_DVC_REMOTE", str(home / "dvc-remote")),
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
    # The temporary Prefect server needs 7-15 s to start on this class of machine (DESIGN §8).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_API_HOST", "127.0.0.1")
    return settings
