"""Train the span reader with noise injection in Lightning; MLflow, last.ckpt resume, safetensors export.

Checkpoints live under ``$REGIONOPS_HOME/checkpoints/reader-<digest>`` (outside the DVC output,
which DVC deletes before a rerun). The digest covers the data, the retriever fingerprint and
every reader parameter except ``reader.max_steps``, so asking for more steps continues the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger

from components.config import Params
from components.data.corpus import Corpus
from components.reader.data import ReaderDataModule
from components.reader.io import build_reader, save_reader
from components.reader.module import ReaderModule
from components.settings import Settings
from components.tracking import (
    PARENT_RUN_TAG,
    changed_params_name,
    ensure_experiment,
    system_metrics,
)
from components.training.progress import StepProgress
from components.training.resume import resumable
from components.training.train import PARENT_RUN_ENV, corpus_digest, log_corpus_inputs

log = logging.getLogger(__name__)
_NOT_TRAJECTORY = ("reader.max_steps", "reader.checkpoint_every_n_steps", "reader.log_every_n_steps",
                   "reader.ablation_seeds")


def reader_checkpoint_key(params: Params, corpus: Corpus, retriever_fingerprint: str,
                          real_corpus: Corpus | None = None) -> str:
    flat = {k: v for k, v in params.flat().items()
            if (k == "seed" or k.startswith(("reader.", "model.text_encoder"))) and k not in _NOT_TRAJECTORY}
    data = {"params": flat, "data": corpus_digest(corpus), "retriever": retriever_fingerprint}
    if real_corpus is not None:
        data["real"] = corpus_digest(real_corpus)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_real_pages(params: Params, settings: Settings, model_dir: Path | None, retriever):
    """(corpus, index) of ``reader.real_train_dir`` or None with the reason (missing set / no model dir)."""
    from components.reader.real_pages import prepare_real_pages, resolve_set_dir

    if not params.reader.real_train_dir:
        return None, "reader.real_train_dir is empty"
    set_dir = resolve_set_dir(params.reader.real_train_dir, settings.home)
    if not (set_dir / "questions.jsonl").is_file():
        return None, f"{set_dir} has no questions.jsonl (build it with scripts/real_docs.py / make bench-real)"
    if model_dir is None:
        return None, "no retriever folder to index the real pages with"
    return prepare_real_pages(params, set_dir, Path(model_dir), retriever.fingerprint,
                              settings.home / "reader-pages"), str(set_dir)


def _retriever_run_id(model_dir: Path | None) -> str | None:
    """The MLflow run that trained the retriever in ``model_dir`` (``train_run.json``), if recorded."""
    record = Path(model_dir) / "train_run.json" if model_dir is not None else None
    if record is None or not record.is_file():
        return None
    return json.loads(record.read_text()).get("run_id") or None


def load_retrieval(model_dir: Path, index_dir: Path):
    """(retriever, index) as exported by `regionops train` and `regionops index build`."""
    from components.index.build import retriever_dir
    from components.index.region_index import RegionIndex
    from components.model.io import load_retriever

    retriever = load_retriever(retriever_dir(Path(model_dir)))
    return retriever, RegionIndex.load(Path(index_dir), expected_fingerprint=retriever.fingerprint)


def train_reader(params: Params, corpus: Corpus, model_dir: Path, index_dir: Path, out_dir: Path | None,
                 settings: Settings, retrieval=None, run_name: str | None = None,
                 real_pages=None) -> tuple[dict, object]:
    """Fit (or resume) the reader; export ``out_dir/reader/`` + ``out_dir/reader_run.json`` when ``out_dir``.

    Returns (run record, the trained SpanReader). ``retrieval`` = a loaded (retriever, index) pair;
    ``real_pages`` = a prepared (corpus, index) of real pages (else ``reader.real_train_dir``).
    """
    p = params.reader
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    L.seed_everything(params.seed, workers=True)
    retriever, index = retrieval or load_retrieval(model_dir, index_dir)
    reader = build_reader(p, params.model, index.dim)
    real, real_source = load_real_pages(params, settings, model_dir, retriever) if real_pages is None \
        else (real_pages, "given")
    if real is None:  # said, and recorded in reader_run.json: the reader then learns from synthetic pages only
        log.warning("reader: no real pages to train on (%s)", real_source)
    data = ReaderDataModule(params, corpus, index, retriever, reader.tokenizer, real)
    val_answers = {i: s.answers for i, s in enumerate(data.val_samples)}
    module = ReaderModule(params, reader, val_answers)

    key = reader_checkpoint_key(params, corpus, retriever.fingerprint, real[0] if real else None)
    ckpt_dir = settings.home / "checkpoints" / f"reader-{key}"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.ckpt"
    resume_from, rejected = resumable(last, module.state_dict(), p.max_steps)
    tags = {
        "regionops.stage": "train-reader",
        "regionops.params_digest": params.digest(),
        "regionops.data_digest": corpus_digest(corpus),
        "regionops.retriever_fingerprint": retriever.fingerprint,
        "regionops.checkpoint_dir": str(ckpt_dir),
        **{f"regionops.{k}": v for k, v in reader.text_info.tags().items()},
    }
    if resume_from is not None:
        tags["regionops.resumed_from"] = str(resume_from)
    if rejected:
        tags["regionops.resume_rejected"] = rejected
    if os.environ.get(PARENT_RUN_ENV):
        tags["regionops.parent_run_id"] = os.environ[PARENT_RUN_ENV]
    training_run = _retriever_run_id(model_dir)
    if training_run:  # the reader belongs to this candidate: nested under its retriever's run
        tags.update({PARENT_RUN_TAG: training_run, "regionops.training_run_id": training_run})
    from mlflow import MlflowClient

    ensure_experiment(MlflowClient(tracking_uri=settings.tracking_uri), params.registry.experiment)
    logger = MLFlowLogger(experiment_name=params.registry.experiment, tracking_uri=settings.tracking_uri,
                          artifact_location=settings.artifact_root.as_uri(),
                          run_name=run_name or changed_params_name("train-reader", params), tags=tags)
    # ρ and the distractor mix are reader.* params; the dataset counts say what the reader saw.
    logger.log_hyperparams({**{k: v for k, v in params.flat().items() if k.startswith(("seed", "reader."))},
                            **{f"dataset.{k}": v for k, v in data.counts().items()}})
    log_corpus_inputs(logger.experiment, logger.run_id, corpus)
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="step{step}", save_last=True, save_top_k=1,
                                 every_n_train_steps=p.checkpoint_every_n_steps, auto_insert_metric_name=False)
    trainer = L.Trainer(
        max_steps=p.max_steps, accelerator=params.train.accelerator, devices=params.train.devices,
        strategy=params.train.strategy, precision=params.train.precision, logger=logger,
        callbacks=[checkpoint, StepProgress("train-reader", p.log_every_n_steps)], default_root_dir=ckpt_dir, log_every_n_steps=p.log_every_n_steps,
        num_sanity_val_steps=0, enable_model_summary=False, enable_progress_bar=False,
        check_val_every_n_epoch=None, val_check_interval=p.max_steps,
    )
    started = time.perf_counter()
    if resume_from is not None:
        log.warning("resuming the reader from %s", resume_from)
    with system_metrics(logger.run_id, settings.tracking_uri):
        trainer.fit(module, datamodule=data, ckpt_path=str(resume_from) if resume_from else None,
                    weights_only=True)
    seconds = time.perf_counter() - started
    # last.ckpt at the final step, not the last multiple of the cadence: a rerun then has nothing to redo.
    trainer.save_checkpoint(last)
    final = {k: round(float(v), 6) for k, v in trainer.callback_metrics.items() if not k.endswith("_step")}
    record = {
        "run_id": logger.run_id, "tracking_uri": settings.tracking_uri, "steps": int(trainer.global_step),
        "resumed_from": str(resume_from) if resume_from else None, "resume_rejected": rejected,
        "seconds": round(seconds, 2),
        "final": final, "counts": data.counts(), "noise_rho": p.noise_rho,
        "train_contexts": p.train_contexts, "real_pages": real_source if real is not None else None,
        "real_pages_missing": None if real is not None else real_source,
        "hard_distractor_share": p.hard_distractor_share, "retriever_fingerprint": retriever.fingerprint,
    }
    logger.experiment.log_metric(logger.run_id, "reader/train_seconds", seconds)
    reader.eval()
    if out_dir is not None and trainer.is_global_zero:
        out_dir = Path(out_dir)
        save_reader(reader.cpu(), out_dir / "reader")
        tmp = out_dir / ".reader_run.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, out_dir / "reader_run.json")
        logger.experiment.log_artifact(logger.run_id, str(out_dir / "reader" / "config.json"), artifact_path="reader")
    return record, reader
