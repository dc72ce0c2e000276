"""Deployments against real services: ``prefect server start``, a process work pool and ``prefect worker start``.

One stack per module (the server takes 7-15 s to start, docs/design.md §8), on 127.0.0.1 and a free
port, each process in its own process group and stopped by PID. The project is the tiny
config in a temp folder, as in test_pipeline_integration.

Over 400 lines on purpose: the deployments, automations and schedules share one real Prefect
server.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.data.test_data_import import make_pdf
from tests.flows.test_pipeline_integration import _make_project
from tests.support.servers import Server, free_port, http_ok, recording_webhook, start, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
POOL = "regionops-test"
CRON = "0 3 * * *"
WATCH_SECONDS = 10


@pytest.fixture(scope="module")
def webhook():
    with recording_webhook("/hook") as hook:
        yield hook


@pytest.fixture(scope="module")
def stack(tmp_path_factory, webhook):
    root = tmp_path_factory.mktemp("deployments")
    home = root / "state"
    project = _make_project(
        root / "project", [f"orchestrate.watch_interval_seconds={WATCH_SECONDS}"]
    )
    (home / "prefect").mkdir(parents=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(
        os.environ,
        REGIONOPS_HOME=str(home),
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_API_URL=api,
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_SERVER_UI_ENABLED="false",
        # schedule watcher runs and pick them up within seconds, not the default minute
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        PREFECT_WORKER_QUERY_SECONDS="3",
        REGIONOPS_NOTIFY_WEBHOOK_URL=webhook[0],
        # the stages' `regionops` console script runs this checkout's code, not an installed copy
        PYTHONPATH=str(REPO),
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    logs = root / "logs"
    logs.mkdir()
    servers: list[Server] = []
    old_env = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "REGIONOPS_HOME", "PREFECT_HOME")}
    in_process = contextlib.ExitStack()
    try:
        server = start(
            "prefect server",
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            logs / "server.log",
            env,
            api,
        )
        servers.append(server)
        wait_until(server, lambda: http_ok(f"{api}/health"), 180)
        deployed = subprocess.run(
            [
                sys.executable,
                "-m",
                "components.cli",
                "deploy",
                "--project-dir",
                str(project),
                "--work-pool",
                POOL,
                "--cron",
                CRON,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        servers.append(
            start(
                "prefect worker",
                [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"],
                logs / "worker.log",
                env,
            )
        )
        os.environ.update(
            PREFECT_API_URL=api, REGIONOPS_HOME=str(home), PREFECT_HOME=str(home / "prefect")
        )
        # Prefect reads its settings once, at import: an earlier test in this session may have
        # pointed this process at a temporary server. The clients here must talk to this one.
        from prefect.settings import PREFECT_API_URL, temporary_settings

        in_process.enter_context(temporary_settings(updates={PREFECT_API_URL: api}))
        # The watcher stays paused until the landing test: on 2 shared cores, a process every
        # 10 s would slow the pipeline test down for nothing.
        with _client() as client:
            client.pause_deployment(
                client.read_deployment_by_name("landing-watch/landing-watch").id
            )
        yield {
            "api": api,
            "home": home,
            "project": project,
            "logs": logs,
            "deploy_output": deployed.stdout,
            "env": env,
        }
    finally:
        in_process.close()
        for server in reversed(servers):
            server.stop()  # the worker's flow-run processes too (Server.stop)
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _mlflow(home: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _flow_runs(deployment_name: str):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with _client() as client:
        dep = client.read_deployment_by_name(deployment_name)
        return dep, client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id]))
        )


def _wait_final(flow_run_id, timeout: float):
    deadline = time.monotonic() + timeout
    with _client() as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final():
                return run
            time.sleep(3)
    raise AssertionError(f"flow run {flow_run_id} not finished after {timeout} s")


def _worker_log(stack) -> str:
    return (stack["logs"] / "worker.log").read_text(errors="replace")[-6000:]


def test_retrain_deployment_has_its_cron_schedule(stack):
    with _client() as client:
        retrain = client.read_deployment_by_name("retrain/retrain")
        watcher = client.read_deployment_by_name("landing-watch/landing-watch")
        pipeline = client.read_deployment_by_name("pipeline/pipeline")
        limit = client.read_global_concurrency_limit_by_name("regionops-training")
    crons = [getattr(s.schedule, "cron", None) for s in retrain.schedules]
    assert CRON in crons
    assert [s.schedule.interval.total_seconds() for s in watcher.schedules] == [WATCH_SECONDS]
    assert pipeline.work_pool_name == POOL and retrain.work_pool_name == POOL
    assert limit.limit == 1


def test_retrain_has_an_arrival_trigger_and_the_notification_automations_exist(stack):
    from components.events import FILES_ARRIVED, KEPT_CHAMPION, landing_resource_id
    from flows.events import FAILED_AUTOMATION, KEPT_AUTOMATION

    with _client() as client:
        retrain = client.read_deployment_by_name("retrain/retrain")
        automations = client.read_automations()
    # The deployment trigger is an automation whose action runs the retrain deployment.
    triggers = [
        a
        for a in automations
        if any(getattr(x, "deployment_id", None) == retrain.id for x in a.actions)
    ]
    assert len(triggers) == 1, [a.name for a in automations]
    trigger = triggers[0].trigger
    assert trigger.expect == {FILES_ARRIVED}
    assert trigger.match.model_dump()["prefect.resource.id"] == landing_resource_id(
        stack["project"]
    )
    by_name = {a.name: a for a in automations}
    assert by_name[KEPT_AUTOMATION].trigger.expect == {KEPT_CHAMPION}
    assert by_name[FAILED_AUTOMATION].trigger.expect == {
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
    }
    assert all(
        a.actions[0].type == "call-webhook"
        for a in (by_name[KEPT_AUTOMATION], by_name[FAILED_AUTOMATION])
    )
    # deploy again: the automations are replaced, not doubled
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "components.cli",
            "deploy",
            "--project-dir",
            str(stack["project"]),
            "--work-pool",
            POOL,
            "--cron",
            CRON,
        ],
        env=stack["env"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    with _client() as client:
        names = [a.name for a in client.read_automations()]
        # deploying again un-paused the watcher: pause it again until the landing test
        client.pause_deployment(client.read_deployment_by_name("landing-watch/landing-watch").id)
    assert names.count(KEPT_AUTOMATION) == 1 and names.count(FAILED_AUTOMATION) == 1


def test_kept_champion_event_reaches_the_webhook(stack, webhook):
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from components.events import KEPT_CHAMPION, kept_champion_payload, model_resource

    _, received = webhook
    outcome = {
        "version": "7",
        "champion_before": "3",
        "run_id": "abc",
        "gate": {"reasons": ["floor page_r1: 0.1 < 0.3"]},
    }
    emit_event(
        KEPT_CHAMPION,
        resource=model_resource("regionops-test"),
        payload=kept_champion_payload(outcome),
    )
    EventsWorker.drain_all(timeout=30)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        b.get("event") == KEPT_CHAMPION for b in received
    ):
        time.sleep(1)
    bodies = [b for b in received if b.get("event") == KEPT_CHAMPION]
    assert bodies, f"no webhook call for {KEPT_CHAMPION}: {received}"
    assert "champion v3 kept" in bodies[0]["text"] and "page_r1" in bodies[0]["text"]
    assert bodies[0]["payload"]["candidate_version"] == "7"


def test_pipeline_deployment_completes_and_registers_a_champion(stack):
    from prefect.deployments import run_deployment

    run = run_deployment(
        "pipeline/pipeline", timeout=1500, poll_interval=3
    )  # 2 cores shared with other jobs
    assert run.state is not None and run.state.is_completed(), (run.state, _worker_log(stack))
    champion = _mlflow(stack["home"]).get_model_version_by_alias("regionops", "champion")
    assert champion.tags.get("gate.passed") == "true"
    with _client() as client:
        artifact = client.read_artifacts()
    assert any(a.key == "pipeline-summary" and "| rule |" in (a.data or "") for a in artifact)
    summary = next(a for a in artifact if a.key == "pipeline-summary")
    assert (
        f"/#/models/regionops/versions/{champion.version}" in summary.data
        and "/runs/" in summary.data
    )
    table = json.loads(next(a for a in artifact if a.key == "pipeline-summary-table").data)
    assert [row["step"] for row in table][:2] == ["generate", "validate"] and table[0][
        "seconds"
    ] is not None
    # The trainers' progress lines became progress bars (the lines themselves: test_stage_output).
    progress = {a.key: a.data for a in artifact if a.type == "progress"}
    assert (
        progress.get("train-progress") == 100.0 and progress.get("train-reader-progress") == 100.0
    )


def test_dropped_file_triggers_one_retrain_that_records_its_gate_decision(stack):
    landing = stack["project"] / "landing"
    landing.mkdir(exist_ok=True)
    pdf = make_pdf([[(20, 150, "Invoice total 1234"), (20, 100, "Paid in March")]])
    staged = stack["project"] / "incoming.pdf"
    staged.write_bytes(pdf)
    shutil.move(staged, landing / "invoice.pdf")  # a rename: the file appears whole
    with _client() as client:
        client.resume_deployment(client.read_deployment_by_name("landing-watch/landing-watch").id)

    deadline = time.monotonic() + 180
    runs = []
    while time.monotonic() < deadline and not runs:
        _, runs = _flow_runs("retrain/retrain")
        runs = [r for r in runs if r.idempotency_key and r.idempotency_key.startswith("landing-")]
        time.sleep(3)
    assert runs, "the landing watcher started no retrain:\n" + _worker_log(stack)
    run = _wait_final(runs[0].id, 900)
    assert run.state.is_completed(), (run.state, _worker_log(stack))  # Completed, or KeptChampion

    ml = _mlflow(stack["home"])
    versions = ml.search_model_versions("name='regionops'")
    retrained = [v for v in versions if v.tags.get("retrain.flow_run_id") == str(run.id)]
    assert len(retrained) == 1, [v.tags for v in versions]
    tags = retrained[0].tags
    assert tags["gate.passed"] in ("true", "false") and "gate.decision" in tags
    assert "invoice.pdf@" in tags["retrain.files"]
    assert tags["retrain.landed_md5"].endswith(".dir")
    run_tags = ml.get_run(retrained[0].run_id).data.tags
    assert run_tags["retrain.landed_md5"] == tags["retrain.landed_md5"]
    with _client() as client:
        artifacts = client.read_artifacts()
    summary = [a for a in artifacts if a.key == "retrain-summary"]
    assert summary and "invoice.pdf" in summary[-1].data and "| rule |" in summary[-1].data

    # The same file again: the watcher looks, finds nothing new, starts no second retrain.
    (landing / "again.pdf").write_bytes(pdf)
    os.utime(landing / "again.pdf", (time.time() - 60, time.time() - 60))
    dropped_at = time.time()
    deadline = time.monotonic() + 120
    looked = False
    while time.monotonic() < deadline and not looked:
        _, watch_runs = _flow_runs("landing-watch/landing-watch")
        looked = any(
            r.state
            and r.state.is_completed()
            and r.start_time
            and r.start_time.timestamp() > dropped_at
            for r in watch_runs
        )
        time.sleep(3)
    assert looked, "no watcher run after the second drop:\n" + _worker_log(stack)
    _, runs_after = _flow_runs("retrain/retrain")
    # (the cron's future runs carry "scheduled ..." idempotency keys; the watcher's are "landing-...")
    assert [r.id for r in runs_after if (r.idempotency_key or "").startswith("landing-")] == [
        runs[0].id
    ]
    assert len(ml.search_model_versions("name='regionops'")) == len(versions)


def _dvc_repro_processes(project: Path) -> list:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error):
            cmd = proc.info["cmdline"] or []
            if (
                any(part.endswith("dvc") for part in cmd[:2])
                and "repro" in cmd
                and proc.info["cwd"] == str(project)
            ):
                found.append(proc)
    return found


def test_ingest_event_starts_retrain_and_cancelling_it_stops_its_stage(stack):
    from prefect.states import Cancelling

    landing = stack["project"] / "landing"
    landing.mkdir(exist_ok=True)
    pdf = make_pdf([[(20, 150, "Shipment 88 delivered"), (20, 100, "Signed by the clerk")]])
    (landing / "shipment.pdf").write_bytes(pdf)
    os.utime(
        landing / "shipment.pdf", (time.time() - 60, time.time() - 60)
    )  # settled: the intake takes it
    with _client() as client:  # the fallback poll must not be what starts this retrain
        client.pause_deployment(client.read_deployment_by_name("landing-watch/landing-watch").id)
    _, before = _flow_runs("retrain/retrain")
    ingest = subprocess.run(
        [sys.executable, "-m", "components.cli", "landing", "ingest"],
        cwd=stack["project"],
        env=stack["env"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    assert "regionops.landing.files-arrived" in ingest.stderr

    deadline = time.monotonic() + 120
    started = []
    while time.monotonic() < deadline and not started:
        _, runs = _flow_runs("retrain/retrain")
        started = [
            r
            for r in runs
            if r.id not in {b.id for b in before} and (r.parameters or {}).get("arrived")
        ]
        time.sleep(2)
    assert started, "the arrival event started no retrain:\n" + _worker_log(stack)
    run = started[0]
    assert [e["name"] for e in run.parameters["arrived"]] == ["shipment.pdf"]

    # Cancel it once a stage runs: the stage's dvc repro (its own process group) must go with it.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not _dvc_repro_processes(stack["project"]):
        time.sleep(1)
    assert _dvc_repro_processes(stack["project"]), "no stage started:\n" + _worker_log(stack)
    with _client() as client:
        client.set_flow_run_state(run.id, Cancelling(), force=True)
    final = _wait_final(run.id, 180)
    assert final.state.is_cancelled(), final.state
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _dvc_repro_processes(stack["project"]):
        time.sleep(1)
    assert not _dvc_repro_processes(stack["project"]), "a cancelled run left its dvc repro running"


# Last in this module: it re-deploys pipeline/retrain/landing-watch from prefect.yaml.
def test_prefect_yaml_stores_no_deploying_path_and_runs_in_the_workers_project(stack, tmp_path):
    """`prefect deploy --all` from a checkout whose shell names a project folder of its own: the
    stored deployments hold no path of that machine; a worker whose REGIONOPS_PROJECT_DIR names
    another folder runs the watcher there (it reads that folder's params.yaml)."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from components.config import load_params

    repo = Path(__file__).resolve().parents[2]
    pool = load_params(repo / "params.yaml").orchestrate.work_pool
    with _client() as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    env = dict(os.environ, REGIONOPS_PROJECT_DIR=str(repo))  # the deploying shell's own folder
    deployed = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    with _client() as client:
        stored = {
            name: client.read_deployment_by_name(f"{flow}/{name}")
            for flow, name in (
                ("pipeline", "pipeline"),
                ("retrain", "retrain"),
                ("landing-watch", "landing-watch"),
            )
        }
        client.pause_deployment(stored["retrain"].id)  # its cron must not start a retrain here
    for name, deployment in stored.items():
        assert str(repo) not in deployment.model_dump_json(), (
            f"{name} stores the deploying checkout's path"
        )
        assert deployment.pull_steps == [{"flows.deploy_steps.enter_project_dir": {}}]
        assert deployment.parameters["project_dir"] == "." and deployment.work_pool_name == pool
    assert [s.schedule.cron for s in stored["retrain"].schedules] == ["0 3 * * *"]

    # PYTHONPATH: the flow-run process imports this checkout's `flows`, as an image's worker imports its own
    worker_env = dict(os.environ, REGIONOPS_PROJECT_DIR=str(stack["project"]), PYTHONPATH=str(repo))
    worker = start(
        "prefect worker (prefect.yaml)",
        [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"],
        stack["logs"] / "worker-yaml.log",
        worker_env,
        cwd=tmp_path,
    )  # not the project: only the pull step can take it there
    try:
        run = run_deployment("landing-watch/landing-watch", timeout=600, poll_interval=3)
    finally:
        worker.stop()
    log = (stack["logs"] / "worker-yaml.log").read_text(errors="replace")
    log = (
        "\n".join(line for line in log.splitlines() if "Traceback" in line or "Error" in line)[
            -3000:
        ]
        or log[-3000:]
    )
    assert run.state is not None and run.state.is_completed(), (run.state, log)
