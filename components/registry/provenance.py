"""Record what a retrain was trained on: which landing files, which DVC hash, which flow run.

Tags go on the candidate's MLflow run (a reviewer sees them next to the metrics) and on the
model version it produced; the full intake (every file, its sha256, accepted or quarantined
with the reason) is logged as ``retrain/intake.json``.
"""

from __future__ import annotations

from typing import Any

from components.registry.client import registry_client

TAG_PREFIX = "retrain."
_MAX_TAG = 4900  # MLflow caps model-version tag values at 5000 characters


def provenance_tags(
    intake: dict[str, Any], landed_md5: str | None, flow_run_id: str | None
) -> dict[str, str]:
    new = intake.get("new") or []
    accepted = [e for e in new if e.get("status") == "accepted"]
    quarantined = [e for e in new if e.get("status") == "quarantined"]
    return {
        f"{TAG_PREFIX}landed_md5": landed_md5 or "none",
        f"{TAG_PREFIX}files": ", ".join(f"{e['name']}@{e['sha256'][:12]}" for e in accepted)[
            :_MAX_TAG
        ]
        or "none",
        f"{TAG_PREFIX}quarantined": ", ".join(
            f"{e['name']} ({e.get('reason')})" for e in quarantined
        )[:_MAX_TAG]
        or "none",
        f"{TAG_PREFIX}duplicates_skipped": str(len(intake.get("duplicates") or [])),
        f"{TAG_PREFIX}flow_run_id": flow_run_id or "none",
    }


def log_retrain_provenance(
    run_id: str,
    model_name: str,
    version: str | None,
    intake: dict[str, Any],
    landed_md5: str | None,
    flow_run_id: str | None,
) -> dict[str, str]:
    """Tag the run (and the model version, when one was registered) with the retrain's provenance."""
    client = registry_client()
    tags = provenance_tags(intake, landed_md5, flow_run_id)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
        if version:
            client.set_model_version_tag(model_name, str(version), key, value)
    client.log_dict(
        run_id,
        {"intake": intake, "landed_md5": landed_md5, "flow_run_id": flow_run_id},
        "retrain/intake.json",
    )
    return tags
