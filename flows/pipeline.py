"""The full regionops pipeline as a Prefect flow: DVC stages in order, then gate and register.

Orchestration only: every task calls a DVC stage (whose cmd is the regionops CLI) or a
``components`` function. Run it with ``python -m flows.pipeline`` (``make run``).
"""

from __future__ import annotations

# Telemetry off and state paths set before Prefect reads its settings at import.
from components.settings import configure_environment

_SETTINGS = configure_environment()

import argparse  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from components import versioning  # noqa: E402
from components.config import ConfigError, load_params  # noqa: E402

# DVC is the cache for stages (it skips what is current), so Prefect must not cache them too.
@task(name="dvc-stage", cache_policy=NONE, retries=0, timeout_seconds=3600)
def run_stage(stage: str, project_dir: str, parent_run_id: str) -> dict:
    logger = get_run_logger()
    outcome = versioning.repro_stage(stage, Path(project_dir), env={"REGIONOPS_PARENT_RUN_ID": parent_run_id})
    logger.info("stage %s: %s", stage, "ran" if outcome.ran else "up to date, skipped")
    return outcome.to_dict()


# Pushing to a remote is the flaky-I/O step: retry it.
@task(name="dvc-push", cache_policy=NONE, retries=2, retry_delay_seconds=5, timeout_seconds=900)
def push_data(project_dir: str, remote: str) -> str:
    versioning.ensure_remote(Path(project_dir), remote)
    summary = versioning.push(Path(project_dir))
    get_run_logger().info("dvc push: %s", summary)
    return summary


@task(name="gate-and-register", cache_policy=NONE, retries=1, retry_delay_seconds=5, timeout_seconds=900)
def gate_and_register(project_dir: str, params_file: str, parent_run_id: str) -> dict:
    from components.registry.promote import gate_and_register as promote

    root = Path(project_dir)
    params = load_params(root / params_file)
    lineage = {
        "parent_run_id": parent_run_id,
        "data_hash": versioning.data_hash(root) or "unknown",
    }
    return promote(params, root / "data/model", root / "data/index", root / "eval/metrics.json", lineage=lineage)


def _summary_markdown(stages: list[dict], outcome: dict) -> str:
    lines = ["# regionops pipeline", "", "| stage | result |", "|---|---|"]
    lines += [f"| {s['stage']} | {'ran' if s['ran'] else 'up to date (skipped)'} |" for s in stages]
    lines += ["", f"**Registration:** {outcome.get('status')} (version {outcome.get('version')})", ""]
    gate = outcome.get("gate") or {}
    if gate.get("rules"):
        lines += ["| rule | metric | value | bound | passed |", "|---|---|---|---|---|"]
        for rule in gate["rules"]:
            lines.append(
                f"| {rule['kind']} | {rule['metric']} | {rule.get('value')} | {rule.get('bound')} | {rule['passed']} |"
            )
    return "\n".join(lines)


@flow(name="pipeline", log_prints=True)
def pipeline(project_dir: str = ".", params_file: str = "params.yaml") -> dict:
    """generate -> validate -> train -> index -> evaluate (DVC), then dvc push, gate and register."""
    logger = get_run_logger()
    root = Path(project_dir).resolve()
    load_params(root / params_file)  # fail at start-up on a bad parameter, before any stage runs
    parent = str(flow_run.get_id() or "")
    stages = [run_stage(stage, str(root), parent) for stage in versioning.stage_names(root)]
    push_data(str(root), str(_SETTINGS.dvc_remote))
    outcome = gate_and_register(str(root), params_file, parent)
    if not any(s["ran"] for s in stages) and outcome.get("status") == "unchanged":
        logger.info("Nothing changed: every DVC stage was up to date and version %s is already registered.",
                    outcome.get("version"))
    else:
        logger.info("Registration: %s (version %s)", outcome.get("status"), outcome.get("version"))
    create_markdown_artifact(key="pipeline-summary", markdown=_summary_markdown(stages, outcome),
                             description="stages run or skipped, and the gate decision")
    return {"stages": stages, "registration": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the regionops pipeline flow.")
    parser.add_argument("--project-dir", default=os.getcwd())
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    try:  # a bad parameter fails here, naming the key, before any server or stage starts
        load_params(Path(args.project_dir) / args.params)
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None
    result = pipeline(project_dir=args.project_dir, params_file=args.params)
    print(f"registration: {result['registration'].get('status')} version {result['registration'].get('version')}")


if __name__ == "__main__":
    main()
