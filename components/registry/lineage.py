"""Lineage of a candidate: which code, data, parameters, flow run and eval set made it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from components.config import Params

REPO = Path(__file__).resolve().parents[2]


def git_commit(repo: Path = REPO) -> str:
    """HEAD's commit ("unknown" outside a git checkout), with "+dirty" when files are modified."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def dvc_data_hash(project_dir: Path = REPO, output: str = "data/corpus") -> str:
    """The md5 that dvc.lock records for the corpus output ("unknown" before the first repro)."""
    lock = Path(project_dir) / "dvc.lock"
    if not lock.exists():
        return "unknown"
    spec = yaml.safe_load(lock.read_text()) or {}
    for stage in (spec.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == output and out.get("md5"):
                return str(out["md5"])
    return "unknown"


def eval_dataset_id(metrics: dict[str, Any]) -> str:
    return str(metrics.get("dataset_id") or "unknown")


def collect(
    params: Params,
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
    project_dir: Path | None = None,
) -> dict[str, str]:
    """Lineage tags (all strings). ``extra`` (from the Prefect task) wins over what is found here.

    The commit is the code's (this checkout); dvc.lock is read from ``project_dir``, default
    the working directory, where DVC stages run.
    """
    extra = dict(extra or {})
    lineage = {
        "git_commit": git_commit(REPO),
        "data_hash": dvc_data_hash(Path(project_dir) if project_dir else Path.cwd()),
        "params_digest": params.digest(),
        "parent_run_id": os.environ.get("REGIONOPS_PARENT_RUN_ID") or "none",
        "eval_dataset_id": eval_dataset_id(metrics),
        # the candidate's own evaluation run (evaluate logs one per evaluation, nested under training)
        "eval_run_id": str(metrics.get("mlflow_run_id") or "none"),
    }
    for key, value in extra.items():
        if value not in (None, ""):
            lineage[key] = value if isinstance(value, str) else json.dumps(value)
    return lineage


def as_tags(lineage: dict[str, str], prefix: str = "lineage") -> dict[str, str]:
    return {f"{prefix}.{key}": str(value) for key, value in lineage.items()}


def version_description(
    candidate: dict[str, Any],
    decision: Any,
    train_run_name: str | None,
    answerer: str,
    answerer_reason: str,
) -> str:
    """The model version's description (markdown, shown on its page in the MLflow UI): what was
    trained, what it scored on which evaluation set, why the gate decided as it did, who answers."""
    system = (candidate.get("systems") or {}).get("regionops") or {}
    shown = ("page_r1", "page_r5", "region_hit1", "region_miou", "anls", "reader_anls")
    scores = ", ".join(
        f"{k} {float(system[k]):.3f}" for k in shown if isinstance(system.get(k), (int, float))
    )
    verdict = "Gate passed" if decision.passed else "Gate failed"
    dataset = str(candidate.get("dataset_id", "unknown"))[:12]
    lines = [
        f"**{verdict}**: trained by run `{train_run_name or 'unknown'}`.",
        "",
        (
            f"- evaluation: {candidate.get('split', '?')} split, {candidate.get('n_questions', '?')} questions, "
            f"dataset `{dataset}` (run `{candidate.get('mlflow_run_id', 'none')}`)"
        ),
        f"- regionops: {scores or 'no metrics'}",
        f"- answers from: {answerer} ({answerer_reason})",
    ]
    lines += [f"- {reason}" for reason in getattr(decision, "reasons", [])[:8]]
    return "\n".join(lines)[:4900]
