"""The whole chain on the embedded stack: Prefect's temporary server, DVC, SQLite MLflow.

Runs ``python -m flows.pipeline`` (what ``make run`` runs) on a tiny config in a temp
project, twice, and checks the champion answers; then checks that a failing stage
fails the flow with the stage's own message and registers nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import load_params

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _make_project(root: Path, overrides: list[str]) -> Path:
    """A copy of the DVC project (dvc.yaml, the code its stages depend on, tiny params)."""
    from tests.conftest import TINY_OVERRIDES

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(
        REPO / "components", root / "components", ignore=shutil.ignore_patterns("__pycache__")
    )
    params = load_params(REPO / "params.yaml", TINY_OVERRIDES + overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(params.to_dict(), sort_keys=False))
    subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "init", "--no-scm", "-q"], cwd=root, check=True
    )
    return root


def _env(home: Path) -> dict[str, str]:
    # PYTHONPATH: the stages' `regionops` console script runs this checkout's code, not an installed copy.
    env = dict(
        os.environ,
        REGIONOPS_HOME=str(home),
        PREFECT_HOME=str(home / "prefect"),
        PYTHONPATH=str(REPO),
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)  # mlflow.set_registry_uri() in this process exports it
    return env


def _run_pipeline(project: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.pipeline", "--project-dir", str(project)],
        cwd=REPO,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def _client(home: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    # An explicit registry URI: an earlier test's mlflow.set_registry_uri() is process-global.
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_pipeline_registers_a_champion_that_answers_and_a_rerun_changes_nothing(tmp_path: Path):
    home = tmp_path / "state"
    project = _make_project(tmp_path / "project", [])

    first = _run_pipeline(project, home)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert (project / "eval" / "metrics.json").exists()
    assert any((home / "dvc-remote").rglob("*")), "dvc push left the local remote empty"
    dvc = str(Path(sys.executable).parent / "dvc")
    # One push after the last stage: nothing the run made (model, index, reader, eval) is left unpushed.
    cloud = subprocess.run(
        [dvc, "status", "--cloud", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(cloud.stdout or "{}") == {}, cloud.stdout
    # Each stage's own output reaches the Prefect run log, training progress lines included.
    log = first.stdout + first.stderr
    assert "[train] " in log and "[train-reader] " in log
    assert "progress train step=" in log and "progress train-reader step=" in log

    # The version is reproducible from its record: outputs restored from the DVC remote by the
    # recorded dvc.lock, then re-scored to the same metrics (the command exits 1 when they differ).
    assert champion_tags_have_record(_client(home), project)
    reproduced = subprocess.run(
        [
            sys.executable,
            "-m",
            "components.cli",
            "reproduce",
            str(_client(home).get_model_version_by_alias("regionops", "champion").version),
            "--out",
            str(tmp_path / "reproduced"),
            "--params",
            str(project / "params.yaml"),
        ],
        cwd=REPO,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert reproduced.returncode == 0, reproduced.stdout[-3000:] + reproduced.stderr[-3000:]
    assert (tmp_path / "reproduced" / "data" / "index").is_dir()

    client = _client(home)
    champion = client.get_model_version_by_alias("regionops", "champion")
    versions_before = len(client.search_model_versions("name='regionops'"))

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{home / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/regionops@champion")
    # the answerer with the higher ANLS in this run's evaluation serves: the bundled reader or the text layer
    metrics = json.loads((project / "eval" / "metrics.json").read_text())["systems"]["regionops"]
    reader_wins = metrics["reader_anls"] > metrics["anls"]
    assert champion.tags["answerer"] == ("reader" if reader_wins else "text"), champion.tags[
        "answerer.reason"
    ]
    assert (model.unwrap_python_model().engine.reader is not None) == reader_wins
    answer = model.predict(
        [{"question": "What is the total revenue in the table?", "highlights": True}]
    )
    row = answer[0] if isinstance(answer, list) else answer.iloc[0].to_dict()
    assert isinstance(row["page_id"], str) and "#" in row["page_id"]
    box = list(row["boxes"][0])
    assert len(box) == 4 and 0.0 <= box[0] < box[2] <= 1.0 and 0.0 <= box[1] < box[3] <= 1.0
    assert "answer" in row
    assert len(row["highlights"]) == len(
        row["boxes"]
    )  # one crop per box, from the bundled page images

    status = subprocess.run(
        [dvc, "status", "--json"], cwd=project, capture_output=True, text=True, check=True
    )
    assert status.stdout.strip() in ("{}", ""), status.stdout

    second = _run_pipeline(project, home)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    log = second.stdout + second.stderr
    assert "Nothing changed" in log
    n_stages = len(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
    assert log.count("up to date, skipped") == n_stages
    assert ": ran" not in log
    assert len(client.search_model_versions("name='regionops'")) == versions_before
    assert client.get_model_version_by_alias("regionops", "champion").version == champion.version


def champion_tags_have_record(client, project: Path) -> bool:
    import hashlib

    tags = client.get_model_version_by_alias("regionops", "champion").tags
    lock = hashlib.sha256((project / "dvc.lock").read_bytes()).hexdigest()
    return tags.get("repro.dvc_lock_sha256") == lock and "repro.git_commit" in tags


def test_failing_stage_fails_the_flow_with_its_message_and_registers_nothing(tmp_path: Path):
    home = tmp_path / "state"
    # An invalid Lightning precision passes the config schema (it is a free string) but the
    # train stage itself rejects it: the flow must fail with Lightning's own message.
    project = _make_project(tmp_path / "project", ["train.precision=bogus-precision"])
    result = _run_pipeline(project, home)
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert "stage 'train' failed" in log
    assert "bogus-precision" in log
    from mlflow.exceptions import MlflowException

    try:
        versions = _client(home).search_model_versions("name='regionops'")
    except MlflowException:
        versions = []
    assert versions == []


def test_unknown_parameter_fails_at_start_up(tmp_path: Path):
    home = tmp_path / "state"
    project = _make_project(tmp_path / "project", [])
    tree = yaml.safe_load((project / "params.yaml").read_text())
    tree["train"]["max_stepz"] = 3
    (project / "params.yaml").write_text(yaml.safe_dump(tree))
    result = _run_pipeline(project, home)
    assert result.returncode != 0
    assert "train.max_stepz" in result.stdout + result.stderr
    assert not (project / "data").exists(), "a stage ran despite the bad parameter"
