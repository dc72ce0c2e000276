"""A model reference -> the export to index with, the params it runs with and its region choice.

``regionops evaluate --docs`` takes a folder (a training export) or a registered checkpoint
(``models:/NAME@ALIAS``, downloaded through ``components.registry.store.download_champion``: its
retriever, its bundled reader if it was promoted with one, and its params). Resolving lives in the
registry because it reads the model registry; evaluation receives the resolved ``ModelSource``.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from components.config import Params, RegionParams, load_params
from components.evaluation.folder_eval import ModelSource

MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)@(?P<alias>[\w.-]+)")


def _chosen_in(path: Path) -> dict | None:
    """Region settings recorded in a file: an evaluation's metrics.json (``regions.chosen``) or a
    params.yaml (``regions``)."""
    import yaml

    text = Path(path).read_text("utf-8")
    data = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        return None
    regions = data.get("regions")
    if isinstance(regions, dict) and isinstance(regions.get("chosen"), dict):
        return regions["chosen"]
    if isinstance(regions, dict) and "threshold" in regions:
        return regions
    return None


def region_settings_from(path: Path) -> dict:
    """The region settings recorded in ``path`` (``_chosen_in``), or a ValueError saying why not:
    what ``--regions-from`` reads (``regionops evaluate`` and ``regionops bench``)."""
    chosen = _chosen_in(Path(path))
    if chosen is None:
        raise ValueError(
            f"--regions-from {path}: no `regions.chosen` (metrics.json) or `regions` "
            "(params.yaml) in it"
        )
    return chosen


def _chosen_on_training_run(model_dir: Path) -> tuple[dict, str] | None:
    """The region settings the evaluate stage logged onto the model's training run (its
    ``evaluation/metrics.json`` artifact), when that run is in this tracking store."""
    run_file = Path(model_dir) / "train_run.json"
    if not run_file.is_file():
        return None
    run_id = json.loads(run_file.read_text("utf-8")).get("run_id")
    if not run_id:
        return None
    import mlflow
    from mlflow.exceptions import MlflowException

    from components.settings import get_settings

    mlflow.set_tracking_uri(get_settings().tracking_uri)
    try:
        with tempfile.TemporaryDirectory(prefix="regionops-run-metrics-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="evaluation/metrics.json", dst_path=tmp
            )
            chosen = _chosen_in(Path(local))
    except (MlflowException, OSError, ValueError):
        return None  # no such run here, or it has no evaluation: not recorded
    return (
        (chosen, f"the evaluation logged on the model's training run {run_id}") if chosen else None
    )


def resolve_model(
    model: str, params: Params, workdir: Path, regions_from: Path | None = None
) -> ModelSource:
    """A folder or ``models:/NAME@ALIAS`` -> the export to index with and the region settings to use.

    Region settings, first found: ``regions_from`` (a metrics.json or params.yaml); the registered
    checkpoint's bundled params (its settings as chosen on val when it was registered); the
    evaluation logged on a folder model's training run; else params.yaml, and the record says so.
    """
    from components.model.io import retriever_dir
    from components.reader.io import bundled_reader_dir

    match = MODEL_URI.fullmatch(model)
    notes: list[str] = []
    if match:
        from components.registry.rescore import champion_eval_params
        from components.registry.store import download_champion

        name, alias = match["name"], match["alias"]
        lookup = params.model_copy(
            update={"registry": params.registry.model_copy(update={"model_name": name})}
        )
        bundle = download_champion(lookup, Path(workdir) / "registered", alias)
        if bundle is None:
            raise LookupError(
                f"{model}: no version of registered model {name!r} has the alias {alias!r}"
            )
        # The checkpoint's behaviour settings (model, index, rag, regions); this run's data/evaluate settings.
        run_params = champion_eval_params(load_params(bundle["params_file"]), params)
        label, model_dir, reader = (
            f"{model} (v{bundle['version']})",
            Path(bundle["model_dir"]),
            bundle["reader_dir"],
        )
        regions = {
            "source": f"registered checkpoint {label}: the settings bundled at registration",
            "chosen": run_params.regions.model_dump(),
        }
    elif "://" in model or model.startswith("models:"):
        raise ValueError(
            f"--model {model}: give a folder or models:/NAME@ALIAS (e.g. models:/regionops@champion)"
        )
    else:
        model_dir = Path(model)
        if not (retriever_dir(model_dir) / "config.json").is_file():
            raise FileNotFoundError(
                f"--model {model_dir}: no exported retriever there (run `regionops train`)"
            )
        run_params, label, reader = params, str(model_dir), bundled_reader_dir(model_dir)
        recorded = _chosen_on_training_run(model_dir)
        if recorded:
            regions = {"source": recorded[1], "chosen": recorded[0]}
        else:
            regions = {
                "source": "params.yaml (no region choice recorded for this model)",
                "chosen": params.regions.model_dump(),
            }
            notes.append(
                "no region choice recorded for this model: params.yaml's regions settings used"
            )
    if regions_from is not None:
        regions = {
            "source": f"--regions-from {regions_from}",
            "chosen": region_settings_from(regions_from),
        }
        notes = [n for n in notes if not n.startswith("no region choice recorded")]
    run_params = run_params.model_copy(update={"regions": RegionParams(**regions["chosen"])})
    return ModelSource(label, model_dir, run_params, regions, reader, notes)
