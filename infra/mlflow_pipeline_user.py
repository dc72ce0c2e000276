"""Create, or re-key, the MLflow basic-auth login that flow runs and training jobs use.

The pipeline gets its own non-admin login instead of the admin's: with ``default_permission
= READ`` it can read everything, and it manages the experiments and registered models it
creates (MLflow gives their creator MANAGE). Run with the admin login in
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (compose: the mlflow-users service;
Kubernetes: the mlflow-users Job) and the pipeline's in PIPELINE_MLFLOW_USERNAME /
PIPELINE_MLFLOW_PASSWORD. Idempotent: an existing login gets the password given now.
"""

from __future__ import annotations

import os
import sys

from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client


def ensure_pipeline_user(tracking_uri: str, username: str, password: str) -> str:
    client = get_app_client("basic-auth", tracking_uri=tracking_uri)
    try:
        client.create_user(username, password)
        return "created"
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    client.update_user_password(username, password)
    return "password updated"


def main() -> None:
    username = os.environ["PIPELINE_MLFLOW_USERNAME"]
    if username == os.environ.get("MLFLOW_TRACKING_USERNAME"):
        sys.exit(
            "PIPELINE_MLFLOW_USERNAME must not be the admin login: flow runs would hold admin rights"
        )
    outcome = ensure_pipeline_user(
        os.environ["MLFLOW_TRACKING_URI"], username, os.environ["PIPELINE_MLFLOW_PASSWORD"]
    )
    print(f"MLflow login {username!r}: {outcome}")


if __name__ == "__main__":
    main()
