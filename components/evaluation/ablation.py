"""The retriever ablation reviewers are owed (DESIGN §5): global only, + labelled local, + pseudo-labels.

Each variant is trained with several seeds on the same corpus, indexed and evaluated on the
same split; the table reports mean ± std per variant, for the fused system (``regionops``) and
for the dense channel alone (``regionops_dense``), because the lexical channel does not change
between variants and would hide what the local loss adds.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from components.config import Params
from components.data.corpus import Corpus

# name (an MLflow metric prefix: no "+") -> train.local_loss
RETRIEVER_VARIANTS: dict[str, str] = {
    "global_only": "none",
    "global_labelled_local": "labelled",
    "global_labelled_pseudo_local": "hybrid",
}
REPORTED = (("regionops", "page_r1"), ("regionops", "region_hit1"),
            ("regionops_dense", "page_r1"), ("regionops_dense", "region_hit1"))


def _mean_std(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict]]:
    """variant -> "<system>.<metric>" -> {mean, std} over seeds."""
    out: dict[str, dict[str, dict]] = {}
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        out[variant] = {
            f"{s}.{m}": _mean_std([r[f"{s}.{m}"] for r in mine if r.get(f"{s}.{m}") is not None])
            for s, m in REPORTED
        }
    return out


def render_markdown(summary: dict[str, dict[str, dict]], seeds: list[int], split: str) -> str:
    def cell(v: dict) -> str:
        return "n/a" if v["mean"] is None else f"{v['mean']:.3f} ± {v['std']:.3f}"

    head = [f"{s} {m}" for s, m in REPORTED]
    lines = [f"# Retriever ablation ({split} split, seeds {', '.join(map(str, seeds))}; mean ± std)", "",
             "| variant | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for variant, values in summary.items():
        lines.append(f"| {variant} | " + " | ".join(cell(values[f'{s}.{m}']) for s, m in REPORTED) + " |")
    return "\n".join(lines) + "\n"


def ablate_retriever(
    params: Params, corpus: Corpus, out_dir: Path, settings, seeds: list[int],
    variants: dict[str, str] | None = None, progress=None,
) -> dict[str, Any]:
    """Train, index and evaluate each variant × seed; write ``ablation_retriever.{json,md}``."""
    from components.evaluation.evaluate import run_evaluation
    from components.index.build import build_index
    from components.training.train import train_retriever

    variants = variants or RETRIEVER_VARIANTS
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for variant, local_loss in variants.items():
        for seed in seeds:
            run_params = params.model_copy(deep=True)
            run_params.seed = seed
            run_params.train.local_loss = local_loss
            with tempfile.TemporaryDirectory(prefix="regionops-ablate-") as tmp:
                model_dir, index_dir = Path(tmp) / "model", Path(tmp) / "index"
                trained = train_retriever(run_params, corpus, model_dir, settings)
                build_index(run_params, corpus, model_dir, index_dir)
                metrics = run_evaluation(run_params, corpus, model_dir, index_dir, Path(tmp) / "eval",
                                         settings, log_mlflow=False)
            row = {"variant": variant, "local_loss": local_loss, "seed": seed, "train_run_id": trained["run_id"]}
            row.update({f"{s}.{m}": metrics["systems"][s][m] for s, m in REPORTED})
            rows.append(row)
            if progress is not None:
                progress(row)
    summary = summarise(rows)
    report = {"split": params.evaluate.split, "seeds": list(seeds), "rows": rows, "summary": summary}
    (out_dir / "ablation_retriever.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "ablation_retriever.md").write_text(render_markdown(summary, list(seeds), params.evaluate.split))
    report["mlflow_run_id"] = _log(params, settings, out_dir, summary)
    return report


def _log(params: Params, settings, out_dir: Path, summary: dict) -> str:
    import mlflow

    from components.tracking import ensure_experiment

    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri)
    experiment_id = ensure_experiment(client, params.registry.experiment)
    run = client.create_run(experiment_id, run_name="ablate-retriever",
                            tags={"regionops.stage": "ablate", "regionops.ablation": "retriever"})
    for variant, values in summary.items():
        for key, stat in values.items():
            if stat["mean"] is not None:
                client.log_metric(run.info.run_id, f"{variant}.{key}.mean", stat["mean"])
                client.log_metric(run.info.run_id, f"{variant}.{key}.std", stat["std"])
    for name in ("ablation_retriever.json", "ablation_retriever.md"):
        client.log_artifact(run.info.run_id, str(out_dir / name), "ablation")
    client.set_terminated(run.info.run_id)
    return run.info.run_id
