"""The full regionops pipeline as a Prefect flow: DVC stages in order, then gate and register.

Orchestration only: every task calls a DVC stage (whose cmd is the regionops CLI) or a
``components`` function. Run it with ``python -m flows.pipeline`` (``make run``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from components.config import ConfigError, load_params
from flows import SETTINGS
from flows.events import emit_kept_champion
from flows.guard import training_slot
from flows.report import final_state, publish
from flows.stages import evaluate, prepare, promote, train
from flows.tasks import push_data, record_version, registration_links


def run_chain(root: Path, params_file: str, parent: str) -> dict:
    """prepare -> train -> evaluate -> promote -> push; the caller holds the training slot.

    One push at the end: the model, index, reader and eval outputs reach the DVC remote in
    the run that made them (a push after ``prepare`` only sent them one run late).
    """
    logger = get_run_logger()
    stages = prepare(str(root), None, parent)
    stages += train(str(root), parent, params_file)
    stages += evaluate(str(root), parent)
    outcome = promote(str(root), params_file, parent)
    if outcome.get("status") in (
        "promoted",
        "challenger",
    ):  # a new version: `regionops reproduce` needs its record
        record_version(str(root), params_file, outcome)
    pushed = push_data(str(root), str(SETTINGS.dvc_remote))
    if not any(s["ran"] for s in stages) and outcome.get("status") == "unchanged":
        logger.info(
            "Nothing changed: every DVC stage was up to date and version %s is already registered.",
            outcome.get("version"),
        )
    else:
        logger.info("Registration: %s (version %s)", outcome.get("status"), outcome.get("version"))
    gate = outcome.get("gate") or {}
    if outcome.get("status") == "challenger":
        logger.warning(
            "Gate failed, champion kept (v%s): %s",
            outcome.get("champion_before"),
            "; ".join(gate.get("reasons") or []),
        )
        if outcome.get(
            "champion_before"
        ):  # no champion: the run fails, and the failed-run automation tells
            emit_kept_champion(load_params(root / params_file).registry.model_name, outcome)
    links = registration_links(load_params(root / params_file).registry.model_name, outcome)
    return {"stages": stages, "registration": outcome, "links": links, "pushed": pushed}


@flow(name="pipeline", log_prints=True)
def pipeline(project_dir: str = ".", params_file: str = "params.yaml"):
    """prepare -> train -> evaluate -> promote, each a subflow over its DVC stages; one at a time."""
    root = Path(project_dir).resolve()
    params = load_params(
        root / params_file
    )  # fail at start-up on a bad parameter, before any stage runs
    parent = str(flow_run.get_id() or "")
    with training_slot(params.orchestrate.concurrency_limit):
        result = run_chain(root, params_file, parent)
    publish(
        "pipeline-summary",
        "regionops pipeline",
        result["stages"],
        result["registration"],
        links=result["links"],
        pushed=result["pushed"],
    )
    return final_state(result)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the regionops pipeline flow.")
    parser.add_argument("--project-dir", default=os.getcwd())
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    try:  # a bad parameter fails here, naming the key, before any server or stage starts
        load_params(Path(args.project_dir) / args.params)
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None
    state = pipeline(project_dir=args.project_dir, params_file=args.params, return_state=True)
    result = state.result(raise_on_failure=False)
    if state.is_failed():
        raise SystemExit(f"pipeline failed: {state.message}")
    registration = result["registration"]
    print(
        f"registration: {registration.get('status')} version {registration.get('version')} ({state.name})"
    )


if __name__ == "__main__":
    main()
