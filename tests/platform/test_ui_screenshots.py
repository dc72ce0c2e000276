"""``scripts/ui_screenshots.py`` on a finished pipeline run: the pages a reviewer opens, captured.

The run is ``python -m flows.pipeline`` (what ``make run`` runs) on the tiny config in a temp
project (as in test_pipeline_integration); the script then starts the Prefect and MLflow
servers on that run's databases (127.0.0.1, free ports, stopped by PID when it ends) and drives
headless Chromium through them. Without chromium the test skips locally and fails in CI
(``CI=true``), as test_mlflow_ui does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.flows.test_pipeline_integration import _env, _make_project, _run_pipeline
from tests.platform.test_mlflow_ui import _require_browser

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    _require_browser()
    root = tmp_path_factory.mktemp("ui-run")
    home, out = root / "state", root / "ui"
    run = _run_pipeline(_make_project(root / "project", []), home)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    shot = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "ui_screenshots.py"),
            "--home",
            str(home),
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    pages = (
        {p["name"]: p for p in json.loads((out / "pages.json").read_text())}
        if (out / "pages.json").is_file()
        else {}
    )
    return {
        "out": out,
        "pages": pages,
        "returncode": shot.returncode,
        "output": shot.stdout + shot.stderr,
    }


def _page(captured, name: str) -> dict:
    page = captured["pages"].get(name)
    assert page is not None, f"no page {name}: {captured['output'][-3000:]}"
    return page


@pytest.mark.parametrize(
    "name",
    [
        "prefect_pipeline_run",
        "prefect_stage_logs",
        "prefect_progress_artifact",
        "prefect_summary_artifact",
        "mlflow_training_run",
        "mlflow_reader_run",
        "mlflow_experiment_runs",
        "mlflow_highlight_image",
        "mlflow_model_version",
    ],
)
def test_each_page_is_a_non_empty_screenshot(captured, name):
    page = _page(captured, name)
    assert page["png"], page
    with Image.open(captured["out"] / page["png"]) as image:
        assert image.size[0] > 100 and image.size[1] > 100
        assert (
            len(image.convert("L").getcolors(1 << 16) or []) > 8
        )  # drawn content, not a blank page


def test_prefect_pages_show_stage_logs_progress_and_the_summary_with_its_link(captured):
    assert (
        "[train]" in _page(captured, "prefect_stage_logs")["text"]
    )  # a DVC stage's line in the run's logs
    assert "train-progress" in _page(captured, "prefect_progress_artifact")["text"]
    summary = _page(captured, "prefect_summary_artifact")["text"]
    assert "regionops pipeline" in summary and "Registration" in summary
    assert "model version 1" in summary and "MLflow run" in summary  # the links to MLflow


def test_mlflow_pages_show_datasets_linked_reader_highlights_and_the_version(captured):
    training = _page(captured, "mlflow_training_run")["text"]
    assert (
        "Datasets" in training and "corpus/pages" in training
    )  # the corpus as the run's dataset input
    assert "Registered models" in training and "regionops\nv1" in training
    assert (
        "Child runs" in training
        and "train-reader seed=" in training
        and "evaluate corpus/test" in training
    )
    reader = _page(captured, "mlflow_reader_run")["text"]
    assert (
        "Parent run" in reader and "train seed=" in reader
    )  # the reader run links to the training run
    assert not _page(captured, "mlflow_highlight_image")["missing"]  # the highlight PNG rendered
    assert "Version 1" in _page(captured, "mlflow_model_version")["text"]
    assert captured["returncode"] == 0, captured["output"][-3000:]


def test_excerpt_quotes_stage_logs_artifacts_and_lineage(captured):
    text = (captured["out"] / "ui_excerpt.md").read_text()
    assert "Stage log lines forwarded to Prefect: 0 " not in text
    for stage in ("generate", "train", "index", "train-reader", "evaluate"):
        assert f"\n[{stage}] " in text, stage  # each stage's own output is quoted
    assert "`pipeline-summary` (markdown)" in text and "`train-progress` (progress)" in text
    assert "Linked reader run (nested): train-reader" in text
    assert "Registered model version: regionops v1" in text
