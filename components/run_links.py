"""Links into the MLflow UI for a registration: its run and its model version.

The embedded profile keeps MLflow in SQLite, browsed with ``make ui`` on 127.0.0.1:5000; a
tracking server (production profile) serves its UI at the tracking URI itself.
"""

from __future__ import annotations

from urllib.parse import quote

EMBEDDED_UI = "http://127.0.0.1:5000"  # `make ui`


def mlflow_ui_base(tracking_uri: str) -> str:
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return EMBEDDED_UI


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    return f"{mlflow_ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}"


def model_version_url(tracking_uri: str, model_name: str, version: str) -> str:
    return (
        f"{mlflow_ui_base(tracking_uri)}/#/models/{quote(model_name, safe='')}/versions/{version}"
    )


def registration_links(
    tracking_uri: str, model_name: str, outcome: dict, experiment_id: str | None
) -> dict[str, str]:
    """{"run": url, "model_version": url} for what is known of a registration outcome."""
    links = {}
    if outcome.get("run_id") and experiment_id:
        links["run"] = run_url(tracking_uri, experiment_id, outcome["run_id"])
    if outcome.get("version"):
        links["model_version"] = model_version_url(
            tracking_uri, model_name, str(outcome["version"])
        )
    return links


def lookup_registration_links(model_name: str, outcome: dict) -> dict[str, str]:
    """``registration_links`` with the run's experiment read from the project's tracking store."""
    from mlflow.exceptions import MlflowException

    from components.registry.client import registry_client
    from components.settings import get_settings

    experiment_id = None
    if outcome.get("run_id"):
        try:
            experiment_id = registry_client().get_run(outcome["run_id"]).info.experiment_id
        except MlflowException:
            experiment_id = None  # the run is gone from this store: link the model version only
    return registration_links(get_settings().tracking_uri, model_name, outcome, experiment_id)
