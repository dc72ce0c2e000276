"""Lightning training of the retriever: a tiny run end to end, MLflow logging, resume from last.ckpt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch

from components.loss.contrastive import global_infonce
from components.model.io import load_retriever
from components.model.retriever import late_interaction_page_scores
from components.settings import get_settings
from components.training.datamodule import RetrievalDataModule, build_samples
from components.training.module import RetrieverModule
from components.training.train import checkpoint_key, corpus_digest, train_retriever
from tests.conftest import REPO


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """A private runtime home per test, so checkpoints of one test never resume another."""
    monkeypatch.setenv("REGIONOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = get_settings()
    s.home.mkdir(parents=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", s.tracking_uri)
    return s


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    return tiny_corpus


def test_samples_and_batches(corpus, tiny_params):
    from components.model.retriever import build_retriever

    samples, skipped = build_samples(
        corpus, "train", tiny_params.model.grid, use_hard_negatives=True
    )
    assert samples and skipped["no_gold_page"] == skipped["gold_page_not_in_corpus"] == 0
    # Image queries ("this ship") are counted, not silently dropped.
    assert skipped["image_query"] == sum(bool(q.query_image) for q in corpus.questions_in("train"))
    train_pages = {p.id for p in corpus.pages_in("train")}
    assert all(
        set(s.hard_negatives) <= train_pages and s.page_id not in s.hard_negatives for s in samples
    )
    labelled = [s for s in samples if s.box_cells is not None]
    assert labelled and all(s.box_cells.any() for s in labelled)
    model = build_retriever(tiny_params.model)
    data = RetrievalDataModule(tiny_params, corpus, model)
    batch = next(iter(data.train_dataloader()))
    b = tiny_params.train.batch_size
    assert batch["input_ids"].shape[0] == b and batch["targets"].shape == (b,)
    n_pages = batch["pixels"].shape[0]
    assert (
        len(batch["page_ids"]) == len(set(batch["page_ids"])) == n_pages
    )  # each page once per batch
    assert int(batch["targets"].max()) < n_pages
    assert batch["box_cells"].shape == (b, tiny_params.model.grid**2)
    assert (batch["box_cells"].any(-1) == batch["has_box"]).all()

    # One optimisation step through the LightningModule: finite loss, gradients reach the cell encoder.
    cell_params = tiny_params.model_copy(deep=True)
    cell_params.train.global_score = "max_cell"
    module = RetrieverModule(cell_params, model)
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    loss.backward()
    # Pretrained space (ADR 23): the zero-initialised output layers of both residuals learn first.
    assert module.model.cells.residual.weight.grad.abs().sum() > 0
    assert module.model.query_proj.residual.weight.grad.abs().sum() > 0

    # train.global_score=late_interaction (the default): the global loss ranks MaxSim page
    # scores, the local loss and the heatmap are unchanged.
    late_params = tiny_params.model_copy(deep=True)
    late_params.train.global_score = "late_interaction"
    late = RetrieverModule(late_params, model)
    module.eval(), late.eval()  # no dropout: both see the same vectors
    with torch.no_grad():
        by_cell, _, cells, _ = module._loss(batch)
        by_tokens, _, _, _ = late._loss(batch)
        tokens = model.encode_query_token_vectors(batch["input_ids"], batch["attention_mask"])
    page = late_interaction_page_scores(tokens, batch["attention_mask"], cells)
    expected = global_infonce(page, batch["targets"], tiny_params.train.tau_global)
    assert float(by_tokens.global_) == pytest.approx(float(expected), rel=1e-5)
    assert float(by_tokens.global_) != pytest.approx(float(by_cell.global_), rel=1e-3)
    assert float(by_tokens.local) == pytest.approx(float(by_cell.local), rel=1e-5)


@pytest.mark.slow
def test_train_tiny_exports_and_logs(corpus, tiny_params, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONOPS_PARENT_RUN_ID", "parent-123")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")  # a tiny run lasts seconds
    result = train_retriever(tiny_params, corpus, tmp_path / "model", settings)
    assert result["steps"] == tiny_params.train.max_steps and result["resumed_from"] is None
    assert json.loads((tmp_path / "model" / "train_run.json").read_text()) == result
    assert {
        "train/loss",
        "val/loss",
        "val/page_r1",
        "val/fused",
        "val/fused_page_r1",
        "val/fused_region_hit1",
    } <= set(result["final"])
    model = load_retriever(tmp_path / "model" / "retriever")
    assert model.fingerprint == result["fingerprint"]

    run = mlflow.MlflowClient(settings.tracking_uri).get_run(result["run_id"])
    assert run.info.experiment_id == result["experiment_id"]
    assert run.data.params["train.max_steps"] == str(tiny_params.train.max_steps)
    assert run.data.params["model.grid"] == str(tiny_params.model.grid)
    tags = run.data.tags
    assert tags["regionops.parent_run_id"] == "parent-123"
    assert tags["regionops.params_digest"] == tiny_params.digest()
    from components.model.text_encoder import sha256_file

    encoder = Path(tiny_params.model.text_encoder)  # the tests' tiny encoder folder
    assert tags["regionops.text_encoder.name"] == str(encoder)
    assert tags["regionops.text_encoder.sha256"] == sha256_file(encoder / "model.safetensors")
    assert "train/loss" in run.data.metrics and "val/page_r1" in run.data.metrics
    # lineage: a name that says what the run changed, the corpus as dataset inputs, system metrics
    assert tags["mlflow.runName"].startswith(f"train seed={tiny_params.seed} ")
    assert (
        "n_docs=14" in tags["mlflow.runName"] and len(tags["mlflow.runName"]) <= 120
    )  # a TINY override
    inputs = {d.dataset.name.rsplit("/", 1)[-1]: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"pages", "questions"}
    assert inputs["pages"].dataset.digest == corpus_digest(corpus)
    assert {t.value for t in inputs["pages"].tags} == {"training"}
    assert any(m.startswith("system/cpu_utilization") for m in run.data.metrics), sorted(
        run.data.metrics
    )
    experiment = mlflow.MlflowClient(settings.tracking_uri).get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # opens on runs
    ckpt_dir = settings.home / "checkpoints" / checkpoint_key(tiny_params, corpus)
    assert (ckpt_dir / "last.ckpt").is_file()
    # Early stopping by selection: the exported weights are the best val/select (fused) checkpoint's,
    # never one from before pseudo-labels began.
    assert tiny_params.train.export == "best" and (ckpt_dir / "best.ckpt").is_file()
    best = torch.load(ckpt_dir / "best.ckpt", map_location="cpu", weights_only=True)
    assert result["exported_step"] == best["global_step"] <= result["steps"]
    assert best["global_step"] >= tiny_params.train.pseudo_label_warmup_steps
    exported = model.state_dict()
    for name, tensor in best["state_dict"].items():
        assert torch.equal(exported[name.removeprefix("model.")], tensor)


@pytest.mark.slow
def test_more_steps_resume_from_last_checkpoint(corpus, tiny_params, settings, tmp_path):
    n = tiny_params.train.max_steps
    first = train_retriever(tiny_params, corpus, tmp_path / "a", settings)
    longer = tiny_params.model_copy(
        update={"train": tiny_params.train.model_copy(update={"max_steps": 2 * n})}
    )
    assert checkpoint_key(longer, corpus) == checkpoint_key(
        tiny_params, corpus
    )  # max_steps is not in the key
    second = train_retriever(longer, corpus, tmp_path / "b", settings)
    assert first["steps"] == n and second["steps"] == 2 * n
    assert second["resumed_from"].endswith("last.ckpt")
    run = mlflow.MlflowClient(settings.tracking_uri).get_run(second["run_id"])
    assert run.data.tags["regionops.resumed_from_run_id"] == first["run_id"]
    # A change that alters training gets a fresh checkpoint folder.
    other = tiny_params.model_copy(update={"seed": tiny_params.seed + 1})
    assert checkpoint_key(other, corpus) != checkpoint_key(tiny_params, corpus)


_CHILD = """
import sys
from pathlib import Path
from components.config import load_params
from components.data.corpus import load_corpus
from components.settings import configure_environment
from components.training.train import train_retriever
params = load_params(sys.argv[1], sys.argv[4:])
train_retriever(params, load_corpus(sys.argv[2]), Path(sys.argv[3]), configure_environment())
"""


def _global_step(ckpt: Path) -> int:
    import torch

    # Our own file, read tensors-and-primitives only.
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])


@pytest.mark.slow
def test_killed_training_resumes_from_last_checkpoint(corpus, tiny_params, settings, tmp_path):
    """SIGKILL a training process after its first checkpoint; the rerun continues from last.ckpt."""
    from tests.conftest import TINY_OVERRIDES

    overrides = TINY_OVERRIDES + [
        "train.max_steps=400",
        "train.checkpoint_every_n_steps=3",
        "train.val_check_interval=1000",
    ]
    from components.config import load_params

    params = load_params(REPO / "params.yaml", overrides)
    ckpt = settings.home / "checkpoints" / checkpoint_key(params, corpus) / "last.ckpt"
    env = {**os.environ, "REGIONOPS_HOME": str(settings.home), "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(REPO / "params.yaml"),
            str(corpus.root),
            str(tmp_path / "killed"),
            *overrides,
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ckpt.is_file():
            assert child.poll() is None, (
                f"training exited early: {child.stderr.read().decode()[-2000:]}"
            )
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
        time.sleep(1.0)  # let it train past the checkpoint: the kill lands mid-run
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "train_run.json").exists()  # it really died mid-training
    killed_at = _global_step(ckpt)
    assert 3 <= killed_at < 400

    resumed = params.model_copy(
        update={"train": params.train.model_copy(update={"max_steps": killed_at + 3})}
    )
    result = train_retriever(resumed, corpus, tmp_path / "resumed", settings)
    assert result["resumed_from"] == str(ckpt)
    assert result["steps"] == killed_at + 3  # global_step continued from the checkpoint, not from 0
    assert _global_step(ckpt) == killed_at + 3
