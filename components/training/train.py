"""Train the region retriever with Lightning, log to MLflow, resume from last.ckpt, export safetensors.

Checkpoints live under ``$REGIONOPS_HOME/checkpoints/<digest>``, outside ``out_dir``: DVC deletes
a stage's outputs before rerunning it, and a crashed run must find its ``last.ckpt`` again.
The digest covers the data and every parameter that changes the training trajectory, but not
``train.max_steps``, so asking for more steps continues the same run (intended; the caveats and
what happens to a corrupt, foreign or too-long ``last.ckpt`` are in ``components.training.resume``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger

from components.config import Params
from components.data.corpus import Corpus
from components.model.io import save_retriever
from components.settings import Settings
from components.tracking import (
    changed_params_name,
    ensure_experiment,
    log_dataset,
    page_rows,
    question_rows,
    system_metrics,
)
from components.training.datamodule import RetrievalDataModule
from components.training.module import RetrieverModule
from components.training.progress import StepProgress
from components.training.real_pages import with_real_pages
from components.training.resume import resumable

log = logging.getLogger(__name__)

PARENT_RUN_ENV = "REGIONOPS_PARENT_RUN_ID"
# Parameters that do not change what the weights become at a given step: excluded from the resume key.
_NOT_TRAJECTORY = (
    # Intended: more steps continue the run (the LR schedule then stretches; see training.resume).
    "train.max_steps",
    "train.num_workers",
    "train.log_every_n_steps",
    "train.val_check_interval",
    "train.checkpoint_every_n_steps",
    "train.export",
)
_TRAINING_SECTIONS = ("seed", "data.", "validate.", "model.", "train.")


def corpus_digest(corpus: Corpus) -> str:
    """Hash of the records the trainer sees (pages and questions as loaded, after quarantine)."""
    digest = hashlib.sha256()
    for page in sorted(corpus.pages, key=lambda p: p.id):
        digest.update(page.model_dump_json().encode())
    for q in sorted(corpus.questions, key=lambda q: q.id):
        digest.update(q.model_dump_json().encode())
    return digest.hexdigest()[:16]


# Packages whose code decides what the weights become: part of the resume key, so a run of changed
# code never resumes (and exports) weights a previous version trained (ADR 23).
_TRAINING_CODE = ("components/model", "components/loss", "components/training")


def code_digest(root: Path | None = None) -> str:
    """sha256 over the Python sources of the training code (path + bytes, sorted by path)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for package in _TRAINING_CODE:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def checkpoint_key(params: Params, corpus: Corpus, code: str | None = None) -> str:
    """Resume key: trajectory params + data digest + training code digest (``code_digest``)."""
    flat = {
        k: v
        for k, v in params.flat().items()
        if k.startswith(_TRAINING_SECTIONS) and k not in _NOT_TRAJECTORY
    }
    blob = json.dumps(
        {"params": flat, "data": corpus_digest(corpus), "code": code if code is not None else code_digest()},
        sort_keys=True, default=str,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def log_corpus_inputs(client, run_id: str, corpus: Corpus) -> None:
    """The corpus the run trained on, as MLflow dataset inputs (pages and questions, one digest)."""
    digest = corpus_digest(corpus)
    name = Path(corpus.root).name
    log_dataset(client, run_id, page_rows(corpus.pages), name=f"{name}/pages", digest=digest,
                source=corpus.root, context="training")
    log_dataset(client, run_id, question_rows(corpus.questions), name=f"{name}/questions", digest=digest,
                source=corpus.root, context="training")


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in sorted(metrics.items())}


def _quiet_expected_warnings() -> None:
    # Frozen MiniLM layers stay in eval mode on purpose (no dropout on untrained features), and a
    # resumed run finds its own checkpoint folder non-empty: neither is a problem worth a warning.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def _load_weights(module: RetrieverModule, path: Path) -> int:
    """Load a checkpoint's model weights into ``module`` (tensors only); returns its global step."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    return int(state.get("global_step", -1))


def train_retriever(params: Params, corpus: Corpus, out_dir: Path, settings: Settings) -> dict:
    """Fit (or resume) the retriever; export ``out_dir/retriever/`` and ``out_dir/train_run.json``."""
    t = params.train
    out_dir = Path(out_dir)
    _quiet_expected_warnings()
    corpus = with_real_pages(corpus, params, settings.home)
    L.seed_everything(params.seed, workers=True)
    module = RetrieverModule(params)
    data = RetrievalDataModule(params, corpus, module.model)
    module.fused_val = data.fused_val

    ckpt_dir = settings.home / "checkpoints" / checkpoint_key(params, corpus)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.ckpt"
    resume_from, rejected = resumable(last, module.state_dict(), t.max_steps) if t.max_steps else (None, None)

    tags = {
        "regionops.stage": "train",
        "regionops.params_digest": params.digest(),
        "regionops.data_digest": corpus_digest(corpus),
        "regionops.checkpoint_dir": str(ckpt_dir),
        **{f"regionops.{k}": v for k, v in module.model.text_info.tags().items()},
    }
    if os.environ.get(PARENT_RUN_ENV):
        tags["regionops.parent_run_id"] = os.environ[PARENT_RUN_ENV]
    if rejected:
        tags["regionops.resume_rejected"] = rejected
    previous_run = ckpt_dir.with_name(
        f"{ckpt_dir.name}.mlflow_run.json"
    )  # beside, not in, the checkpoint dir
    if resume_from is not None:
        tags["regionops.resumed_from"] = str(resume_from)
        if previous_run.is_file():
            tags["regionops.resumed_from_run_id"] = json.loads(previous_run.read_text())["run_id"]
    from mlflow import MlflowClient

    # Created here, not by the logger: marked as model development (the UI opens on the runs).
    ensure_experiment(MlflowClient(tracking_uri=settings.tracking_uri), params.registry.experiment)
    logger = MLFlowLogger(
        experiment_name=params.registry.experiment,
        tracking_uri=settings.tracking_uri,
        artifact_location=settings.artifact_location,
        run_name=changed_params_name("train", params),  # what this run changed, not a digest
        tags=tags,
    )
    logger.log_hyperparams(
        {**params.flat(), **{f"dataset.{k}": v for k, v in data.counts().items()}}
    )
    log_corpus_inputs(logger.experiment, logger.run_id, corpus)
    previous_run.write_text(json.dumps({"run_id": logger.run_id}))

    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="step{step}",
        save_last=True,
        save_top_k=1,
        every_n_train_steps=t.checkpoint_every_n_steps,
        auto_insert_metric_name=False,
    )
    # Early stopping by selection: keep the weights with the best val metric and export those, since
    # the model overfits training pages long before the loss says so (held-out templates in val).
    best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor="val/select",  # train.select_on (fused by default), pseudo-labels on
        mode="max",
        save_top_k=1,
        save_last=False,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        precision=t.precision,
        logger=logger,
        # a parseable step/loss line for whoever runs this stage (Prefect forwards it)
        callbacks=[checkpoint, best, StepProgress("train", t.log_every_n_steps)],
        default_root_dir=ckpt_dir,
        log_every_n_steps=t.log_every_n_steps,
        # Validate every N optimizer steps across epochs (epochs are short and uneven).
        val_check_interval=max(1, min(t.val_check_interval, t.max_steps)),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        enable_model_summary=True,
        # A bar only on a terminal: piped (dvc repro under Prefect) its redraws would be noise;
        # StepProgress logs the same figures as lines there.
        enable_progress_bar=sys.stderr.isatty(),
    )
    started = time.perf_counter()
    if resume_from is not None:
        log.warning("resuming from %s", resume_from)
    with system_metrics(logger.run_id, settings.tracking_uri):  # CPU, memory, disk: system/* charts
        if t.max_steps:
            trainer.fit(module, datamodule=data, ckpt_path=str(resume_from) if resume_from else None,
                        weights_only=True)
        # max_steps=0: no fit; the untrained weights are validated and exported as they are (ADR 23)
    seconds = time.perf_counter() - started
    final = dict(trainer.callback_metrics)
    exported_step = int(trainer.global_step)
    if t.export == "best" and best.best_model_path and Path(best.best_model_path).is_file():
        exported_step = _load_weights(module, Path(best.best_model_path))
        log.info("exporting the best val/select weights (%s, step %s)", best.best_model_score, exported_step)
    if data.val_samples:
        # Final figures on the validation split for the exported weights (best or last step).
        final.update(trainer.validate(module, datamodule=data, verbose=False)[0])
    final = _floats({k: v for k, v in final.items() if not k.endswith("_step")})

    export_dir = out_dir / "retriever"
    if trainer.is_global_zero:
        save_retriever(module.model.cpu(), export_dir)
    result = {
        "run_id": logger.run_id,
        "experiment_id": logger.experiment_id,
        "tracking_uri": settings.tracking_uri,
        "steps": int(trainer.global_step),
        "exported_step": exported_step,
        "resumed_from": str(resume_from) if resume_from else None,
        "resume_rejected": rejected,
        "fingerprint": module.model.fingerprint,
        "seconds": round(seconds, 2),
        "final": final,
    }
    if trainer.is_global_zero:
        client = logger.experiment
        client.log_metric(logger.run_id, "train/seconds", seconds)
        client.log_metric(logger.run_id, "train/exported_step", exported_step)
        client.set_tag(logger.run_id, "regionops.model_fingerprint", module.model.fingerprint)
        client.log_artifact(
            logger.run_id, str(export_dir / "config.json"), artifact_path="retriever"
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / ".train_run.json.tmp"
        tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, out_dir / "train_run.json")
    return result
