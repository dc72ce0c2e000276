"""The landing watcher: a short flow on an interval schedule that starts ``retrain`` when new files land.

It only looks (hashes against the ledger) and starts the retrain deployment; ``retrain``
does the taking in. The retrain run's idempotency key is the hash of the pending files'
hashes, so a watcher that fires twice before the retrain runs still starts it once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.deployments import run_deployment

from flows.tasks import pending_landing

RETRAIN_DEPLOYMENT = "retrain/retrain"


@flow(name="landing-watch")
def watch_landing(
    project_dir: str = ".",
    params_file: str = "params.yaml",
    retrain_deployment: str = RETRAIN_DEPLOYMENT,
) -> dict:
    logger = get_run_logger()
    root = str(Path(project_dir).resolve())
    pending = pending_landing(root, params_file)
    if not pending:
        logger.info("landing folder: nothing new")
        return {"pending": [], "retrain_flow_run_id": None}
    key = hashlib.sha256("".join(p["sha256"] for p in pending).encode()).hexdigest()[:32]
    logger.info(
        "landing folder: %d new file(s): %s", len(pending), ", ".join(p["name"] for p in pending)
    )
    run = run_deployment(
        retrain_deployment,
        parameters={"project_dir": root, "params_file": params_file},
        idempotency_key=f"landing-{key}",
        timeout=0,
        as_subflow=False,
    )
    logger.info("started %s: flow run %s", retrain_deployment, run.id)
    return {"pending": pending, "retrain_flow_run_id": str(run.id)}
