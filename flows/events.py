"""Send the project's events to Prefect, and register what reacts to them.

* ``regionops.landing.files-arrived`` (``regionops landing ingest``, or anything that POSTs
  the same event, e.g. an S3 notification relay): the retrain deployment's trigger
  (``retrain_trigger``) starts ``retrain`` with the reported files, instead of a poll.
* ``regionops.model.kept-champion`` (emitted by the flows when the gate fails and the
  champion stays) and failed or crashed ``pipeline``/``retrain``/``landing-watch`` runs:
  two automations (``ensure_notifications``) POST a message to a webhook (Slack, Teams or
  any HTTP endpoint) named by ``REGIONOPS_NOTIFY_WEBHOOK_URL``.

Names, resources and payloads are defined in ``components.events``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prefect.events import emit_event
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from components.events import (
    FILES_ARRIVED,
    KEPT_CHAMPION,
    arrival_payload,
    kept_champion_payload,
    landing_resource,
    landing_resource_id,
    model_resource,
)

NOTIFY_BLOCK = "regionops-notify"
FAILED_AUTOMATION = "regionops: training flow failed"
KEPT_AUTOMATION = "regionops: gate failed, champion kept"
NOTIFIED_FLOWS = [
    "pipeline",
    "retrain",
    "landing-watch",
]  # top-level flows (a subflow's failure fails them)

# Prefect renders these with the triggering event in context; tojson keeps the body valid JSON
# whatever the message holds. {"text": ...} is what Slack and Teams incoming webhooks read.
_FAILED_BODY = (
    '{"text": {{ ("regionops: flow run " ~ flow_run.name ~ " of " ~ flow.name ~ " ended "'
    ' ~ flow_run.state.name ~ ": " ~ (flow_run.state.message or "")) | tojson }},'
    ' "event": {{ event.event | tojson }}, "flow_run_id": {{ (flow_run.id | string) | tojson }}}'
)
_KEPT_BODY = (
    '{"text": {{ ("regionops: gate failed, champion v" ~ event.payload.champion_version ~ " kept; candidate v"'
    ' ~ event.payload.candidate_version ~ ": " ~ (event.payload.reasons | join("; "))) | tojson }},'
    ' "event": {{ event.event | tojson }}, "payload": {{ event.payload | tojson }}}'
)


def emit_files_arrived(project_dir: Path, intake: dict, wait_seconds: float = 30) -> bool:
    """Send the arrival event for an intake; True once it has left this process."""
    from prefect.events.worker import EventsWorker

    event = emit_event(
        FILES_ARRIVED, resource=landing_resource(project_dir), payload=arrival_payload(intake)
    )
    EventsWorker.drain_all(
        timeout=wait_seconds
    )  # a short-lived CLI process: do not exit before it is sent
    return event is not None


def emit_kept_champion(model_name: str, outcome: dict) -> None:
    """Inside a flow run: the run, flow and deployment become the event's related resources."""
    emit_event(
        KEPT_CHAMPION, resource=model_resource(model_name), payload=kept_champion_payload(outcome)
    )


def retrain_trigger(project_dir: Path, params_file: str) -> DeploymentEventTrigger:
    """Start ``retrain`` on each arrival in this project's landing folder, with the files it reported."""
    return DeploymentEventTrigger(
        name="retrain on landing arrivals",
        description=f"{FILES_ARRIVED} for {Path(project_dir).resolve()} starts retrain",
        expect={FILES_ARRIVED},
        match={"prefect.resource.id": landing_resource_id(project_dir)},
        posture=Posture.Reactive,
        threshold=1,
        parameters={
            "project_dir": str(Path(project_dir).resolve()),
            "params_file": params_file,
            "arrived": {
                "__prefect_kind": "json",
                "value": {
                    "__prefect_kind": "jinja",
                    "template": "{{ (event.payload.new or []) | tojson }}",
                },
            },
        },
    )


def _notify_block_id(webhook_url: str):
    from prefect.blocks.webhook import Webhook
    from pydantic import SecretStr

    block = Webhook(
        method="POST", url=SecretStr(webhook_url), headers={"Content-Type": "application/json"}
    )
    block.save(NOTIFY_BLOCK, overwrite=True)
    return block._block_document_id


def notification_automations(block_document_id) -> list:
    from prefect.automations import Automation
    from prefect.events.actions import CallWebhook

    failed = Automation(
        name=FAILED_AUTOMATION,
        description="a pipeline, retrain or landing-watch run failed or crashed",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={
                "prefect.resource.role": "flow",
                "prefect.resource.name": NOTIFIED_FLOWS,
            },
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[CallWebhook(block_document_id=block_document_id, payload=_FAILED_BODY)],
    )
    kept = Automation(
        name=KEPT_AUTOMATION,
        description="the candidate failed the gate; the champion still serves",
        trigger=EventTrigger(
            expect={KEPT_CHAMPION},
            match={"prefect.resource.id": "regionops.model.*"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[CallWebhook(block_document_id=block_document_id, payload=_KEPT_BODY)],
    )
    return [failed, kept]


def ensure_notifications(webhook_url: str | None) -> list[str]:
    """Create (or replace) the two notification automations; none without a webhook URL."""
    if not webhook_url:
        return []
    from prefect.client.orchestration import get_client

    automations = notification_automations(_notify_block_id(webhook_url))
    with get_client(sync_client=True) as client:
        for (
            automation
        ) in automations:  # replace: re-running deploy must not double the notifications
            for existing in client.read_automations_by_name(automation.name):
                client.delete_automation(existing.id)
            automation.create()
    return [a.name for a in automations]


def main() -> None:
    parser = argparse.ArgumentParser(description="Send a regionops event to the Prefect server.")
    parser.add_argument("event", choices=["files-arrived"])
    parser.add_argument("--project-dir", default=".")
    args = parser.parse_args()
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():  # a temporary server would take the event to its grave
        print(
            "no event sent: PREFECT_API_URL is not set (no Prefect server to start a retrain)",
            file=sys.stderr,
        )
        raise SystemExit(0)
    intake = json.loads(sys.stdin.read())
    if not emit_files_arrived(Path(args.project_dir), intake):
        raise SystemExit(
            "the arrival event was not sent (Prefect events are off in this environment)"
        )
    print(
        f"sent {FILES_ARRIVED} ({intake.get('accepted', 0)} accepted) to {PREFECT_API_URL.value()}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
