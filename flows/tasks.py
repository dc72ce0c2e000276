"""Prefect tasks shared by the flows: each runs one DVC stage or calls one component function."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from components import versioning
from components.config import load_params


# DVC is the cache for stages (it skips what is current), so Prefect must not cache them too.
@task(name="dvc-stage", task_run_name="stage-{stage}", cache_policy=NONE, retries=0, timeout_seconds=3600)
def run_stage(stage: str, project_dir: str, parent_run_id: str) -> dict:
    outcome = versioning.repro_stage(stage, Path(project_dir), env={"REGIONOPS_PARENT_RUN_ID": parent_run_id})
    get_run_logger().info("stage %s: %s", stage, "ran" if outcome.ran else "up to date, skipped")
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
    from components.data.corpus import load_corpus
    from components.registry.rescore import gate_and_register_rescored

    root = Path(project_dir)
    params = load_params(root / params_file)
    lineage = {"parent_run_id": parent_run_id, "data_hash": versioning.data_hash(root) or "unknown"}
    accepted = root / "data/validation/accepted.json"
    corpus = load_corpus(root / params.data.corpus_dir, accepted if accepted.exists() else None)
    # The champion is re-scored on this candidate's eval set inside the same task, then gated against.
    return gate_and_register_rescored(params, corpus, root / "data/model", root / "data/index",
                                      root / "eval/metrics.json", lineage=lineage)


@task(name="log-validation", cache_policy=NONE, retries=2, retry_delay_seconds=5, timeout_seconds=300)
def log_validation(project_dir: str) -> dict:
    from components.tracking import log_validation_report

    root = Path(project_dir)
    return log_validation_report(root / "data/model", root / "data/validation")
