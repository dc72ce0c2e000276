"""A registered version is reproducible from its record: the exact DVC lock, params and code state.

At registration (``record_version``) the version's MLflow run gets ``reproduce/dvc.lock``,
``reproduce/dvc.yaml``, ``reproduce/params.yaml`` and ``reproduce/metrics.json`` as artifacts, and the model version
gets tags: the git commit, whether the checkout was dirty, a digest of the uncommitted
diff, and the lock's digest. ``reproduce_version`` later rebuilds that version in an empty
folder: the recorded files, ``dvc pull`` of every output the lock names (corpus,
validation, model, index, reader, eval) from the DVC remote, then a fresh evaluation
whose quality metrics must equal the ones recorded with the version.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from pathlib import Path
from typing import Any

from components import versioning
from components.paths import ProjectPaths

RECORDED_FILES = ("dvc.lock", "dvc.yaml", "params.yaml")
# metrics.json is a DVC metric with cache: false, so the remote does not hold it: the record does.
METRICS_FILE = ProjectPaths.from_root().metrics.as_posix()
RECORDED_METRICS = "recorded_metrics.json"
ARTIFACT_DIR = "reproduce"
TAG = "repro."
# Quality metrics compared on re-scoring (latencies depend on the machine, not on the version).
COMPARED = (
    "page_r1",
    "page_r5",
    "ndcg5",
    "mrr",
    "region_hit1",
    "region_miou",
    "anls",
    "em",
    "reader_anls",
    "reader_em",
)


class ReproduceError(RuntimeError):
    """A version has no reproduction record, or its outputs cannot be restored."""


def _git(project_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args], cwd=project_dir, capture_output=True, text=False, check=False
    )


def code_state(project_dir: Path) -> dict[str, Any]:
    """The git commit, whether tracked files differ from it, and a digest of that difference.

    Not a git checkout (a copied project): ``{"git_commit": None}``; the lock still pins the data.
    """
    head = _git(project_dir, "rev-parse", "HEAD")
    if head.returncode != 0:
        return {"git_commit": None, "git_dirty": None, "git_diff_sha256": None}
    diff = _git(project_dir, "diff", "HEAD", "--binary").stdout
    return {
        "git_commit": head.stdout.decode().strip(),
        "git_dirty": bool(diff),
        "git_diff_sha256": hashlib.sha256(diff).hexdigest() if diff else None,
    }


def version_record(project_dir: Path) -> dict[str, Any]:
    project_dir = Path(project_dir)
    missing = [
        name for name in (*RECORDED_FILES, METRICS_FILE) if not (project_dir / name).is_file()
    ]
    if missing:
        raise ReproduceError(f"cannot record {project_dir}: {', '.join(missing)} missing")
    lock = (project_dir / "dvc.lock").read_bytes()
    return {**code_state(project_dir), "dvc_lock_sha256": hashlib.sha256(lock).hexdigest()}


def record_version(
    client, model_name: str, version: str, run_id: str, project_dir: Path
) -> dict[str, Any]:
    """Attach the record to a registered version: artifacts on its run, tags on the version."""
    record = version_record(project_dir)
    for name in (*RECORDED_FILES, METRICS_FILE):
        client.log_artifact(run_id, str(Path(project_dir) / name), ARTIFACT_DIR)
    for key, value in record.items():
        client.set_model_version_tag(
            model_name, version, f"{TAG}{key}", "" if value is None else str(value)
        )
    return record


def _fetch_record(client, model_name: str, version: str, out_dir: Path) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise ReproduceError(f"{model_name} version {version} not found: {exc}") from exc
    if f"{TAG}dvc_lock_sha256" not in mv.tags:
        raise ReproduceError(
            f"{model_name} version {version} has no reproduction record (registered before it "
            "existed, or by hand)"
        )
    staged = Path(client.download_artifacts(mv.run_id, ARTIFACT_DIR, str(out_dir / ".record")))
    for name in RECORDED_FILES:
        (out_dir / name).write_bytes((staged / name).read_bytes())
    (out_dir / RECORDED_METRICS).write_bytes((staged / Path(METRICS_FILE).name).read_bytes())
    lock_digest = hashlib.sha256((out_dir / "dvc.lock").read_bytes()).hexdigest()
    if lock_digest != mv.tags[f"{TAG}dvc_lock_sha256"]:
        raise ReproduceError(
            f"the stored dvc.lock does not match the version's tag ({lock_digest})"
        )
    return dict(mv.tags)


def compare_metrics(recorded: dict, rescored: dict, tolerance: float = 1e-9) -> list[str]:
    """Differences between two metrics.json ``systems`` tables on the quality metrics; [] when equal."""
    problems = []
    for system, values in recorded.get("systems", {}).items():
        fresh = rescored.get("systems", {}).get(system)
        if fresh is None:
            problems.append(f"{system}: not re-scored")
            continue
        for key in COMPARED:
            a, b = values.get(key), fresh.get(key)
            if a is None and b is None:
                continue
            if a is None or b is None or not math.isclose(a, b, rel_tol=0, abs_tol=tolerance):
                problems.append(f"{system}.{key}: recorded {a}, re-scored {b}")
    return problems


def reproduce_version(
    client, model_name: str, version: str, out_dir: Path, remote: str
) -> dict[str, Any]:
    """Restore ``version``'s data, model, index and reader into ``out_dir`` and re-score it.

    Returns the record, the re-scored metrics and ``problems`` (empty: the same metrics).
    """
    from components.config import load_params
    from components.data.corpus import load_corpus
    from components.evaluation.evaluate import run_evaluation

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(p for p in out_dir.iterdir() if p.name != ".record"):
        raise ReproduceError(f"{out_dir} is not empty: reproduce into a new folder")
    tags = _fetch_record(client, model_name, version, out_dir)
    subprocess.run([versioning._dvc_bin(), "init", "--no-scm", "-q"], cwd=out_dir, check=True)
    versioning.ensure_remote(out_dir, remote)
    versioning.pull(out_dir)  # every output dvc.lock names, by the hashes it recorded
    params = load_params(out_dir / "params.yaml")
    rebuilt = ProjectPaths.from_root(out_dir)
    accepted = rebuilt.accepted
    corpus = load_corpus(out_dir / params.data.corpus_dir, accepted if accepted.exists() else None)
    reader = rebuilt.reader_export
    rescored = run_evaluation(
        params,
        corpus,
        rebuilt.model,
        rebuilt.index,
        out_dir / "rescored",
        log_mlflow=False,
        reader_dir=reader if (reader / "config.json").is_file() else None,
    )
    recorded = json.loads((out_dir / RECORDED_METRICS).read_text())
    return {
        "version": str(version),
        "out_dir": str(out_dir),
        "record": {k.removeprefix(TAG): v for k, v in tags.items() if k.startswith(TAG)},
        "problems": compare_metrics(recorded, rescored),
        "regionops": {k: rescored["systems"]["regionops"].get(k) for k in COMPARED},
    }
