"""The project's events: payloads, per-project resource ids, provenance of files reported by an event."""

from __future__ import annotations

from pathlib import Path

from components.events import (
    FILES_ARRIVED,
    arrival_payload,
    kept_champion_payload,
    landing_resource_id,
    merge_reported_arrivals,
)

INTAKE = {
    "new": [
        {
            "name": "a.pdf",
            "sha256": "1" * 64,
            "kind": "document",
            "status": "accepted",
            "stored_as": "a.pdf",
            "received_at": "2026-12-06T20:00:00+00:00",
        },
        {
            "name": "b.pdf",
            "sha256": "2" * 64,
            "kind": "document",
            "status": "quarantined",
            "reason": "encrypted",
            "detail": "a long detail the event does not need",
        },
    ],
    "duplicates": [{"name": "c.pdf", "sha256": "1" * 64, "first_seen_as": "a.pdf"}],
    "accepted": 1,
    "quarantined": 1,
    "changed": True,
}


def test_arrival_payload_has_the_counts_and_the_new_files_without_details():
    payload = arrival_payload(INTAKE)
    assert (payload["accepted"], payload["quarantined"], payload["duplicates"]) == (1, 1, 1)
    assert [e["name"] for e in payload["new"]] == ["a.pdf", "b.pdf"]
    assert "detail" not in payload["new"][1] and payload["new"][1]["reason"] == "encrypted"


def test_landing_resource_ids_differ_between_projects(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert landing_resource_id(a) != landing_resource_id(b)
    assert landing_resource_id(a) == landing_resource_id(tmp_path / "a" / ".." / "a")


def test_files_reported_by_the_event_join_an_empty_intake_once():
    empty = {"new": [], "duplicates": [], "accepted": 0, "quarantined": 0, "changed": False}
    merged = merge_reported_arrivals(empty, arrival_payload(INTAKE)["new"])
    assert [e["name"] for e in merged["new"]] == ["a.pdf", "b.pdf"]
    assert merged["accepted"] == 1 and merged["changed"] is True
    assert all(e["reported_by_event"] for e in merged["new"])
    # a file this run took in itself is not listed twice
    again = merge_reported_arrivals(INTAKE, arrival_payload(INTAKE)["new"])
    assert again is INTAKE


def test_no_report_leaves_the_intake_alone():
    assert merge_reported_arrivals(INTAKE, None) is INTAKE


def test_kept_champion_payload_names_both_versions_and_the_reasons():
    payload = kept_champion_payload(
        {
            "version": "5",
            "champion_before": "4",
            "run_id": "r",
            "gate": {"reasons": ["floor page_r1: 0.1 < 0.3"]},
        }
    )
    assert payload == {
        "candidate_version": "5",
        "champion_version": "4",
        "reasons": ["floor page_r1: 0.1 < 0.3"],
        "run_id": "r",
    }


def test_retrain_trigger_renders_the_reported_files_into_the_arrived_parameter(tmp_path: Path):
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    from flows.events import retrain_trigger

    trigger = retrain_trigger(tmp_path, "params.yaml")
    assert trigger.expect == {FILES_ARRIVED}
    assert trigger.match.model_dump()["prefect.resource.id"] == landing_resource_id(tmp_path)
    event = {"event": FILES_ARRIVED, "payload": arrival_payload(INTAKE)}
    rendered = hydrate(
        trigger.parameters, HydrationContext(render_jinja=True, jinja_context={"event": event})
    )
    assert rendered["project_dir"] == str(tmp_path.resolve())
    assert rendered["arrived"] == arrival_payload(INTAKE)["new"]


def test_an_event_without_a_file_list_starts_retrain_with_none_reported(tmp_path: Path):
    """An S3 relay may send the event with counts only: the retrain's own intake lists the files."""
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    from flows.events import retrain_trigger

    event = {"event": FILES_ARRIVED, "payload": {"accepted": 2}}
    rendered = hydrate(
        retrain_trigger(tmp_path, "params.yaml").parameters,
        HydrationContext(render_jinja=True, jinja_context={"event": event}),
    )
    assert rendered["arrived"] == []
