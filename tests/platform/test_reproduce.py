"""A version's reproduction record: git state, the lock digest, and the metric comparison."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components.reproduce import ReproduceError, code_state, compare_metrics, version_record


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _project(root: Path) -> Path:
    root.mkdir()
    for name in ("dvc.lock", "dvc.yaml", "params.yaml"):
        (root / name).write_text(f"{name}: 1\n")
    (root / "eval").mkdir()
    (root / "eval" / "metrics.json").write_text('{"systems": {}}\n')
    return root


def test_clean_checkout_records_its_commit_and_no_diff(tmp_path: Path):
    project = _project(tmp_path / "p")
    _git(project, "init", "-q")
    _git(project, "add", ".")
    _git(project, "commit", "-qm", "x")
    state = code_state(project)
    assert (
        len(state["git_commit"]) == 40
        and state["git_dirty"] is False
        and state["git_diff_sha256"] is None
    )


def test_dirty_checkout_is_flagged_with_a_digest_that_follows_the_diff(tmp_path: Path):
    project = _project(tmp_path / "p")
    _git(project, "init", "-q")
    _git(project, "add", ".")
    _git(project, "commit", "-qm", "x")
    (project / "params.yaml").write_text("params.yaml: 2\n")
    first = code_state(project)
    (project / "params.yaml").write_text("params.yaml: 3\n")
    second = code_state(project)
    assert first["git_dirty"] and second["git_dirty"]
    assert first["git_diff_sha256"] != second["git_diff_sha256"]


def test_record_outside_git_still_pins_the_lock(tmp_path: Path):
    record = version_record(_project(tmp_path / "p"))
    assert record["git_commit"] is None and len(record["dvc_lock_sha256"]) == 64


def test_record_refuses_a_project_without_a_lock(tmp_path: Path):
    project = _project(tmp_path / "p")
    (project / "dvc.lock").unlink()
    with pytest.raises(ReproduceError, match="dvc.lock"):
        version_record(project)


def test_metric_comparison_ignores_latency_and_names_each_difference():
    recorded = {"systems": {"regionops": {"page_r1": 0.5, "anls": None, "latency_ms_p50": 3.0}}}
    same = {"systems": {"regionops": {"page_r1": 0.5, "anls": None, "latency_ms_p50": 9.0}}}
    assert compare_metrics(recorded, same) == []
    other = {"systems": {"regionops": {"page_r1": 0.25, "anls": None}}}
    assert compare_metrics(recorded, other) == ["regionops.page_r1: recorded 0.5, re-scored 0.25"]
    assert compare_metrics(recorded, {"systems": {}}) == ["regionops: not re-scored"]


def test_record_round_trips_through_mlflow(tmp_path: Path):
    from mlflow import MlflowClient

    from components.reproduce import _fetch_record, record_version

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.create_registered_model("m")
    mv = client.create_model_version(
        "m", source=(tmp_path / "artifacts").as_uri(), run_id=run.info.run_id
    )
    project = _project(tmp_path / "p")
    record = record_version(client, "m", mv.version, run.info.run_id, project)
    out = tmp_path / "out"
    out.mkdir()
    tags = _fetch_record(client, "m", mv.version, out)
    assert tags["repro.dvc_lock_sha256"] == record["dvc_lock_sha256"]
    assert (out / "dvc.lock").read_text() == "dvc.lock: 1\n"
    assert (out / "recorded_metrics.json").read_text() == '{"systems": {}}\n'
    # a version registered without the record is refused with the reason
    bare = client.create_model_version(
        "m", source=(tmp_path / "artifacts").as_uri(), run_id=run.info.run_id
    )
    with pytest.raises(ReproduceError, match="no reproduction record"):
        _fetch_record(client, "m", bare.version, tmp_path)
