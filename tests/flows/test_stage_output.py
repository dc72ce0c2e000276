"""A DVC stage under Prefect: its lines reach the run log, its progress a progress artifact, and a
task timeout stops its process group (on Prefect's temporary server)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from flows.stage_output import progress_key

DVC = str(Path(sys.executable).parent / "dvc")

TRAINER = """
import os, sys, time
open('stage.pid', 'w').write(str(os.getpid()))
for step in (2, 4):
    print(f'2026-12-06 INFO regionops.progress: progress train step={step}/4 train/loss={1.0 / step}', flush=True)
print('a warning on stderr', file=sys.stderr, flush=True)
time.sleep(float(sys.argv[1]))
open('out.txt', 'w').write('done')
"""


def _project(root: Path, sleep_seconds: float) -> Path:
    root.mkdir()
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=root, check=True)
    (root / "trainer.py").write_text(TRAINER)
    stage = {
        "cmd": f"{sys.executable} trainer.py {sleep_seconds}",
        "deps": ["trainer.py"],
        "outs": ["out.txt"],
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stage}}))
    return root


def test_progress_keys_are_valid_artifact_keys():
    assert progress_key("train-reader") == "train-reader-progress"
    assert progress_key("Index_Build") == "index-build-progress"


@pytest.mark.slow
def test_stage_output_reaches_the_run_log_and_a_progress_artifact(tmp_path: Path):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    from flows.tasks import run_stage

    project = _project(tmp_path / "p", 0)

    @flow
    def one_stage() -> dict:
        return run_stage("train", str(project), "")

    state = one_stage(return_state=True)
    result = state.result()
    assert result["ran"] is True and result["seconds"] >= 0
    APILogWorker.drain_all(timeout=30)  # logs go to the server in batches
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
        bars = [a for a in client.read_artifacts() if a.key == "train-progress"]
    messages = [log.message for log in logs]
    assert "[train] a warning on stderr" in messages
    assert any(m.startswith("[train] ") and "progress train step=4/4" in m for m in messages)
    assert bars and bars[-1].data == 100.0 and "step 4/4" in bars[-1].description


@pytest.mark.slow
def test_task_timeout_stops_the_stage_process_group(tmp_path: Path):
    import psutil
    from prefect import flow

    from flows.tasks import run_stage

    project = _project(tmp_path / "p", 300)

    @flow
    def slow_stage() -> dict:
        return run_stage.with_options(timeout_seconds=15)("train", str(project), "")

    state = slow_stage(return_state=True)
    assert state.is_failed()
    pid = int((project / "stage.pid").read_text())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the stage process {pid} outlived the task timeout")
    assert not (project / "out.txt").exists()
