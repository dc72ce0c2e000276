"""The project's own events: their names, the resources they concern and their payloads (no Prefect here).

``flows/events.py`` sends them to Prefect (``emit_event``), where a deployment trigger or
an automation reacts: files that arrive in the landing folder start ``retrain``; a gate that
keeps the champion sends a notification. Anything else that can POST an event to the
Prefect API (an S3 bucket notification relayed by a small function, see infra/README.md)
can send the same event with the same payload.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

FILES_ARRIVED = "regionops.landing.files-arrived"
KEPT_CHAMPION = "regionops.model.kept-champion"
# What an arrival reports of each new file: enough for the retrain's provenance, nothing bulky.
_ENTRY_KEYS = ("name", "sha256", "kind", "status", "reason", "stored_as", "received_at", "lines")


def landing_resource_id(project_dir: Path) -> str:
    """One id per project checkout: a retrain trigger on one project ignores another's arrivals."""
    digest = hashlib.sha256(str(Path(project_dir).resolve()).encode()).hexdigest()[:16]
    return f"regionops.landing.{digest}"


def landing_resource(project_dir: Path) -> dict[str, str]:
    return {
        "prefect.resource.id": landing_resource_id(project_dir),
        "prefect.resource.name": str(Path(project_dir).resolve()),
    }


def model_resource(model_name: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"regionops.model.{model_name}",
        "prefect.resource.name": model_name,
    }


def arrival_payload(intake: dict[str, Any]) -> dict[str, Any]:
    """The file counts of an intake (``ingest_landing``'s result) and its new files."""
    return {
        "accepted": int(intake.get("accepted", 0)),
        "quarantined": int(intake.get("quarantined", 0)),
        "duplicates": len(intake.get("duplicates") or []),
        "new": [{k: e[k] for k in _ENTRY_KEYS if k in e} for e in intake.get("new") or []],
    }


def merge_reported_arrivals(
    intake: dict[str, Any], reported: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """``intake`` plus the new files an arrival event reported, taken in before this run (by hand).

    A retrain started by ``regionops landing ingest`` finds the landing folder already taken
    in; the event's list keeps those files in its provenance. Entries are matched by sha256.
    """
    if not reported:
        return intake
    seen = {e["sha256"] for e in intake.get("new") or []}
    extra = [
        dict(e, reported_by_event=True)
        for e in reported
        if e.get("sha256") and e["sha256"] not in seen
    ]
    if not extra:
        return intake
    new = [*(intake.get("new") or []), *extra]
    accepted = sum(e.get("status") == "accepted" for e in new)
    return {
        **intake,
        "new": new,
        "accepted": accepted,
        "quarantined": sum(e.get("status") == "quarantined" for e in new),
        "changed": accepted > 0,
    }


def kept_champion_payload(outcome: dict[str, Any]) -> dict[str, Any]:
    gate = outcome.get("gate") or {}
    return {
        "candidate_version": outcome.get("version"),
        "champion_version": outcome.get("champion_before"),
        "reasons": list(gate.get("reasons") or []),
        "run_id": outcome.get("run_id"),
    }
