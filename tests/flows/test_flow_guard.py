"""Orchestration rules that need no training: one training flow at a time, and a visible kept-champion state."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from flows.report import KEPT_CHAMPION, final_state, summary_markdown

GATE_FAILED = {
    "passed": False,
    "rules": [{"kind": "floor", "metric": "page_r1", "value": 0.1, "bound": 0.3, "passed": False}],
    "reasons": ["floor page_r1: 0.1 < 0.3"],
}


def test_failed_gate_with_a_champion_ends_kept_champion_with_the_reasons():
    result = {
        "stages": [],
        "registration": {
            "status": "challenger",
            "version": "4",
            "champion_before": "3",
            "gate": GATE_FAILED,
        },
    }
    state = final_state(result)
    assert state.is_completed() and state.name == KEPT_CHAMPION
    assert "kept champion v3" in state.message and "page_r1" in state.message


def test_failed_gate_without_a_champion_fails_the_run():
    result = {
        "stages": [],
        "registration": {
            "status": "challenger",
            "version": "1",
            "champion_before": None,
            "gate": GATE_FAILED,
        },
    }
    state = final_state(result)
    assert state.is_failed() and "no champion" in state.message


def test_passed_gate_returns_the_plain_result_and_the_artifact_has_the_gate_table():
    gate = {**GATE_FAILED, "passed": True, "reasons": [], "evaluation_run_id": "abc123"}
    gate["rules"] = [{**gate["rules"][0], "value": 0.5, "passed": True}]
    result = {
        "stages": [{"stage": "train", "ran": True}],
        "registration": {"status": "promoted", "version": "2", "gate": gate},
    }
    assert final_state(result) is result
    markdown = summary_markdown("t", result["stages"], result["registration"])
    assert "| floor | page_r1 | 0.5 | 0.3 | True |" in markdown and "| train | ran |" in markdown
    assert "Decided from evaluation run `abc123`" in markdown  # the gate's source, for the reviewer


@pytest.mark.slow
def test_two_training_flows_never_hold_the_slot_at_once():
    from prefect import flow

    from flows.guard import training_slot

    name = f"test-training-{uuid.uuid4().hex[:8]}"
    spans: list[tuple[float, float]] = []

    @flow
    def holder(seconds: float) -> None:
        with training_slot(name, timeout_seconds=120):
            start = time.monotonic()
            time.sleep(seconds)
            spans.append((start, time.monotonic()))

    holder(0.1)  # starts the temporary server once, and creates the limit
    threads = [threading.Thread(target=holder, args=(2.0,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(spans) == 3
    (_, first_end), (second_start, _) = sorted(spans[1:])
    assert second_start >= first_end, f"overlap: {spans}"

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == 1
