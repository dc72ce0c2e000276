"""Screenshots and a text excerpt of what the Prefect and MLflow UIs show for a finished `make run`.

    python scripts/ui_screenshots.py [--home DIR] [--out reports/ui] [--flow-run ID]
    make ui-screenshots

Reads the run's state under ``REGIONOPS_HOME`` (default ``./.regionops``): Prefect's
``prefect/prefect.db`` and MLflow's ``mlflow.db``. Each UI is reached at ``--prefect-url`` /
``--mlflow-url`` when given and answering; otherwise this script starts the server on
127.0.0.1 and a free port (its own process group; Prefect with ``--no-services``, so nothing
is scheduled or marked late in the database) and stops what it started, by PID, at the end.
Headless Chromium (``/usr/bin/chromium``) is driven by Selenium through Debian's chromedriver,
as in ``tests/platform/test_mlflow_ui.py``; ``scripts/install_browser.sh`` installs both.

Writes into ``--out``: one PNG per page, ``pages.json`` (each page's URL, screenshot, the
texts it had to show, which of them it showed, and its visible text) and ``ui_excerpt.md``
(what the APIs hold for the same run: stage logs, artifacts, datasets, linked runs, version).
A page whose expected text never appears is still captured and listed under ``missing``;
the exit code is 1 when anything is missing (``--allow-missing``: 0).

Over 400 lines on purpose: one script a user runs (`make ui-screenshots`): starting the servers,
driving the browser and checking every page stay together.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,1100",
)
PAGE_TIMEOUT_S = 90  # the UI bundles are large; a shared 2-core machine renders them slowly
SERVER_TIMEOUT_S = 180
LOG_LINES = (
    6  # stage log lines quoted in the excerpt: the first and the last this many of each stage
)
MAX_LOGS = 20000  # log records read per run


# ------------------------------------------------------------------ servers we start (and stop)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def _server(name: str, cmd: list[str], env: dict[str, str], health: str, log: Path):
    """``cmd`` in its own process group until the block ends; stopped by its PID's group."""
    with open(log, "ab") as handle:
        proc = subprocess.Popen(
            cmd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while not _answers(health):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} did not start (see {log}):\n{tail}")
            time.sleep(0.5)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "PREFECT_API_DATABASE_CONNECTION_URL")
    }
    env.update(
        DO_NOT_TRACK="true",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    return {**env, **extra}


@contextlib.contextmanager
def prefect_ui(home: Path, url: str | None, logs: Path):
    """The Prefect UI's base URL (API under /api), on the given server or one started on home's DB."""
    if url and _answers(f"{url.rstrip('/')}/api/health"):
        yield url.rstrip("/")
        return
    if not (home / "prefect" / "prefect.db").is_file():
        raise SystemExit(
            f"no Prefect database at {home / 'prefect' / 'prefect.db'}: run `make run` first"
        )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # The UI calls the API at PREFECT_UI_API_URL, which otherwise defaults to port 4200.
    env = _clean_env(
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_SERVER_UI_ENABLED="true",
        PREFECT_UI_API_URL=f"{base}/api",
        PREFECT_UI_URL=base,
    )
    cmd = [
        str(BIN / "prefect"),
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-services",
    ]
    with _server("prefect server", cmd, env, f"{base}/api/health", logs / "prefect-server.log"):
        yield base


@contextlib.contextmanager
def mlflow_ui(home: Path, url: str | None, logs: Path):
    if url and _answers(f"{url.rstrip('/')}/health"):
        yield url.rstrip("/")
        return
    if not (home / "mlflow.db").is_file():
        raise SystemExit(f"no MLflow database at {home / 'mlflow.db'}: run `make run` first")
    port = _free_port()
    env = _clean_env(
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",  # the UI only: no background job workers
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    cmd = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    base = f"http://127.0.0.1:{port}"
    with _server("mlflow server", cmd, env, f"{base}/health", logs / "mlflow-server.log"):
        yield base


# ------------------------------------------------------------------ what the run left behind


def prefect_facts(api: str, flow_run_id: str | None) -> dict:
    """The pipeline run (given, else the latest, preferring a completed one), its subflows, logs, artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort, LogSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        if flow_run_id:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        else:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["pipeline"])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=50,
            )
            runs = [r for r in runs if r.parent_task_run_id is None]
            runs.sort(
                key=lambda r: not (r.state and r.state.is_completed())
            )  # stable: latest completed first
        if not runs:
            raise SystemExit("no pipeline flow run in this Prefect database: run `make run` first")
        run = runs[0]
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])
            ),
            sort=FlowRunSort.START_TIME_ASC,
        )
        flow_names = {f.id: f.name for f in client.read_flows()}
        ids = [run.id, *[c.id for c in children]]
        logs: list = []
        while len(logs) < MAX_LOGS:  # the API pages logs 200 at a time
            page = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)),
                sort=LogSort.TIMESTAMP_ASC,
                limit=200,
                offset=len(logs),
            )
            logs += page
            if len(page) < 200:
                break
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
    return {
        "run": {"id": str(run.id), "name": run.name, "state": run.state.name if run.state else "?"},
        "subflows": [
            {
                "id": str(c.id),
                "name": c.name,
                "flow": flow_names.get(c.flow_id, "?"),
                "state": c.state.name if c.state else "?",
            }
            for c in children
        ],
        "logs": [
            {"flow_run_id": str(entry.flow_run_id), "message": entry.message} for entry in logs
        ],
        "artifacts": [
            {
                "id": str(a.id),
                "key": a.key,
                "type": a.type,
                "description": a.description,
                "data": a.data,
            }
            for a in artifacts
        ],
    }


def mlflow_facts(tracking_uri: str, model_name: str) -> dict:
    """The registered version (champion, else the latest), its training run, linked reader and evaluation runs."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = None
    with contextlib.suppress(MlflowException):
        version = client.get_model_version_by_alias(model_name, "champion")
    if version is None:
        with contextlib.suppress(MlflowException):
            versions = client.search_model_versions(f"name='{model_name}'")
            version = max(versions, key=lambda v: int(v.version)) if versions else None
    experiments = [e.experiment_id for e in client.search_experiments()]
    if version is not None:
        train = client.get_run(version.run_id)
    else:
        found = client.search_runs(
            experiments,
            "tags.`regionops.stage` = 'train' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not found:
            raise SystemExit(
                "no finished training run in this MLflow database: run `make run` first"
            )
        train = found[0]
    children = client.search_runs(
        [train.info.experiment_id], f"tags.`mlflow.parentRunId` = '{train.info.run_id}'"
    )
    by_stage = {}
    for child in sorted(children, key=lambda r: r.info.start_time or 0):
        by_stage[child.data.tags.get("regionops.stage", "?")] = child  # the latest of each stage
    evaluation = by_stage.get("evaluate")
    highlights = []
    if evaluation is not None:
        with contextlib.suppress(MlflowException, OSError):
            highlights = [
                f.path
                for f in client.list_artifacts(evaluation.info.run_id, "evaluation/highlights")
                if f.path.endswith(".png")
            ]
    return {
        "experiment_id": train.info.experiment_id,
        "train": {
            "id": train.info.run_id,
            "name": train.info.run_name,
            "datasets": [
                f"{d.dataset.name} ({d.dataset.digest}, "
                f"{next((t.value for t in d.tags if t.key == 'mlflow.data.context'), '?')})"
                for d in train.inputs.dataset_inputs
            ],
        },
        "reader": None
        if "train-reader" not in by_stage
        else {
            "id": by_stage["train-reader"].info.run_id,
            "name": by_stage["train-reader"].info.run_name,
        },
        "evaluation": None
        if evaluation is None
        else {"id": evaluation.info.run_id, "name": evaluation.info.run_name},
        "highlights": highlights,
        "version": None
        if version is None
        else {
            "name": model_name,
            "version": str(version.version),
            "aliases": list(version.aliases or []),
            "gate_passed": version.tags.get("gate.passed"),
            "description": version.description or "",
            "gate_evaluation_run": version.tags.get("gate.evaluation_run_id", "not recorded"),
        },
    }


# ------------------------------------------------------------------ pages


def pages_to_capture(prefect_base: str, pf: dict, mlflow_base: str, ml: dict) -> list[dict]:
    """Each page: its URL, and the texts the page must show once rendered."""
    pages = [
        {
            "name": "prefect_pipeline_run",
            "url": f"{prefect_base}/runs/flow-run/{pf['run']['id']}",
            "expect": [pf["run"]["name"], pf["run"]["state"]],
        }
    ]
    stage_logs = [s for s in pf["subflows"] if s["flow"] == "train"] or pf["subflows"]
    if stage_logs:  # the DVC stages' lines are logged by the stage subflows (prefix "[stage] ")
        sub = stage_logs[0]
        pages.append(
            {
                "name": "prefect_stage_logs",
                "url": f"{prefect_base}/runs/flow-run/{sub['id']}",
                "expect": [sub["name"], f"[{'train' if sub['flow'] == 'train' else ''}"],
            }
        )
    by_key = {a["key"]: a for a in pf["artifacts"] if a["key"]}
    progress = by_key.get("train-progress") or next(
        (a for a in pf["artifacts"] if a["type"] == "progress"), None
    )
    pages.append(
        {
            "name": "prefect_progress_artifact",
            "url": None
            if progress is None
            else f"{prefect_base}/artifacts/artifact/{progress['id']}",
            "expect": ["-progress"] if progress is None else [progress["key"]],
        }
    )
    summary = by_key.get("pipeline-summary")
    pages.append(
        {
            "name": "prefect_summary_artifact",
            "url": None
            if summary is None
            else f"{prefect_base}/artifacts/artifact/{summary['id']}",
            "expect": ["regionops pipeline", "Registration", "model version"],
        }
    )
    run_page = f"{mlflow_base}/#/experiments/{ml['experiment_id']}/runs"
    pages.append(
        {
            "name": "mlflow_training_run",
            "url": f"{run_page}/{ml['train']['id']}",
            "expect": [ml["train"]["name"][:60], "Datasets", "Child runs", "Registered models"]
            + ([f"{ml['version']['name']}\nv{ml['version']['version']}"] if ml["version"] else []),
        }
    )
    pages.append(
        {
            "name": "mlflow_reader_run",
            "url": None if ml["reader"] is None else f"{run_page}/{ml['reader']['id']}",
            "expect": ["Parent run", ml["train"]["name"][:60]],
        }
    )
    # Long run names are cut in the table and child runs are folded under their parent.
    pages.append(
        {
            "name": "mlflow_experiment_runs",
            "url": run_page,
            "expect": [ml["train"]["name"][:60], "Dataset"],
        }
    )
    highlight = ml["highlights"][0] if ml["highlights"] else None
    pages.append(
        {
            "name": "mlflow_highlight_image",
            "url": None
            if highlight is None
            else f"{run_page}/{ml['evaluation']['id']}/artifacts/{highlight}",
            "expect": ["highlights", "png"],
            "image": True,
        }
    )
    version = ml["version"]
    pages.append(
        {
            "name": "mlflow_model_version",
            "url": None
            if version is None
            else f"{mlflow_base}/#/models/{quote(version['name'], safe='')}/versions/{version['version']}",
            "expect": [] if version is None else [f"Version {version['version']}", "gate.passed"],
        }
    )
    return pages


_ARTIFACT_IMAGES_JS = """
return Array.from(document.images)
  .filter(img => img.complete && img.naturalWidth > 32 && !img.src.startsWith('data:')).length;
"""


def capture(pages: list[dict], out: Path, profile: Path) -> list[dict]:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # An explicit driver path: Selenium Manager never tries to download a driver or a browser.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    text = lambda: driver.find_element("tag name", "body").text
    try:
        for page in pages:
            if page["url"] is None:
                page.update(png=None, found=[], text="", missing=["the run left no such item"])
                continue
            driver.get(page["url"])
            ready = lambda d, p=page: (
                all(e in text() for e in p["expect"])
                and (not p.get("image") or d.execute_script(_ARTIFACT_IMAGES_JS) > 0)
            )
            with contextlib.suppress(TimeoutException):
                WebDriverWait(driver, PAGE_TIMEOUT_S, poll_frequency=1).until(ready)
            time.sleep(1)  # let late panels (logs, charts) settle before the shot
            png = out / f"{page['name']}.png"
            driver.save_screenshot(str(png))
            body = text()
            page.update(
                png=png.name,
                text=body[:20000],
                found=[e for e in page["expect"] if e in body],
                missing=[e for e in page["expect"] if e not in body],
            )
    finally:
        driver.quit()
    return pages


def excerpt(pf: dict, ml: dict, prefect_base: str, mlflow_base: str) -> str:
    lines = [
        "# UI evidence for a `make run`",
        "",
        "## Prefect",
        "",
        f"Flow run `{pf['run']['name']}` ({pf['run']['state']}): {prefect_base}/runs/flow-run/{pf['run']['id']}",
        "",
    ]
    lines += [f"- subflow `{s['name']}` ({s['flow']}, {s['state']})" for s in pf["subflows"]]
    by_stage: dict[str, list[str]] = {}
    for entry in pf["logs"]:  # a DVC stage's lines reach the run log as "[stage] line"
        message = entry["message"]
        if message.startswith("[") and "] " in message:
            by_stage.setdefault(message[1 : message.index("]")], []).append(message)
    total = sum(len(v) for v in by_stage.values())
    lines += [
        "",
        (
            f"Stage log lines forwarded to Prefect: {total} "
            f"({', '.join(f'{k} {len(v)}' for k, v in by_stage.items()) or 'none'})"
        ),
        "",
    ]
    for stage, messages in by_stage.items():
        shown = (
            messages
            if len(messages) <= 2 * LOG_LINES
            else [
                *messages[:LOG_LINES],
                f"[{stage}] ... {len(messages) - 2 * LOG_LINES} more lines ...",
                *messages[-LOG_LINES:],
            ]
        )
        lines += ["```", *[m[:200] for m in shown], "```", ""]
    lines += ["Artifacts:", ""]
    for artifact in pf["artifacts"]:
        data = (
            artifact["data"] if isinstance(artifact["data"], str) else json.dumps(artifact["data"])
        )
        lines.append(f"- `{artifact['key']}` ({artifact['type']}): {artifact['description'] or ''}")
        if artifact["key"] == "pipeline-summary":
            lines += ["", "```markdown", data[:3000], "```", ""]
        elif artifact["type"] == "progress":
            lines.append(f"  progress {data}%")
    if not pf["artifacts"]:
        lines.append("- none: this run published no artifacts (did it finish?)")
    lines += [
        "",
        "## MLflow",
        "",
        (
            f"Training run `{ml['train']['name']}`: {mlflow_base}/#/experiments/{ml['experiment_id']}/runs/"
            f"{ml['train']['id']}"
        ),
        "",
        "Dataset inputs:",
        "",
    ]
    lines += [f"- {d}" for d in ml["train"]["datasets"]] or ["- none"]
    lines += [
        "",
        f"Linked reader run (nested): {ml['reader']['name'] if ml['reader'] else 'none'}",
        f"Evaluation run (nested): {ml['evaluation']['name'] if ml['evaluation'] else 'none'}",
        f"Highlight images: {len(ml['highlights'])}"
        + (f" (e.g. {ml['highlights'][0]})" if ml["highlights"] else ""),
        "",
    ]
    version = ml["version"]
    if version:
        lines += [
            (
                f"Registered model version: {version['name']} v{version['version']} aliases {version['aliases']} "
                f"gate.passed={version['gate_passed']}"
            ),
            f"Gate decided from evaluation run: {version['gate_evaluation_run']}",
            "",
            version["description"],
        ]
    else:
        lines.append("Registered model version: none")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", type=Path, default=Path(os.environ.get("REGIONOPS_HOME") or REPO / ".regionops")
    )
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "ui")
    parser.add_argument(
        "--flow-run", help="pipeline flow run id (default: the latest completed one)"
    )
    parser.add_argument(
        "--model-name", help="registered model (default: registry.model_name in params.yaml)"
    )
    parser.add_argument(
        "--prefect-url", help="a running Prefect server's UI, e.g. http://127.0.0.1:4200"
    )
    parser.add_argument("--mlflow-url", help="a running MLflow UI, e.g. http://127.0.0.1:5000")
    parser.add_argument(
        "--allow-missing", action="store_true", help="exit 0 even when an item is missing"
    )
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file() or not Path(CHROMEDRIVER).is_file():
        raise SystemExit(
            f"needs {CHROMIUM} and {CHROMEDRIVER}: run scripts/install_browser.sh (make browser)"
        )
    home, out = args.home.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    if args.model_name is None:
        sys.path.insert(0, str(REPO))
        from components.config import load_params

        args.model_name = load_params(REPO / "params.yaml").registry.model_name
    with (
        prefect_ui(home, args.prefect_url, logs) as prefect_base,
        mlflow_ui(home, args.mlflow_url, logs) as mlflow_base,
    ):
        pf = prefect_facts(f"{prefect_base}/api", args.flow_run)
        ml = mlflow_facts(f"sqlite:///{home / 'mlflow.db'}", args.model_name)
        pages = capture(
            pages_to_capture(prefect_base, pf, mlflow_base, ml), out, logs / "chromium-profile"
        )
    (out / "ui_excerpt.md").write_text(excerpt(pf, ml, prefect_base, mlflow_base))
    (out / "pages.json").write_text(json.dumps(pages, indent=2))
    missing = {p["name"]: p["missing"] for p in pages if p["missing"]}
    for page in pages:
        print(
            f"{page['name']:28s} {page['png'] or '-':34s} {'ok' if not page['missing'] else 'MISSING ' + str(page['missing'])}"
        )
    print(f"wrote {out / 'ui_excerpt.md'} and {out / 'pages.json'}")
    return 0 if args.allow_missing or not missing else 1


if __name__ == "__main__":
    raise SystemExit(main())
