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
        "broken": {"cmd": f'{sys.executable} -c "{fail}"', "deps": ["out.txt"], "outs": ["never.txt"]},
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
