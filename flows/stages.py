"""The stage flows a platform team can run on their own: prepare, train, evaluate, promote."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from components.config import load_params
from flows.tasks import (
    commit_stage,
    ensure_landed_tracked,
    gate_and_register,
    log_validation,
    push_data,
    run_stage,
    stage_current,
)

# Which dvc.yaml stages each flow owns (tests check that together they cover dvc.yaml).
PREPARE_STAGES = ("generate", "validate")
TRAIN_STAGES = ("train", "index", "train-reader")
EVALUATE_STAGES = ("evaluate",)


def _parent(parent_run_id: str | None) -> str:
    return parent_run_id or str(flow_run.get_id() or "")


@flow(name="prepare")
def prepare(
    project_dir: str = ".", dvc_remote: str | None = None, parent_run_id: str | None = None
) -> list[dict]:
    """Synthetic or imported corpus -> validated records; data pushed to the DVC remote."""
    parent = _parent(parent_run_id)
    ensure_landed_tracked(
        project_dir
    )  # the generate stage depends on landed/ (documents from the landing folder)
    results = [run_stage(stage, project_dir, parent) for stage in PREPARE_STAGES]
    if dvc_remote:
        push_data(project_dir, dvc_remote)
    return results


@flow(name="train")
def train(
    project_dir: str = ".", parent_run_id: str | None = None, params_file: str = "params.yaml"
) -> list[dict]:
    """Train the retriever in Lightning, build the region index from it, then train the reader."""
    parent = _parent(parent_run_id)
    results = [run_stage("train", project_dir, parent)]
    if load_params(Path(project_dir) / params_file).orchestrate.task_runner == "dask":
        results.append(sharded_index_stage(project_dir, params_file))
    else:
        results.append(run_stage("index", project_dir, parent))
    results.append(run_stage("train-reader", project_dir, parent))
    log_validation(project_dir)  # the candidate's run now exists: attach the data it was trained on
    return results


def sharded_index_stage(project_dir: str, params_file: str) -> dict:
    """The index stage with its page encoding sharded over Dask; DVC then records the outputs (dvc commit)."""
    from flows.scale import run_sharded

    if stage_current("index", project_dir):
        return {"stage": "index", "ran": False}
    run_sharded(project_dir, params_file)
    commit_stage("index", project_dir)
    return {"stage": "index", "ran": True}


@flow(name="evaluate")
def evaluate(project_dir: str = ".", parent_run_id: str | None = None) -> list[dict]:
    """Score the candidate and the baselines; metrics land in eval/ and MLflow."""
    parent = _parent(parent_run_id)
    return [run_stage(stage, project_dir, parent) for stage in EVALUATE_STAGES]


@flow(name="promote")
def promote(
    project_dir: str = ".", params_file: str = "params.yaml", parent_run_id: str | None = None
) -> dict:
    """Gate the candidate against floors and the champion; register it; move the aliases."""
    return gate_and_register(str(Path(project_dir)), params_file, _parent(parent_run_id))
