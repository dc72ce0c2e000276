"""The audit trail of alias moves (one JSON event per move in the registered model's tags), the
history that reads it back, and the rollback that moves ``champion`` back along it.

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

from components.config import Params
from components.registry.client import registry_client, registry_lock
from components.registry.errors import RegistryError
from components.registry.store import CHAMPION, champion_version, version_number

AUDIT_TAG = "audit."


class AuditError(RuntimeError):
    """The trail moved under a writer that held the registry lock: something bypassed the lock."""


def events_from_tags(tags: dict[str, str]) -> list[dict[str, Any]]:
    """The events of a registered model's tags, oldest first."""
    events = []
    for key, value in tags.items():
        if key.startswith(AUDIT_TAG):
            event = json.loads(value)
            event["seq"] = int(key[len(AUDIT_TAG) :])
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


def record_move(
    client: MlflowClient,
    name: str,
    *,
    alias: str,
    action: str,
    from_version: str | None,
    to_version: str,
    reason: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
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
            del stack[len(stack) - stack[::-1].index(target) :]
        else:
            stack.append(target)
    return stack


def history(params: Params) -> list[dict[str, Any]]:
    """Every alias move of the registered model, oldest first."""
    return read_events(registry_client(), params.registry.model_name)


def rollback(
    params: Params, to_version: str | None, reason: str, force: bool = False
) -> dict[str, Any]:
    """Move ``champion`` back to ``to_version`` (default: the champion before the current one).

    Only a version whose gate passed may serve: a version whose gate failed (or that has no
    gate record) is refused unless ``force``, and a forced rollback is recorded as an override
    (``forced``, the gate it overrode, who, when and why) in the audit trail.
    """
    if not reason or not reason.strip():
        raise RegistryError("a rollback needs a reason")
    name = params.registry.model_name
    client = registry_client()
    with registry_lock(name):
        current = champion_version(client, name)
        if current is None:
            raise RegistryError(f"model {name!r} has no champion to roll back")
        if to_version is None:
            stack = champion_lineage(read_events(client, name))
            if len(stack) < 2:
                raise RegistryError(
                    f"no earlier champion of {name!r} in the audit trail; pass --to VERSION"
                )
            to_version = stack[-2]
        to_version = str(to_version)
        try:
            target = client.get_model_version(name, to_version)
        except MlflowException:
            raise RegistryError(f"model {name!r} has no version {to_version}") from None
        if to_version == version_number(current):
            raise RegistryError(f"version {to_version} is already the champion")
        gate_passed = target.tags.get("gate.passed")
        extra: dict[str, Any] = {}
        if gate_passed != "true":
            why = (
                f"its gate failed ({target.tags.get('gate.reasons', '')[:300]})"
                if gate_passed == "false"
                else "it has no gate record"
            )
            if not force:
                raise RegistryError(
                    f"version {to_version} must not serve: {why}; pass --force to override "
                    "(the override is recorded in the audit trail)"
                )
            extra = {
                "forced": True,
                "overrode": f"gate.passed={gate_passed or 'missing'}: {why}"[:500],
            }
        event = record_move(
            client,
            name,
            alias=CHAMPION,
            action="rollback",
            from_version=version_number(current),
            to_version=to_version,
            reason=reason.strip(),
            extra=extra,
        )
        client.set_model_version_tag(
            name, version_number(current), "rolled_back", f"{event['when']} {reason.strip()}"[:4900]
        )
        if extra:
            client.set_model_version_tag(
                name,
                to_version,
                "forced_champion",
                f"{event['when']} by {event['who']}: {reason.strip()}"[:4900],
            )
    return {
        "status": "rolled_back",
        "from_version": version_number(current),
        "to_version": to_version,
        "model_uri": f"models:/{name}@{CHAMPION}",
        "event": event,
        "forced": bool(extra),
    }
