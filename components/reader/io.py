"""Build, export and load the span reader as safetensors + JSON (no pickle)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from components.config import ModelParams, ReaderParams
from components.model.text_encoder import (
    TextEncoderInfo,
    load_text_encoder,
    resolve_text_encoder,
    sha256_file,
)
from components.reader.model import SpanReader

WEIGHTS = "reader.safetensors"
CONFIG = "config.json"
TEXT_DIR = "text_encoder"
FORMAT_VERSION = 1


BUNDLED_DIR = "reader"  # inside a served model bundle: <model>/retriever + <model>/reader


def bundled_reader_dir(model_dir: Path) -> Path | None:
    """``<model_dir>/reader`` when a model bundle (the registered checkpoint) carries a trained reader."""
    nested = Path(model_dir) / BUNDLED_DIR
    return nested if (nested / CONFIG).is_file() and (nested / WEIGHTS).is_file() else None


def build_reader(p: ReaderParams, model_params: ModelParams, cell_dim: int) -> SpanReader:
    """A fresh reader: the verified pretrained MiniLM (sha256 checked) + a new span head and visual projection."""
    info = resolve_text_encoder(model_params)
    text_model, tokenizer = load_text_encoder(info.path)
    return SpanReader(p, text_model, tokenizer, info, cell_dim)


def save_reader(reader: SpanReader, out_dir: Path) -> Path:
    """Weights (atomic rename), config and tokenizer into ``out_dir``; returns the weights path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in reader.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".reader.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(
            state, tmp, metadata={"format": "regionops-reader", "version": str(FORMAT_VERSION)}
        )
        os.replace(tmp, out_dir / WEIGHTS)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    reader.encoder.config.save_pretrained(out_dir / TEXT_DIR)
    reader.tokenizer.save_pretrained(out_dir / TEXT_DIR)
    config = {
        "format_version": FORMAT_VERSION,
        "reader": reader.params.model_dump(mode="json"),
        "cell_dim": reader.cell_dim,
        "text_encoder": {"name": reader.text_info.name, "sha256": reader.text_info.sha256},
        "sha256": sha256_file(out_dir / WEIGHTS),
    }
    tmp_cfg = out_dir / f".{CONFIG}.tmp"
    tmp_cfg.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp_cfg, out_dir / CONFIG)
    return out_dir / WEIGHTS


def load_reader(model_dir: Path) -> SpanReader:
    """Rebuild an exported reader in eval mode; the weights must match the recorded sha256."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    model_dir = Path(model_dir)
    cfg_path = model_dir / CONFIG
    if not cfg_path.is_file():
        raise FileNotFoundError(
            f"{cfg_path} not found: {model_dir} is not an exported reader (run `regionops train-reader`)"
        )
    config = json.loads(cfg_path.read_text("utf-8"))
    weights = model_dir / WEIGHTS
    if sha256_file(weights) != config["sha256"]:
        raise ValueError(f"{weights} does not match the sha256 in {cfg_path}")
    text_config = AutoConfig.from_pretrained(str(model_dir / TEXT_DIR), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir / TEXT_DIR), local_files_only=True)
    te = config["text_encoder"]
    reader = SpanReader(
        ReaderParams.model_validate(config["reader"]),
        AutoModel.from_config(text_config),
        tokenizer,
        TextEncoderInfo(te["name"], model_dir / TEXT_DIR, te["sha256"]),
        int(config["cell_dim"]),
    )
    missing, unexpected = reader.load_state_dict(load_file(str(weights)), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not fit the reader: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return reader.eval()
