"""The one Lightning run both trainers go through: resume, MLflow run, checkpoints, fit, run record.

``train_retriever`` (components.training.train) and ``train_reader`` (components.reader.train)
each build their LightningModule, datamodule, resume key and MLflow tags, then call
``run_training``; what they do with the fitted weights (export, extra validation) stays theirs.
Shared here, so the two cannot drift apart again:

* checkpoints under ``$REGIONOPS_HOME/checkpoints/<resume key>`` (outside the DVC outputs, which DVC
  deletes before a rerun), ``last.ckpt`` resumed only when ``components.training.resume`` allows;
* the MLflow run: the experiment created by ``ensure_experiment``, artifacts at
  ``Settings.artifact_location``, the lineage tags every training run carries, the corpus as dataset
  inputs, and the run id kept beside the checkpoint folder so a resumed run names the run it continues;
* the run record (``RUN_RECORD_KEYS``) and its atomic write (``write_run_record``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger

from components.data.corpus import Corpus
from components.settings import Settings
from components.tracking import (
    ensure_experiment,
    log_dataset,
    page_rows,
    question_rows,
    system_metrics,
)
from components.training.progress import StepProgress
from components.training.resume import resumable

log = logging.getLogger(__name__)

PARENT_RUN_ENV = "REGIONOPS_PARENT_RUN_ID"
# Keys every training's run record starts with (each trainer adds its own after them).
RUN_RECORD_KEYS = (
    "run_id",
    "experiment_id",
    "tracking_uri",
    "steps",
    "resumed_from",
    "resume_rejected",
    "seconds",
)


def corpus_digest(corpus: Corpus) -> str:
    """Hash of the records the trainer sees (pages and questions as loaded, after quarantine)."""
    digest = hashlib.sha256()
    for page in sorted(corpus.pages, key=lambda p: p.id):
        digest.update(page.model_dump_json().encode())
    for q in sorted(corpus.questions, key=lambda q: q.id):
        digest.update(q.model_dump_json().encode())
    return digest.hexdigest()[:16]


def log_corpus_inputs(client, run_id: str, corpus: Corpus) -> None:
    """The corpus the run trained on, as MLflow dataset inputs (pages and questions, one digest)."""
    digest = corpus_digest(corpus)
    name = Path(corpus.root).name
    log_dataset(
        client,
        run_id,
        page_rows(corpus.pages),
        name=f"{name}/pages",
        digest=digest,
        source=corpus.root,
        context="training",
    )
    log_dataset(
        client,
        run_id,
        question_rows(corpus.questions),
        name=f"{name}/questions",
        digest=digest,
        source=corpus.root,
        context="training",
    )


def quiet_expected_warnings() -> None:
    # Frozen MiniLM layers stay in eval mode on purpose (no dropout on untrained features), and a
    # resumed run finds its own checkpoint folder non-empty: neither is a problem worth a warning.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


@dataclass
class RunSpec:
    """The MLflow run and the step cadence of one training (the trainer settings come apart)."""

    stage: str  # "train" | "train-reader": the regionops.stage tag and the progress lines' name
    experiment: str
    run_name: str
    corpus: (
        Corpus  # logged as the run's dataset inputs; its digest is the regionops.data_digest tag
    )
    params_digest: str
    max_steps: int  # 0: no fit (the untrained weights are what the caller exports)
    checkpoint_every_n_steps: int
    log_every_n_steps: int
    tags: dict[str, str] = field(
        default_factory=dict
    )  # the trainer's own tags, beside the shared ones
    hyperparams: dict[str, Any] = field(default_factory=dict)
    callbacks: Sequence[
        Callback
    ] = ()  # beside the last.ckpt checkpoint and the step progress lines
    trainer_options: dict[str, Any] = field(default_factory=dict)  # other L.Trainer arguments
    save_last_at_end: bool = (
        False  # last.ckpt at the final step, not the last multiple of the cadence
    )


@dataclass
class TrainingRun:
    """A finished fit: the trainer and logger (for the caller's export) and the run record's start."""

    trainer: L.Trainer
    logger: MLFlowLogger
    checkpoint_dir: Path
    seconds: float  # of the fit (the record keeps it rounded)
    record: dict[str, Any]


def checkpoint_dir(settings: Settings, resume_key: str) -> Path:
    """Where a training with this resume key keeps its checkpoints (outside every DVC output)."""
    return settings.home / "checkpoints" / resume_key


def run_training(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    trainer_section,
    run: RunSpec,
    resume_key: str,
    settings: Settings,
) -> TrainingRun:
    """Fit ``module`` on ``datamodule`` (or resume), logged to MLflow; returns the run and its record.

    ``trainer_section`` is a params section with ``accelerator``, ``devices``, ``strategy`` and
    ``precision`` (``train`` for the retriever, ``reader.trainer`` for the reader); ``resume_key``
    names the checkpoint folder under ``$REGIONOPS_HOME/checkpoints``.
    """
    quiet_expected_warnings()
    ckpt_dir = checkpoint_dir(settings, resume_key)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.ckpt"
    resume_from, rejected = (
        resumable(last, module.state_dict(), run.max_steps) if run.max_steps else (None, None)
    )

    tags = {
        "regionops.stage": run.stage,
        "regionops.params_digest": run.params_digest,
        "regionops.data_digest": corpus_digest(run.corpus),
        "regionops.checkpoint_dir": str(ckpt_dir),
        **run.tags,
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
    ensure_experiment(MlflowClient(tracking_uri=settings.tracking_uri), run.experiment)
    logger = MLFlowLogger(
        experiment_name=run.experiment,
        tracking_uri=settings.tracking_uri,
        artifact_location=settings.artifact_location,
        run_name=run.run_name,
        tags=tags,
    )
    logger.log_hyperparams(run.hyperparams)
    log_corpus_inputs(logger.experiment, logger.run_id, run.corpus)
    previous_run.write_text(json.dumps({"run_id": logger.run_id}))

    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="step{step}",
        save_last=True,
        save_top_k=1,
        every_n_train_steps=run.checkpoint_every_n_steps,
        auto_insert_metric_name=False,
    )
    trainer = L.Trainer(
        max_steps=run.max_steps,
        accelerator=trainer_section.accelerator,
        devices=trainer_section.devices,
        strategy=trainer_section.strategy,
        precision=trainer_section.precision,
        logger=logger,
        # a parseable step/loss line for whoever runs this stage (Prefect forwards it)
        callbacks=[checkpoint, *run.callbacks, StepProgress(run.stage, run.log_every_n_steps)],
        default_root_dir=ckpt_dir,
        log_every_n_steps=run.log_every_n_steps,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=None,  # validation by optimizer steps (val_check_interval)
        **run.trainer_options,
    )
    started = time.perf_counter()
    if resume_from is not None:
        log.warning("%s: resuming from %s", run.stage, resume_from)
    with system_metrics(logger.run_id, settings.tracking_uri):  # CPU, memory, disk: system/* charts
        if run.max_steps:
            trainer.fit(
                module,
                datamodule=datamodule,
                ckpt_path=str(resume_from) if resume_from else None,
                weights_only=True,
            )
    seconds = time.perf_counter() - started
    if run.save_last_at_end and run.max_steps:
        # A rerun asking for the same steps then has nothing to redo; the full state (optimizer
        # and loops too, not weights only) so that a rerun asking for more steps resumes exactly.
        trainer.save_checkpoint(last, weights_only=False)
    record = {
        "run_id": logger.run_id,
        "experiment_id": logger.experiment_id,
        "tracking_uri": settings.tracking_uri,
        "steps": int(trainer.global_step),
        "resumed_from": str(resume_from) if resume_from else None,
        "resume_rejected": rejected,
        "seconds": round(seconds, 2),
    }
    return TrainingRun(
        trainer=trainer, logger=logger, checkpoint_dir=ckpt_dir, seconds=seconds, record=record
    )


def write_run_record(record: dict[str, Any], path: Path) -> None:
    """Write the run record as JSON through a temp file, so a crash never leaves half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
