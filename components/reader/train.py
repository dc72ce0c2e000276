"""Train the span reader with noise injection in Lightning; MLflow, last.ckpt resume, safetensors export.

The run itself (MLflow run, checkpoints, resume, run record) is ``components.training.runner``'s,
as for the retriever; the Trainer settings are ``reader.trainer``. Checkpoints live under
``$REGIONOPS_HOME/checkpoints/reader-<digest>`` (outside the DVC output, which DVC deletes before a
rerun). The digest covers the data, the retriever fingerprint and every reader parameter except
``reader.max_steps``, so asking for more steps continues the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import lightning as L

from components.config import Params
from components.data.corpus import Corpus
from components.reader.data import ReaderDataModule
from components.reader.io import build_reader, save_reader
from components.reader.module import ReaderModule
from components.settings import Settings
from components.tracking import PARENT_RUN_TAG, changed_params_name
from components.training.runner import (
    RunSpec,
    corpus_digest,
    quiet_expected_warnings,
    run_training,
    write_run_record,
)

log = logging.getLogger(__name__)
_NOT_TRAJECTORY = (
    "reader.max_steps",
    "reader.checkpoint_every_n_steps",
    "reader.log_every_n_steps",
    "reader.ablation_seeds",
)


def reader_checkpoint_key(
    params: Params, corpus: Corpus, retriever_fingerprint: str, real_corpus: Corpus | None = None
) -> str:
    flat = {
        k: v
        for k, v in params.flat().items()
        if (k == "seed" or k.startswith(("reader.", "model.text_encoder")))
        and k not in _NOT_TRAJECTORY
    }
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
        return (
            None,
            f"{set_dir} has no questions.jsonl (build it with scripts/real_docs.py / make bench-real)",
        )
    if model_dir is None:
        return None, "no retriever folder to index the real pages with"
    return prepare_real_pages(
        params, set_dir, Path(model_dir), retriever.fingerprint, settings.home / "reader-pages"
    ), str(set_dir)


def _retriever_run_id(model_dir: Path | None) -> str | None:
    """The MLflow run that trained the retriever in ``model_dir`` (``train_run.json``), if recorded."""
    record = Path(model_dir) / "train_run.json" if model_dir is not None else None
    if record is None or not record.is_file():
        return None
    return json.loads(record.read_text()).get("run_id") or None


def load_retrieval(model_dir: Path, index_dir: Path):
    """(retriever, index) as exported by `regionops train` and `regionops index build`."""
    from components.index.region_index import RegionIndex
    from components.model.io import load_retriever, retriever_dir

    retriever = load_retriever(retriever_dir(Path(model_dir)))
    return retriever, RegionIndex.load(Path(index_dir), expected_fingerprint=retriever.fingerprint)


def train_reader(
    params: Params,
    corpus: Corpus,
    model_dir: Path,
    index_dir: Path,
    out_dir: Path | None,
    settings: Settings,
    retrieval=None,
    run_name: str | None = None,
    real_pages=None,
) -> tuple[dict, object]:
    """Fit (or resume) the reader; export ``out_dir/reader/`` + ``out_dir/reader_run.json`` when ``out_dir``.

    Returns (run record, the trained SpanReader). ``retrieval`` = a loaded (retriever, index) pair;
    ``real_pages`` = a prepared (corpus, index) of real pages (else ``reader.real_train_dir``).
    """
    p = params.reader
    quiet_expected_warnings()
    L.seed_everything(params.seed, workers=True)
    retriever, index = retrieval or load_retrieval(model_dir, index_dir)
    reader = build_reader(p, params.model, index.dim)
    real, real_source = (
        load_real_pages(params, settings, model_dir, retriever)
        if real_pages is None
        else (real_pages, "given")
    )
    if (
        real is None
    ):  # said, and recorded in reader_run.json: the reader then learns from synthetic pages only
        log.warning("reader: no real pages to train on (%s)", real_source)
    data = ReaderDataModule(params, corpus, index, retriever, reader.tokenizer, real)
    val_answers = {i: s.answers for i, s in enumerate(data.val_samples)}
    module = ReaderModule(params, reader, val_answers)

    key = reader_checkpoint_key(params, corpus, retriever.fingerprint, real[0] if real else None)
    tags = {
        "regionops.retriever_fingerprint": retriever.fingerprint,
        **{f"regionops.{k}": v for k, v in reader.text_info.tags().items()},
    }
    training_run = _retriever_run_id(model_dir)
    if training_run:  # the reader belongs to this candidate: nested under its retriever's run
        tags.update({PARENT_RUN_TAG: training_run, "regionops.training_run_id": training_run})
    run = run_training(
        module,
        data,
        p.trainer,
        RunSpec(
            stage="train-reader",
            experiment=params.registry.experiment,
            run_name=run_name or changed_params_name("train-reader", params),
            corpus=corpus,
            params_digest=params.digest(),
            max_steps=p.max_steps,
            checkpoint_every_n_steps=p.checkpoint_every_n_steps,
            log_every_n_steps=p.log_every_n_steps,
            tags=tags,
            # ρ and the distractor mix are reader.* params; the dataset counts say what the reader saw.
            hyperparams={
                **{k: v for k, v in params.flat().items() if k.startswith(("seed", "reader."))},
                **{f"dataset.{k}": v for k, v in data.counts().items()},
            },
            trainer_options={
                "val_check_interval": p.max_steps,
                "enable_model_summary": False,
                "enable_progress_bar": False,
            },
            save_last_at_end=True,
        ),
        resume_key=f"reader-{key}",
        settings=settings,
    )
    trainer, logger = run.trainer, run.logger
    final = {
        k: round(float(v), 6)
        for k, v in trainer.callback_metrics.items()
        if not k.endswith("_step")
    }
    record = {
        **run.record,
        "final": final,
        "counts": data.counts(),
        "noise_rho": p.noise_rho,
        "train_contexts": p.train_contexts,
        "real_pages": real_source if real is not None else None,
        "real_pages_missing": None if real is not None else real_source,
        "hard_distractor_share": p.hard_distractor_share,
        "retriever_fingerprint": retriever.fingerprint,
    }
    logger.experiment.log_metric(logger.run_id, "reader/train_seconds", run.seconds)
    reader.eval()
    if out_dir is not None and trainer.is_global_zero:
        out_dir = Path(out_dir)
        save_reader(reader.cpu(), out_dir / "reader")
        write_run_record(record, out_dir / "reader_run.json")
        logger.experiment.log_artifact(
            logger.run_id, str(out_dir / "reader" / "config.json"), artifact_path="reader"
        )
    return record, reader
