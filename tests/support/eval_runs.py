"""Give a test candidate's metrics.json the MLflow evaluation run the gate reads its numbers from.

The evaluate stage logs each evaluation as its own run and writes the run's id into
metrics.json; the gate refuses a metrics.json without one. Test candidates written by hand
get theirs through the same logging code (``evaluate._log_to_mlflow``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def log_evaluation_run(metrics_path: Path, model_dir: Path | None = None, params=None) -> str:
    """Log ``metrics_path``'s numbers as an evaluation run (nested under ``model_dir``'s training run
    when the store holds it) and record the run's id in the file, as ``run_evaluation`` does."""
    from components.config import load_params
    from components.evaluation.evaluate import _log_to_mlflow
    from components.settings import get_settings

    metrics_path = Path(metrics_path)
    metrics = json.loads(metrics_path.read_text())
    metrics.setdefault("split", "test")
    metrics.setdefault("n_questions", 1)
    metrics.setdefault("dataset_id", "test-dataset")
    params = params or load_params(REPO / "params.yaml")
    with tempfile.TemporaryDirectory(prefix="eval-run-") as tmp:
        out = Path(tmp)
        (out / "metrics.json").write_text(json.dumps(metrics))
        run_id = _log_to_mlflow(
            params, get_settings(), Path(model_dir) if model_dir else out, out, metrics
        )
    metrics["mlflow_run_id"] = run_id
    metrics_path.write_text(json.dumps(metrics))
    return run_id
