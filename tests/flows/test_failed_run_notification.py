"""The failed-run automation fires: a real ``pipeline`` flow run fails on a real Prefect server, and
the automation's webhook reaches a local HTTP server with the run's name and state.

``prefect server start`` on 127.0.0.1 and a free port (its own process group, stopped by PID);
the webhook is an HTTP server on 127.0.0.1 in this process. The automations are the ones
``regionops deploy`` creates (``flows.events.ensure_notifications``). The automation engine
acts within seconds; the wait is bounded (``NOTIFY_DEADLINE``) so a broken path fails, not hangs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.support.servers import free_port, http_ok, recording_webhook, start, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent
NOTIFY_DEADLINE = 60.0  # seconds from the run's end to the webhook call


@pytest.fixture(scope="module")
def webhook():
    with recording_webhook("/notify") as hook:
        yield hook


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """A real Prefect server; this process's clients (and flow runs) talk to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = tmp_path_factory.mktemp("notify")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")
    }
    env.update(
        PREFECT_HOME=str(root / "prefect"),
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="true",
    )
    server = start(
        "prefect server",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        root / "server.log",
        env,
        api,
    )
    try:
        wait_until(server, lambda: http_ok(f"{api}/health"), 180)
        with temporary_settings(updates={PREFECT_API_URL: api}):
            yield {"api": api, "server": server, "root": root}
    finally:
        server.stop()


def _failing_project(root: Path) -> Path:
    """A project whose params.yaml the pipeline refuses at start-up (a key that does not exist)."""
    project = root / "project"
    project.mkdir(exist_ok=True)
    (project / "params.yaml").write_text("train:\n  no_such_parameter: 1\n")
    return project


def test_failed_pipeline_run_calls_the_webhook_with_its_name_and_state(prefect_api, webhook):
    from prefect.client.orchestration import get_client

    from flows.events import FAILED_AUTOMATION, ensure_notifications
    from flows.pipeline import pipeline

    url, received = webhook
    assert FAILED_AUTOMATION in ensure_notifications(url)  # what `regionops deploy` creates
    with get_client(sync_client=True) as client:
        assert [a.name for a in client.read_automations_by_name(FAILED_AUTOMATION)] == [
            FAILED_AUTOMATION
        ]

    state = pipeline(project_dir=str(_failing_project(prefect_api["root"])), return_state=True)
    assert state.is_failed(), state
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.state is not None and run.state.is_failed()  # the server recorded the failure

    deadline = time.monotonic() + NOTIFY_DEADLINE
    while time.monotonic() < deadline and not any(
        b.get("flow_run_id") == str(run.id) for b in received
    ):
        time.sleep(1)
    bodies = [b for b in received if b.get("flow_run_id") == str(run.id)]
    assert bodies, (
        f"no webhook call for failed run {run.name} within {NOTIFY_DEADLINE:.0f} s: {received}\n"
        + prefect_api["server"].tail()
    )
    body = bodies[0]
    assert body["event"] == "prefect.flow-run.Failed"
    assert f"flow run {run.name} of pipeline ended Failed" in body["text"]
    assert "no_such_parameter" in body["text"]  # the state message says why
    assert len(bodies) == 1  # one notification per failed run


def test_completed_run_of_a_notified_flow_calls_no_webhook(prefect_api, webhook):
    """The automation reacts to failures only: a run of the same flow name that completes is silent."""
    from prefect import flow

    from flows.events import ensure_notifications

    url, received = webhook
    ensure_notifications(url)

    @flow(name="landing-watch")  # a notified flow's name (flows.events.NOTIFIED_FLOWS)
    def quiet() -> int:
        return 1

    state = quiet(return_state=True)
    assert state.is_completed()
    run_id = str(state.state_details.flow_run_id)
    time.sleep(15)  # the failed run above was notified within seconds; give this one as long
    assert not [b for b in received if b.get("flow_run_id") == run_id]
