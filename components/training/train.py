"""Train the region retriever with Lightning, log to MLflow, resume from last.ckpt, export safetensors.

Checkpoints live under ``$REGIONOPS_HOME/checkpoints/<digest>``, outside ``out_dir``: DVC deletes
a stage's outputs before rerunning it, and a crashed run must find its ``last.ckpt`` again.
The digest covers the data and every parameter that changes the training trajectory, but not
``train.max_steps``, so asking for more steps continues the same run (intended; the caveats and
what happens to a corrupt, foreign or too-long ``last.ckpt`` are in ``components.training.resume``).
The run itself (MLflow run, checkpoints, resume, run record) is ``components.training.runner``'s,
shared with the reader's training; this module adds the best-val export and the final validation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from components.config import Params
from components.data.corpus import Corpus
from components.model.io import save_retriever
from components.settings import Settings
from components.tracking import changed_params_name
from components.training.datamodule import RetrievalDataModule
from components.training.module import RetrieverModule
from components.training.real_pages import with_real_pages
from components.training.runner import (
    RunSpec,
    checkpoint_dir,
    corpus_digest,
    quiet_expected_warnings,
    run_training,
    write_run_record,
)

log = logging.getLogger(__name__)
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
        {
            "params": flat,
            "data": corpus_digest(corpus),
            "code": code if code is not None else code_digest(),
        },
        sort_keys=True,
        default=str,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in sorted(metrics.items())}


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
    quiet_expected_warnings()
    corpus = with_real_pages(corpus, params, settings.home)
    L.seed_everything(params.seed, workers=True)
    module = RetrieverModule(params)
    data = RetrievalDataModule(params, corpus, module.model)
    module.fused_val = data.fused_val

    # Early stopping by selection: keep the weights with the best val metric and export those, since
    # the model overfits training pages long before the loss says so (held-out templates in val).
    key = checkpoint_key(params, corpus)
    best = ModelCheckpoint(
        dirpath=checkpoint_dir(settings, key),
        filename="best",
        monitor="val/select",  # train.select_on (fused by default), pseudo-labels on
        mode="max",
        save_top_k=1,
        save_last=False,
        enable_version_counter=False,
    )
    run = run_training(
        module,
        data,
        t,
        RunSpec(
            stage="train",
            experiment=params.registry.experiment,
            run_name=changed_params_name("train", params),  # what this run changed, not a digest
            corpus=corpus,
            params_digest=params.digest(),
            max_steps=t.max_steps,
            checkpoint_every_n_steps=t.checkpoint_every_n_steps,
            log_every_n_steps=t.log_every_n_steps,
            tags={f"regionops.{k}": v for k, v in module.model.text_info.tags().items()},
            hyperparams={**params.flat(), **{f"dataset.{k}": v for k, v in data.counts().items()}},
            callbacks=[best],
            trainer_options={
                # Validate every N optimizer steps across epochs (epochs are short and uneven).
                "val_check_interval": max(1, min(t.val_check_interval, t.max_steps)),
                "enable_model_summary": True,
                # A bar only on a terminal: piped (dvc repro under Prefect) its redraws would be noise;
                # StepProgress logs the same figures as lines there.
                "enable_progress_bar": sys.stderr.isatty(),
            },
        ),
        resume_key=key,
        settings=settings,
    )
    # max_steps=0: no fit; the untrained weights are validated and exported as they are (ADR 23)
    trainer, logger = run.trainer, run.logger
    final = dict(trainer.callback_metrics)
    exported_step = int(trainer.global_step)
    if t.export == "best" and best.best_model_path and Path(best.best_model_path).is_file():
        exported_step = _load_weights(module, Path(best.best_model_path))
        log.info(
            "exporting the best val/select weights (%s, step %s)",
            best.best_model_score,
            exported_step,
        )
    if data.val_samples:
        # Final figures on the validation split for the exported weights (best or last step).
        final.update(trainer.validate(module, datamodule=data, verbose=False)[0])
    final = _floats({k: v for k, v in final.items() if not k.endswith("_step")})

    export_dir = out_dir / "retriever"
    if trainer.is_global_zero:
        save_retriever(module.model.cpu(), export_dir)
    result = {
        **run.record,
        "exported_step": exported_step,
        "fingerprint": module.model.fingerprint,
        "final": final,
    }
    if trainer.is_global_zero:
        client = logger.experiment
        client.log_metric(logger.run_id, "train/seconds", run.seconds)
        client.log_metric(logger.run_id, "train/exported_step", exported_step)
        client.set_tag(logger.run_id, "regionops.model_fingerprint", module.model.fingerprint)
        client.log_artifact(
            logger.run_id, str(export_dir / "config.json"), artifact_path="retriever"
        )
        write_run_record(result, out_dir / "train_run.json")
    return result
