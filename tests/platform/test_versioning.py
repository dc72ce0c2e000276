"""DVC stage running: run when stale, skip when current, fail with the stage's own message."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components import versioning

DVC = str(Path(sys.executable).parent / "dvc")


@pytest.fixture()
def dvc_project(tmp_path: Path) -> Path:
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "src.txt").write_text("hello\n")
    copy = "import shutil; shutil.copy('src.txt', 'out.txt')"
    fail = "import sys; sys.exit('the stage says: corpus is empty')"
    stages = {
        "copy": {"cmd": f'{sys.executable} -c "{copy}"', "deps": ["src.txt"], "outs": ["out.txt"]},
        "broken": {
            "cmd": f'{sys.executable} -c "{fail}"',
            "deps": ["out.txt"],
            "outs": ["never.txt"],
        },
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    return tmp_path


def test_stage_runs_then_skips_then_reruns_on_change(dvc_project: Path):
    assert versioning.stage_names(dvc_project) == ["copy", "broken"]
    assert versioning.repro_stage("copy", dvc_project).ran is True
    assert (dvc_project / "out.txt").read_text() == "hello\n"
    assert versioning.repro_stage("copy", dvc_project).ran is False
    (dvc_project / "src.txt").write_text("changed\n")
    assert versioning.repro_stage("copy", dvc_project).ran is True
    assert (dvc_project / "out.txt").read_text() == "changed\n"


def test_failed_stage_carries_its_own_message(dvc_project: Path):
    versioning.repro_stage("copy", dvc_project)
    with pytest.raises(versioning.StageFailed, match="the stage says: corpus is empty"):
        versioning.repro_stage("broken", dvc_project)


def test_push_to_local_remote_and_data_hash(dvc_project: Path, tmp_path_factory):
    remote = tmp_path_factory.mktemp("remote")
    versioning.repro_stage("copy", dvc_project)
    versioning.ensure_remote(dvc_project, str(remote))
    versioning.push(dvc_project)
    pushed = [p for p in remote.rglob("*") if p.is_file()]
    assert pushed, "dvc push wrote nothing to the remote"
    assert versioning.data_hash(dvc_project, "out.txt") is not None
    assert versioning.data_hash(dvc_project, "missing.txt") is None


SLEEPER = """
import os, sys, time
open('stage.pid', 'w').write(str(os.getpid()))
print('progress train step=3/10 train/loss=0.5', flush=True)
print('to stderr', file=sys.stderr, flush=True)
time.sleep(120)
open('slow.txt', 'w').write('done')
"""


@pytest.fixture()
def slow_project(dvc_project: Path) -> Path:
    (dvc_project / "sleeper.py").write_text(SLEEPER)
    spec = yaml.safe_load((dvc_project / "dvc.yaml").read_text())
    spec["stages"]["slow"] = {
        "cmd": f"{sys.executable} sleeper.py",
        "deps": ["sleeper.py"],
        "outs": ["slow.txt"],
    }
    (dvc_project / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dvc_project


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, seconds: float = 10) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not _gone(pid):
        time.sleep(0.2)
    return _gone(pid)


def test_stage_lines_reach_the_sink_stdout_and_stderr(dvc_project: Path):
    (dvc_project / "talk.py").write_text(
        "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\n"
        "open('said.txt', 'w').write('x')\n"
    )
    spec = yaml.safe_load((dvc_project / "dvc.yaml").read_text())
    spec["stages"]["talk"] = {
        "cmd": f"{sys.executable} talk.py",
        "deps": ["talk.py"],
        "outs": ["said.txt"],
    }
    (dvc_project / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    lines: list[str] = []
    assert versioning.repro_stage("talk", dvc_project, on_line=lines.append).ran
    assert "to stdout" in lines and "to stderr" in lines
    assert any("talk" in line for line in lines)  # dvc's own "Running stage 'talk'" line too


@pytest.mark.slow
def test_stage_timeout_stops_the_stage_process_and_frees_dvc_lock(slow_project: Path):
    lines: list[str] = []
    with pytest.raises(versioning.StageTimeout, match="limit"):
        versioning.repro_stage("slow", slow_project, on_line=lines.append, timeout=8)
    assert "progress train step=3/10 train/loss=0.5" in lines  # output arrived while it ran
    pid = int((slow_project / "stage.pid").read_text())
    assert _wait_gone(pid), f"stage process {pid} outlived its timeout"
    assert not (slow_project / "slow.txt").exists()
    # DVC's lock is free: another stage reproduces at once.
    assert versioning.repro_stage("copy", slow_project).ran is True


@pytest.mark.slow
def test_failing_line_sink_stops_the_stage_process(slow_project: Path):
    def sink(line: str) -> None:
        if "progress" in line:
            raise RuntimeError("the orchestrator went away")

    with pytest.raises(RuntimeError, match="went away"):
        versioning.repro_stage("slow", slow_project, on_line=sink)
    pid = int((slow_project / "stage.pid").read_text())
    assert _wait_gone(pid), f"stage process {pid} outlived the error"
