"""The audit trail of alias moves: one JSON event per move in the registered model's tags.

Each event is ``audit.<seq>`` = {when, who, action, alias, from_version, to_version, reason}
(plus ``forced`` for a rollback past a failed gate). ``record_move`` must be called under
``registry_lock``: it moves the alias, then re-reads the trail and takes the next sequence
number, so two writers serialised on the registry never share a number and each event's
``from_version`` is the alias holder the previous event left.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

AUDIT_TAG = "audit."
CHAMPION = "champion"


class AuditError(RuntimeError):
    """The trail moved under a writer that held the registry lock: something bypassed the lock."""


def events_from_tags(tags: dict[str, str]) -> list[dict[str, Any]]:
    """The events of a registered model's tags, oldest first."""
    events = []
    for key, value in tags.items():
        if key.startswith(AUDIT_TAG):
            event = json.loads(value)
            event["seq"] = int(key[len(AUDIT_TAG):])
            events.append(event)
    return sorted(events, key=lambda e: e["seq"])


def read_events(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    try:
        return events_from_tags(client.get_registered_model(name).tags)
    except MlflowException:
        return []  # no such model yet


def who() -> str:
    """The OS user (getpass reads LOGNAME/USER first, so a CI job can name itself)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # containers without a passwd entry
        return "unknown"


def last_move(events: list[dict[str, Any]], alias: str) -> dict[str, Any] | None:
    moves = [e for e in events if e.get("alias") == alias]
    return moves[-1] if moves else None


def record_move(client: MlflowClient, name: str, *, alias: str, action: str, from_version: str | None,
                to_version: str, reason: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Move ``alias`` to ``to_version`` and append the audit event (the caller holds the registry lock).

    The sequence number is taken from the trail re-read here, inside the lock; writing an
    existing ``audit.<seq>`` would overwrite history, so the tag is checked absent first.
    """
    client.set_registered_model_alias(name, alias, to_version)
    events = read_events(client, name)
    seq = (events[-1]["seq"] + 1) if events else 1
    event = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "who": who(),
        "action": action,
        "alias": alias,
        "from_version": from_version,
        "to_version": to_version,
        "reason": reason,
        **(extra or {}),
    }
    key = f"{AUDIT_TAG}{seq:06d}"
    if key in client.get_registered_model(name).tags:
        raise AuditError(f"audit event {key} of {name!r} appeared while the registry lock was held")
    client.set_registered_model_tag(name, key, json.dumps(event, sort_keys=True))
    return {**event, "seq": seq}


def champion_lineage(events: list[dict[str, Any]]) -> list[str]:
    """The stack of champions the trail implies: promotions push, a rollback pops back to its target."""
    stack: list[str] = []
    for event in events:
        if event.get("alias") != CHAMPION:
            continue
        target = str(event["to_version"])
        if event["action"] == "rollback" and target in stack:
            del stack[len(stack) - stack[::-1].index(target):]
        else:
            stack.append(target)
    return stack
