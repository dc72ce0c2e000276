"""Export and load a trained retriever as safetensors + JSON (no pickle anywhere).

Layout of an export folder::

    model.safetensors   every weight (cell encoder, projections, MiniLM)
    config.json         model params, text encoder name + sha256, fingerprint (sha256 of the weights),
                        page_score (max_cell | maxsim: the rule it was trained and is served by)
    text_encoder/       the MiniLM config and tokenizer files, so the export loads on its own
    vision_model/       the vision tower's config (backbone = hf_vision only)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from components.config import ModelParams
from components.model.hf_backbone import VISION_DIR, vision_tower_from_config
from components.model.late_interaction import PAGE_SCORE_RULES
from components.model.retriever import RegionRetriever
from components.model.text_encoder import TextEncoderInfo, sha256_file

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TEXT_DIR = "text_encoder"
FORMAT_VERSION = 1


def retriever_dir(model_dir: Path) -> Path:
    """``<model_dir>/retriever`` (the training export layout), or ``model_dir`` itself if it is the export."""
    model_dir = Path(model_dir)
    nested = model_dir / "retriever"
    return nested if (nested / CONFIG).is_file() else model_dir


def save_retriever(model: RegionRetriever, out_dir: Path) -> Path:
    """Write weights, config and tokenizer to ``out_dir``; returns the weights path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = out_dir / WEIGHTS
    # Write to a temp file then rename: a crash never leaves a half-written model behind a good config.
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".model.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(
            state, tmp, metadata={"format": "regionops-retriever", "version": str(FORMAT_VERSION)}
        )
        os.replace(tmp, weights)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    model.text.config.save_pretrained(out_dir / TEXT_DIR)
    model.tokenizer.save_pretrained(out_dir / TEXT_DIR)
    if model.params.backbone == "hf_vision":
        model.cells.tower.config.save_pretrained(out_dir / VISION_DIR)
    fingerprint = sha256_file(weights)
    config = {
        "format_version": FORMAT_VERSION,
        "model": model.params.model_dump(mode="json"),
        "text_encoder": {"name": model.text_info.name, "sha256": model.text_info.sha256},
        "fingerprint": fingerprint,
        "page_score": model.page_score,
    }
    (out_dir / CONFIG).write_text(
        json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    model._fingerprint = fingerprint
    return weights


def read_retriever_config(model_dir: Path) -> dict:
    path = Path(model_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {model_dir} is not an exported retriever (run `regionops train`)"
        )
    return json.loads(path.read_text("utf-8"))


def load_retriever(model_dir: Path) -> RegionRetriever:
    """Rebuild the retriever from an export folder, in eval mode; checks the weights' fingerprint."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    model_dir = Path(model_dir)
    config = read_retriever_config(model_dir)
    weights = model_dir / WEIGHTS
    fingerprint = sha256_file(weights)
    if fingerprint != config["fingerprint"]:
        raise ValueError(
            f"{weights}: sha256 {fingerprint} does not match config.json fingerprint {config['fingerprint']}"
        )
    saved = dict(config["model"])
    if "cell_text" not in saved:
        # Exported before contextual cell text existed: word-piece cells, no context skip.
        saved.update(cell_text="wordpiece", context_skip=False, input_dropout=0.0)
    saved.setdefault("block_context", 0.0)  # exported before block context existed
    saved.setdefault("context_unit", "page")  # exported before the block unit existed (ADR 23)
    saved.setdefault("space", "learned")  # exported before the pretrained space existed (ADR 23)
    saved.setdefault("heading_context", 0.0)  # exported before heading context existed (ADR 19)
    params = ModelParams.model_validate(saved)
    # Exported before the served rule was recorded: those models served (and trained) max_cell.
    page_score = config.get("page_score", "max_cell")
    if page_score not in PAGE_SCORE_RULES:
        raise ValueError(
            f"{model_dir / CONFIG}: page_score {page_score!r} is not one of {PAGE_SCORE_RULES}"
        )
    text_config = AutoConfig.from_pretrained(str(model_dir / TEXT_DIR), local_files_only=True)
    text_model = AutoModel.from_config(text_config)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir / TEXT_DIR), local_files_only=True)
    te = config["text_encoder"]
    tower = (
        vision_tower_from_config(model_dir / VISION_DIR) if params.backbone == "hf_vision" else None
    )
    model = RegionRetriever(
        params,
        text_model,
        tokenizer,
        TextEncoderInfo(te["name"], model_dir / TEXT_DIR, te["sha256"]),
        tower,
    )
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model._fingerprint = fingerprint
    model.page_score = page_score
    return model.eval()
