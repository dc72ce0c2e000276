"""Retrain on new data: take in the landing folder, version it with DVC, rerun, gate, promote or keep.

Triggered by the landing watcher (``flows/watch.py``) when new files appear, and by the
retrain deployment's cron schedule. Idempotent: a file is taken in once by content hash,
DVC reruns only stale stages, and registration skips a candidate that is already a version.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from components.config import load_params
from components.events import merge_reported_arrivals
from flows.guard import training_slot
from flows.pipeline import run_chain
from flows.report import final_state, publish
from flows.tasks import (
    ensure_landed_tracked,
    ingest_landing_files,
    record_provenance,
    version_landed,
)


def _intake_lines(intake: dict, landed_md5: str) -> list[str]:
    lines = [
        f"**Landed data (DVC md5):** `{landed_md5}`",
        "",
        "| file | sha256 | result | reason |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {e['name']} | {e['sha256'][:12]} | {e['status']} | {e.get('reason', '')} |"
        for e in intake["new"]
    ]
    lines += [
        f"| {e['name']} | {e['sha256'][:12]} | duplicate, skipped | same content as {e['first_seen_as']} |"
        for e in intake["duplicates"]
    ]
    return lines + [""]


@flow(name="retrain", log_prints=True)
def retrain(
    project_dir: str = ".", params_file: str = "params.yaml", arrived: list[dict] | None = None
):
    """landing -> data contract (quarantine) -> dvc add -> affected stages -> gate vs champion -> promote or keep.

    ``arrived``: the new files a ``regionops.landing.files-arrived`` event reported (the
    deployment trigger passes them); files taken in before this run stay in its provenance.
    """
    logger = get_run_logger()
    root = Path(project_dir).resolve()
    params = load_params(root / params_file)
    parent = str(flow_run.get_id() or "")
    with training_slot(params.orchestrate.concurrency_limit):
        tracked_md5 = ensure_landed_tracked(str(root))
        intake = merge_reported_arrivals(ingest_landing_files(str(root), params_file), arrived)
        landed_md5 = version_landed(str(root)) if intake["new"] else tracked_md5
        if not intake["changed"]:
            logger.info(
                "No new accepted documents in the landing folder (%d new, %d duplicates): "
                "the stages rerun only if something else changed.",
                len(intake["new"]),
                len(intake["duplicates"]),
            )
        result = run_chain(root, params_file, parent)
        registration = result["registration"]
        if intake["new"] and registration.get("status") in (
            "promoted",
            "challenger",
        ):  # a new version came of it
            record_provenance(str(root), params_file, registration, intake, landed_md5, parent)
    result["intake"] = intake
    result["landed_md5"] = landed_md5
    publish(
        "retrain-summary",
        "regionops retrain",
        result["stages"],
        registration,
        _intake_lines(intake, landed_md5),
        links=result["links"],
        pushed=result["pushed"],
    )
    return final_state(result)


if __name__ == "__main__":
    retrain()
