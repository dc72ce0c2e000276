"""The "RAG checkpoint": an MLflow pyfunc that bundles the retriever, the index and the config.

``mlflow.pyfunc.load_model("models:/regionops@champion").predict(...)`` and
``mlflow models serve`` both go through :class:`RagCheckpoint`. Input rows carry a
``question``, an optional ``query_image`` (base64 PNG/JPEG, a data: URI, or a path under
``$REGIONOPS_QUERY_IMAGE_ROOT``), an optional ``k`` and an optional ``highlights`` flag; each
output row carries ``answer``, ``page_id``, ``boxes`` (normalised [x0, y0, x1, y1], origin
top-left), ``scores`` and ``highlights`` (one base64 PNG crop per box when asked for and the
bundle holds page images; otherwise empty).

Bad rows raise ``MlflowException(INVALID_PARAMETER_VALUE)``: the scoring server turns that
into an HTTP 400 with our message and keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import Array, ColSpec, DataType, ParamSchema, ParamSpec, Schema

# Artifact keys of the logged model (registry/bundle.py stages them, load_context reads them).
ARTIFACT_MODEL = (
    "model"  # the exported model folder: retriever/ (safetensors + config.json), reader/ ...
)
ARTIFACT_INDEX = "index"  # the region index folder
ARTIFACT_PARAMS = "params"  # params.yaml the candidate was trained and evaluated with
ARTIFACT_PAGES = (
    "pages"  # optional: page images for highlight crops (components.serving.highlights)
)
OUTPUT_COLUMNS = ["answer", "page_id", "boxes", "scores", "highlights"]

MAX_QUESTION_CHARS = 2000
MAX_K = 100
MAX_IMAGE_BYTES = 32 * 1024 * 1024
IMAGE_ROOT_ENV = "REGIONOPS_QUERY_IMAGE_ROOT"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

# Tests (and alternative backends) may swap how the engine is built; the default is the real one.
EngineFactory = Callable[[Path, Path, Any], Any]
ENGINE_FACTORY: EngineFactory | None = None


def _default_engine_factory(model_dir: Path, index_dir: Path, params: Any) -> Any:
    from components.rag.engine import RagEngine

    return RagEngine.from_dirs(model_dir, index_dir, params)


def bad_request(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def signature() -> ModelSignature:
    inputs = Schema(
        [
            ColSpec(DataType.string, "question"),
            ColSpec(DataType.string, "query_image", required=False),
            ColSpec(DataType.long, "k", required=False),
            ColSpec(DataType.boolean, "highlights", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.string, "answer"),
            ColSpec(DataType.string, "page_id"),
            ColSpec(Array(Array(DataType.double)), "boxes"),
            ColSpec(Array(DataType.double), "scores"),
            ColSpec(Array(DataType.string), "highlights", required=False),
        ]
    )
    # k may also come as a request-level param (applies to every row without its own k).
    params = ParamSchema([ParamSpec("k", DataType.long, 5)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def input_example() -> pd.DataFrame:
    return pd.DataFrame([{"question": "What is the total in the table?", "k": 5}])


# ---------------------------------------------------------------- input validation


def _rows(model_input: Any) -> list[dict[str, Any]]:
    if isinstance(model_input, pd.DataFrame):
        return model_input.to_dict(orient="records")
    if isinstance(model_input, dict):
        # {"question": [...]} (columnar) or one record
        if model_input and all(isinstance(v, list) for v in model_input.values()):
            return pd.DataFrame(model_input).to_dict(orient="records")
        return [model_input]
    if isinstance(model_input, list) and all(isinstance(r, dict) for r in model_input):
        return list(model_input)
    raise bad_request(
        f"input must be a DataFrame, a record or a list of records with a 'question'; got {type(model_input).__name__}"
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def parse_question(value: Any, row: int) -> str:
    if _missing(value):
        raise bad_request(f"row {row}: 'question' is required")
    if not isinstance(value, str):
        raise bad_request(f"row {row}: 'question' must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise bad_request(f"row {row}: 'question' is empty")
    if len(text) > MAX_QUESTION_CHARS:
        raise bad_request(f"row {row}: 'question' is longer than {MAX_QUESTION_CHARS} characters")
    return text


def parse_k(value: Any, default: int | None, row: int) -> int | None:
    if _missing(value):
        return default
    # pandas turns an int column with gaps into floats: accept integral floats, nothing else.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise bad_request(f"row {row}: 'k' must be an integer, got {value!r}")
    k = int(value)
    if not 1 <= k <= MAX_K:
        raise bad_request(f"row {row}: 'k' must be between 1 and {MAX_K}, got {k}")
    return k


def _open_image(data: bytes | Path, max_pixels: int, row: int):
    from PIL import Image

    try:
        # Image.open only reads the header: the size check runs before any pixel is decoded.
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise bad_request(
                    f"row {row}: query_image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
                )
            if image.format not in {"PNG", "JPEG", "TIFF", "BMP", "WEBP"}:
                raise bad_request(f"row {row}: query_image format {image.format} is not supported")
            return image.convert("RGB")
    except MlflowException:
        raise
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise bad_request(f"row {row}: query_image is not a readable image ({exc})") from None


def parse_query_image(value: Any, max_pixels: int, row: int, image_root: str | None = None):
    """base64 / data: URI / path under the allowed root -> RGB PIL image (or None)."""
    if _missing(value) or value == "":
        return None
    if not isinstance(value, str):
        raise bad_request(
            f"row {row}: 'query_image' must be a base64 string or a path, got {type(value).__name__}"
        )
    text = value.strip()
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    elif text.lower().endswith(IMAGE_SUFFIXES) and len(text) < 4096:
        # "." is not in the base64 alphabet, so a name with an image suffix is a path, never base64.
        return _open_image(_allowed_path(text, row, image_root), max_pixels, row)
    if len(text) * 3 // 4 > MAX_IMAGE_BYTES:
        raise bad_request(f"row {row}: query_image is larger than {MAX_IMAGE_BYTES} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(
            f"row {row}: query_image is neither valid base64 nor a path to an image file"
        ) from None
    if not data:
        raise bad_request(f"row {row}: query_image decodes to no bytes")
    return _open_image(data, max_pixels, row)


def _allowed_path(text: str, row: int, image_root: str | None) -> Path:
    from components.data.corpus import UnsafePathError, safe_join

    root = image_root or os.environ.get(IMAGE_ROOT_ENV)
    if not root:
        raise bad_request(
            f"row {row}: query_image paths are disabled; send base64 or set {IMAGE_ROOT_ENV} on the server"
        )
    root_path = Path(root).resolve()
    candidate = Path(text)
    try:
        relative = (
            str(candidate.resolve().relative_to(root_path)) if candidate.is_absolute() else text
        )
        path = safe_join(root_path, relative)
    except (UnsafePathError, ValueError):
        raise bad_request(
            f"row {row}: query_image path {text!r} is outside the allowed root"
        ) from None
    if not path.is_file():
        raise bad_request(f"row {row}: query_image path {text!r} does not exist")
    return path


def parse_flag(value: Any, row: int, name: str) -> bool:
    if _missing(value):
        return False
    if isinstance(value, bool) or (hasattr(value, "dtype") and value.dtype == bool):
        return bool(value)
    raise bad_request(f"row {row}: '{name}' must be true or false, got {value!r}")


def _floats(values: Any) -> list[float]:
    return [round(float(v), 6) for v in values]


def result_row(result: Any) -> dict[str, Any]:
    """RagResult (or its dict) -> one output row with plain JSON-able values."""
    data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    boxes = [_floats(box) for box in data.get("boxes") or []]
    for box in boxes:
        if len(box) != 4 or not all(0.0 <= v <= 1.0 for v in box):
            raise MlflowException(
                f"engine returned a box that is not normalised [x0,y0,x1,y1]: {box}"
            )
    return {
        "answer": str(data.get("answer") or ""),
        "page_id": str(data.get("page_id") or ""),
        "boxes": boxes,
        "scores": _floats(data.get("scores") or []),
    }


class RagCheckpoint(mlflow.pyfunc.PythonModel):
    """Region-level RAG behind MLflow's pyfunc interface."""

    def load_context(self, context) -> None:
        from components.config import load_params

        params_file = Path(context.artifacts[ARTIFACT_PARAMS])
        self.params = load_params(params_file)
        self.max_pixels = int(self.params.registry.max_query_image_pixels)
        self.max_rows = int(self.params.registry.max_rows_per_request)
        factory = ENGINE_FACTORY or _default_engine_factory
        self.engine = factory(
            Path(context.artifacts[ARTIFACT_MODEL]),
            Path(context.artifacts[ARTIFACT_INDEX]),
            self.params,
        )
        pages = context.artifacts.get(ARTIFACT_PAGES)
        self.crops = None
        if pages:
            from components.serving.highlights import PageCrops

            self.crops = PageCrops(Path(pages), self.params.registry.highlight_max_side)

    def _highlights(self, result: Any, boxes: list[list[float]]) -> list[str]:
        """One crop per returned box, each from its own region's page (regions are ranked across pages)."""
        if self.crops is None:
            return []
        data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        regions = data.get("regions") or [{"page_id": data.get("page_id")}] * len(boxes)
        crops = []
        for region, box in zip(regions, boxes):
            crops.extend(self.crops.crops(region.get("page_id"), [box]))
        return crops

    # The DataFrame hint tells MLflow not to infer a schema from hints (the explicit signature
    # rules); direct callers may still pass a record or a list of records.
    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        rows = _rows(model_input)
        if not rows:
            raise bad_request("no input rows")
        if len(rows) > self.max_rows:
            raise bad_request(
                f"{len(rows)} rows in one request; at most {self.max_rows} "
                "(registry.max_rows_per_request): split the batch"
            )
        default_k = parse_k((params or {}).get("k"), None, row=-1) if params else None
        # Validate every row before answering any, so a bad batch costs no retrieval work.
        parsed = []
        for i, row in enumerate(rows):
            parsed.append(
                (
                    parse_question(row.get("question"), i),
                    parse_k(row.get("k"), default_k, i),
                    parse_query_image(row.get("query_image"), self.max_pixels, i),
                    parse_flag(row.get("highlights"), i, "highlights"),
                )
            )
        out = []
        for question, k, image, want_highlights in parsed:
            result = self.engine.answer(question, k=k, query_image=image)
            row = result_row(result)
            row["highlights"] = self._highlights(result, row["boxes"]) if want_highlights else []
            out.append(row)
        return pd.DataFrame(out, columns=OUTPUT_COLUMNS)
