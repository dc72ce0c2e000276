"""A found last.ckpt is resumed only when it is this model's, readable and not past max_steps."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from components.settings import get_settings
from components.training.resume import checkpoint_problem, resumable
from components.training.train import checkpoint_key, train_retriever

STATE = {"model.w": torch.zeros(2, 3), "model.b": torch.zeros(3)}


class _RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _save(path: Path, state_dict: dict, step: int = 2) -> Path:
    torch.save({"state_dict": state_dict, "global_step": step, "epoch": 0}, path)
    return path


def test_checkpoint_problem_names_what_is_wrong(tmp_path):
    assert checkpoint_problem(_save(tmp_path / "ok.ckpt", STATE), STATE, max_steps=5) is None
    (tmp_path / "garbage.ckpt").write_bytes(b"PK\x03\x04 half a zip")
    assert "unreadable checkpoint" in checkpoint_problem(tmp_path / "garbage.ckpt", STATE, 5)
    foreign = _save(tmp_path / "foreign.ckpt", {"encoder.layer.weight": torch.zeros(2)})
    assert "foreign checkpoint" in checkpoint_problem(foreign, STATE, 5)
    reshaped = _save(
        tmp_path / "shape.ckpt", {"model.w": torch.zeros(3, 3), "model.b": torch.zeros(3)}
    )
    assert "has shape (3, 3)" in checkpoint_problem(reshaped, STATE, 5)
    assert "past max_steps=5" in checkpoint_problem(
        _save(tmp_path / "long.ckpt", STATE, step=9), STATE, 5
    )
    torch.save([1, 2, 3], tmp_path / "list.ckpt")
    assert "not a Lightning training checkpoint" in checkpoint_problem(
        tmp_path / "list.ckpt", STATE, 5
    )


def test_a_checkpoint_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    payload = _RunsCode()
    payload.marker = str(tmp_path / "pwned")
    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"state_dict": payload, "global_step": 1}))
    assert "unreadable checkpoint" in checkpoint_problem(tmp_path / "evil.ckpt", STATE, 5)
    assert not (tmp_path / "pwned").exists()


def test_rejected_checkpoint_is_moved_aside_not_deleted(tmp_path):
    last = tmp_path / "last.ckpt"
    last.write_bytes(b"corrupt")
    found, reason = resumable(last, STATE, max_steps=5)
    assert found is None and "unreadable" in reason
    [aside] = list(tmp_path.glob("last.ckpt.rejected-*"))
    assert aside.read_bytes() == b"corrupt" and not last.exists()
    good = _save(last, STATE)
    assert resumable(good, STATE, max_steps=5) == (good, None)


def test_checkpoint_key_ignores_max_steps_by_design(tiny_params, tiny_corpus):
    """Intended: more steps continue the same run (components.training.resume explains the caveat)."""
    longer = tiny_params.model_copy(
        update={"train": tiny_params.train.model_copy(update={"max_steps": 999})}
    )
    assert checkpoint_key(longer, tiny_corpus) == checkpoint_key(tiny_params, tiny_corpus)


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = get_settings()
    s.home.mkdir(parents=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", s.tracking_uri)
    return s


@pytest.mark.slow
def test_corrupt_last_ckpt_falls_back_to_a_fresh_run(tiny_params, tiny_corpus, settings, tmp_path):
    import mlflow

    ckpt_dir = settings.home / "checkpoints" / checkpoint_key(tiny_params, tiny_corpus)
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / "last.ckpt").write_bytes(b"PK\x03\x04 truncated by a crash")
    result = train_retriever(tiny_params, tiny_corpus, tmp_path / "model", settings)
    assert result["resumed_from"] is None and "unreadable checkpoint" in result["resume_rejected"]
    assert result["steps"] == tiny_params.train.max_steps
    assert [p.read_bytes() for p in ckpt_dir.glob("last.ckpt.rejected-*")] == [
        b"PK\x03\x04 truncated by a crash"
    ]
    run = mlflow.MlflowClient(settings.tracking_uri).get_run(result["run_id"])
    assert "unreadable checkpoint" in run.data.tags["regionops.resume_rejected"]


@pytest.mark.slow
def test_checkpoint_past_max_steps_is_not_resumed(tiny_params, tiny_corpus, settings, tmp_path):
    n = tiny_params.train.max_steps
    train_retriever(tiny_params, tiny_corpus, tmp_path / "long", settings)
    shorter = tiny_params.model_copy(
        update={"train": tiny_params.train.model_copy(update={"max_steps": n // 2})}
    )
    result = train_retriever(shorter, tiny_corpus, tmp_path / "short", settings)
    assert (
        result["steps"] == n // 2 and result["resumed_from"] is None
    )  # not n: asked for fewer steps
    assert f"past max_steps={n // 2}" in result["resume_rejected"]
