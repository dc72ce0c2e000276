"""The full regionops pipeline as a Prefect flow: DVC stages in order, then gate and register.

Orchestration only: every task calls a DVC stage (whose cmd is the regionops CLI) or a
``components`` function. Run it with ``python -m flows.pipeline`` (``make run``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from components.config import ConfigError, load_params
from flows import SETTINGS
from flows.stages import evaluate, prepare, promote, train


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
    """prepare -> train -> evaluate -> promote, each a subflow over its DVC stages."""
    logger = get_run_logger()
    root = Path(project_dir).resolve()
    load_params(root / params_file)  # fail at start-up on a bad parameter, before any stage runs
    parent = str(flow_run.get_id() or "")
    stages = prepare(str(root), str(SETTINGS.dvc_remote), parent)
    stages += train(str(root), parent)
    stages += evaluate(str(root), parent)
    outcome = promote(str(root), params_file, parent)
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
