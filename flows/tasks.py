"""Prefect tasks shared by the flows: each runs one DVC stage or calls one component function."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from components import versioning
from components.config import load_params
from components.paths import ProjectPaths
from flows.stage_output import StageOutputForwarder


# DVC is the cache for stages (it skips what is current), so Prefect must not cache them too.
# Its output goes to the run log line by line (training progress also as a progress artifact). On the
# timeout, a cancellation or any error, repro_stage stops the stage's whole process group: no orphan
# keeps DVC's lock.
@task(
    name="dvc-stage",
    task_run_name="stage-{stage}",
    cache_policy=NONE,
    retries=0,
    timeout_seconds=3600,
)
def run_stage(stage: str, project_dir: str, parent_run_id: str) -> dict:
    logger = get_run_logger()
    forward = StageOutputForwarder(stage, logger)
    started = time.monotonic()
    outcome = versioning.repro_stage(
        stage, Path(project_dir), env={"REGIONOPS_PARENT_RUN_ID": parent_run_id}, on_line=forward
    )
    logger.info("stage %s: %s", stage, "ran" if outcome.ran else "up to date, skipped")
    return {**outcome.to_dict(), "seconds": round(time.monotonic() - started, 1)}


# Pushing to a remote is the flaky-I/O step: retry it.
@task(name="dvc-push", cache_policy=NONE, retries=2, retry_delay_seconds=5, timeout_seconds=900)
def push_data(project_dir: str, remote: str) -> str:
    versioning.ensure_remote(Path(project_dir), remote)
    summary = versioning.push(Path(project_dir))
    get_run_logger().info("dvc push: %s", summary)
    return summary


@task(
    name="gate-and-register",
    cache_policy=NONE,
    retries=1,
    retry_delay_seconds=5,
    timeout_seconds=900,
)
def gate_and_register(project_dir: str, params_file: str, parent_run_id: str) -> dict:
    from components.data.corpus import load_corpus
    from components.registry.rescore import gate_and_register_rescored

    root = Path(project_dir)
    paths = ProjectPaths.from_root(root)
    params = load_params(root / params_file)
    lineage = {"parent_run_id": parent_run_id, "data_hash": versioning.data_hash(root) or "unknown"}
    accepted = paths.accepted
    corpus = load_corpus(root / params.data.corpus_dir, accepted if accepted.exists() else None)
    # The champion is re-scored on this candidate's eval set inside the same task, then gated against.
    # The reader trained by the train-reader stage is bundled: the champion answers with it.
    return gate_and_register_rescored(
        params,
        corpus,
        paths.model,
        paths.index,
        paths.metrics,
        lineage=lineage,
        reader_dir=paths.reader_export,
    )


# MLflow over the network in the shared profile: retry. Logging the same files twice is harmless.
@task(
    name="record-version", cache_policy=NONE, retries=2, retry_delay_seconds=5, timeout_seconds=300
)
def record_version(project_dir: str, params_file: str, registration: dict) -> dict:
    """The version's reproduction record: dvc.lock, dvc.yaml, params.yaml and the git state (components.reproduce)."""
    from components.registry.client import registry_client
    from components.reproduce import record_version as attach_record

    params = load_params(Path(project_dir) / params_file)
    record = attach_record(
        registry_client(),
        params.registry.model_name,
        registration["version"],
        registration["run_id"],
        Path(project_dir),
    )
    get_run_logger().info("version %s: reproduction record %s", registration["version"], record)
    return record


# Reads MLflow (over the network in the shared profile): retry.
@task(
    name="registration-links",
    cache_policy=NONE,
    retries=2,
    retry_delay_seconds=5,
    timeout_seconds=120,
)
def registration_links(model_name: str, outcome: dict) -> dict:
    from components.run_links import lookup_registration_links

    return lookup_registration_links(model_name, outcome)


@task(
    name="log-validation", cache_policy=NONE, retries=2, retry_delay_seconds=5, timeout_seconds=300
)
def log_validation(project_dir: str) -> dict:
    from components.tracking import log_validation_report

    paths = ProjectPaths.from_root(project_dir)
    return log_validation_report(paths.model, paths.validation)


# --- landing folder (retrain) -----------------------------------------------------------------


@task(
    name="ensure-landed", cache_policy=NONE, retries=2, retry_delay_seconds=5, timeout_seconds=300
)
def ensure_landed_tracked(project_dir: str) -> str:
    """The generate stage depends on ``landed/``: create it (empty on a fresh project) and version it with DVC.

    Always ``dvc add``: documents taken in by hand (``regionops landing ingest``) get versioned too;
    on unchanged data DVC only re-hashes.
    """
    from components.data.landing import LANDED_DIR, ensure_landed

    root = Path(project_dir)
    ensure_landed(root / LANDED_DIR)
    return versioning.add(root, LANDED_DIR)


# Reads a folder that changes under it: never cached. Local-disk I/O: one retry for a transient error.
@task(
    name="ingest-landing", cache_policy=NONE, retries=1, retry_delay_seconds=5, timeout_seconds=1800
)
def ingest_landing_files(project_dir: str, params_file: str) -> dict:
    from components.data.landing import LANDED_DIR, ingest_landing

    root = Path(project_dir)
    params = load_params(root / params_file)
    intake = ingest_landing(root / params.orchestrate.landing_dir, root / LANDED_DIR, params)
    logger = get_run_logger()
    for entry in intake["new"]:
        logger.info("landing: %s %s %s", entry["name"], entry["status"], entry.get("reason", ""))
    for entry in intake["duplicates"]:
        logger.info(
            "landing: %s already taken in (same content as %s), skipped",
            entry["name"],
            entry["first_seen_as"],
        )
    return intake


@task(
    name="dvc-add-landed", cache_policy=NONE, retries=2, retry_delay_seconds=5, timeout_seconds=900
)
def version_landed(project_dir: str) -> str:
    from components.data.landing import LANDED_DIR

    md5 = versioning.add(Path(project_dir), LANDED_DIR)
    get_run_logger().info("dvc add %s: %s", LANDED_DIR, md5)
    return md5


@task(
    name="pending-landing", cache_policy=NONE, retries=1, retry_delay_seconds=5, timeout_seconds=300
)
def pending_landing(project_dir: str, params_file: str) -> list[dict]:
    from components.data.landing import LANDED_DIR, pending_files

    root = Path(project_dir)
    params = load_params(root / params_file)
    return pending_files(root / params.orchestrate.landing_dir, root / LANDED_DIR)


# MLflow over the network in the shared profile: retry.
@task(
    name="record-provenance",
    cache_policy=NONE,
    retries=2,
    retry_delay_seconds=5,
    timeout_seconds=300,
)
def record_provenance(
    project_dir: str,
    params_file: str,
    registration: dict,
    intake: dict,
    landed_md5: str,
    flow_run_id: str,
) -> dict:
    from components.registry.provenance import log_retrain_provenance

    params = load_params(Path(project_dir) / params_file)
    return log_retrain_provenance(
        registration["run_id"],
        params.registry.model_name,
        registration.get("version"),
        intake,
        landed_md5,
        flow_run_id,
    )


@task(name="dvc-status", task_run_name="status-{stage}", cache_policy=NONE, timeout_seconds=300)
def stage_current(stage: str, project_dir: str) -> bool:
    return versioning.stage_is_current(stage, Path(project_dir))


@task(
    name="dvc-commit",
    task_run_name="commit-{stage}",
    cache_policy=NONE,
    retries=1,
    retry_delay_seconds=5,
    timeout_seconds=600,
)
def commit_stage(stage: str, project_dir: str) -> None:
    versioning.commit(Path(project_dir), stage)
    get_run_logger().info("stage %s: ran (sharded), outputs committed to DVC", stage)
