"""The retriever ablation reviewers are owed (docs/design.md §5): global only, + labelled local, + pseudo-labels.

Each variant is trained with several seeds on the same corpus, indexed and evaluated on the
same split; the table reports mean ± std per variant, for the fused system (``regionops``) and
for the dense channel alone (``regionops_dense``), because the lexical channel does not change
between variants and would hide what the local loss adds.

A mean ± std over three seeds cannot resolve a few points (ADR 14), so each variant is also
compared with ``global_only`` question by question: the paired difference over seeds ×
questions, with a bootstrap interval that resamples both (ADR 19).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from components.config import Params
from components.data.corpus import Corpus
from components.evaluation.paired import paired_difference

# name (an MLflow metric prefix: no "+") -> train.local_loss
RETRIEVER_VARIANTS: dict[str, str] = {
    "global_only": "none",
    "global_labelled_local": "labelled",
    "global_labelled_pseudo_local": "hybrid",
}
REPORTED = (
    ("regionops", "page_r1"),
    ("regionops", "region_hit1"),
    ("regionops_dense", "page_r1"),
    ("regionops_dense", "region_hit1"),
)
REFERENCE_VARIANT = "global_only"  # what the paired differences are taken against


def read_per_question(eval_dir: Path) -> dict[str, dict[str, float | None]]:
    """question id -> "<system>.<metric>" -> score, from an evaluation's ``per_question.jsonl``."""
    out = {}
    for line in (Path(eval_dir) / "per_question.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        out[record["id"]] = {f"{s}.{m}": record["scores"][s][m] for s, m in REPORTED}
    return out


def paired_against_reference(
    scores: dict[tuple[str, int], dict[str, dict[str, float | None]]],
    reference: str = REFERENCE_VARIANT,
) -> dict[str, dict[str, dict]]:
    """variant -> "<system>.<metric>" -> paired difference to ``reference`` (seeds × questions).

    ``scores`` maps (variant, seed) to per-question scores. Only seeds both variants ran and
    questions both scored (the metric present) are paired.
    """
    out: dict[str, dict[str, dict]] = {}
    variants = dict.fromkeys(v for v, _ in scores)
    for variant in variants:
        if variant == reference:
            continue
        seeds = sorted(s for v, s in scores if v == variant and (reference, s) in scores)
        if not seeds:
            continue
        out[variant] = {}
        for s, m in REPORTED:
            key = f"{s}.{m}"
            common = set.intersection(*(
                {q for q, values in scores[(name, seed)].items() if values[key] is not None}
                for seed in seeds for name in (variant, reference)
            ))  # fmt: skip
            ids = sorted(common)
            if not ids:
                continue
            v = [[scores[(variant, seed)][q][key] for q in ids] for seed in seeds]
            r = [[scores[(reference, seed)][q][key] for q in ids] for seed in seeds]
            out[variant][key] = paired_difference(v, r)
    return out


def _mean_std(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


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


def render_markdown(
    summary: dict[str, dict[str, dict]],
    seeds: list[int],
    split: str,
    paired: dict[str, dict[str, dict]] | None = None,
) -> str:
    def cell(v: dict) -> str:
        return "n/a" if v["mean"] is None else f"{v['mean']:.3f} ± {v['std']:.3f}"

    head = [f"{s} {m}" for s, m in REPORTED]
    lines = [
        f"# Retriever ablation ({split} split, seeds {', '.join(map(str, seeds))}; mean ± std)",
        "",
        "| variant | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(head),
    ]
    for variant, values in summary.items():
        lines.append(
            f"| {variant} | " + " | ".join(cell(values[f"{s}.{m}"]) for s, m in REPORTED) + " |"
        )
    if paired:
        lines += [
            "",
            f"## Paired difference to {REFERENCE_VARIANT} (points; 95 % interval over seeds × questions)",
            "",
            "| variant | metric | difference | interval | per seed | only variant / only reference |",
            "|---|---|---|---|---|---|",
        ]
        for variant, metrics in paired.items():
            for key, d in metrics.items():
                per_seed = " / ".join(f"{100 * x:+.1f}" for x in d["per_seed"])
                interval = (
                    "n/a"
                    if d["ci_low"] is None
                    else f"[{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]"
                )
                lines.append(
                    f"| {variant} | {key} | {100 * d['difference']:+.1f} | {interval} | {per_seed} | "
                    f"{d['variant_only']} / {d['reference_only']} |"
                )
    return "\n".join(lines) + "\n"


def ablate_retriever(
    params: Params,
    corpus: Corpus,
    out_dir: Path,
    settings,
    seeds: list[int],
    variants: dict[str, str] | None = None,
    progress=None,
) -> dict[str, Any]:
    """Train, index and evaluate each variant × seed; write ``ablation_retriever.{json,md}``."""
    from components.evaluation.evaluate import run_evaluation
    from components.index.build import build_index
    from components.training.train import train_retriever

    variants = variants or RETRIEVER_VARIANTS
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    per_question: dict[tuple[str, int], dict] = {}
    for variant, local_loss in variants.items():
        for seed in seeds:
            run_params = params.model_copy(deep=True)
            run_params.seed = seed
            run_params.train.local_loss = local_loss
            with tempfile.TemporaryDirectory(prefix="regionops-ablate-") as tmp:
                model_dir, index_dir = Path(tmp) / "model", Path(tmp) / "index"
                trained = train_retriever(run_params, corpus, model_dir, settings)
                build_index(run_params, corpus, model_dir, index_dir)
                metrics = run_evaluation(
                    run_params,
                    corpus,
                    model_dir,
                    index_dir,
                    Path(tmp) / "eval",
                    settings,
                    log_mlflow=False,
                )
                per_question[(variant, seed)] = read_per_question(Path(tmp) / "eval")
            row = {
                "variant": variant,
                "local_loss": local_loss,
                "seed": seed,
                "train_run_id": trained["run_id"],
            }
            row.update({f"{s}.{m}": metrics["systems"][s][m] for s, m in REPORTED})
            rows.append(row)
            if progress is not None:
                progress(row)
    summary = summarise(rows)
    paired = paired_against_reference(per_question)
    report = {
        "split": params.evaluate.split,
        "seeds": list(seeds),
        "rows": rows,
        "summary": summary,
        "paired_vs_" + REFERENCE_VARIANT: paired,
    }
    (out_dir / "ablation_retriever.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "ablation_retriever.md").write_text(
        render_markdown(summary, list(seeds), params.evaluate.split, paired)
    )
    report["mlflow_run_id"] = _log(params, settings, out_dir, summary, paired)
    return report


def _log(params: Params, settings, out_dir: Path, summary: dict, paired: dict) -> str:
    import mlflow

    from components.tracking import ensure_experiment

    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri)
    experiment_id = ensure_experiment(client, params.registry.experiment)
    run = client.create_run(
        experiment_id,
        run_name="ablate-retriever",
        tags={"regionops.stage": "ablate", "regionops.ablation": "retriever"},
    )
    for variant, values in summary.items():
        for key, stat in values.items():
            if stat["mean"] is not None:
                client.log_metric(run.info.run_id, f"{variant}.{key}.mean", stat["mean"])
                client.log_metric(run.info.run_id, f"{variant}.{key}.std", stat["std"])
    for variant, metrics in paired.items():
        for key, d in metrics.items():
            client.log_metric(
                run.info.run_id, f"{variant}.{key}.diff_vs_{REFERENCE_VARIANT}", d["difference"]
            )
    for name in ("ablation_retriever.json", "ablation_retriever.md"):
        client.log_artifact(run.info.run_id, str(out_dir / name), "ablation")
    client.set_terminated(run.info.run_id)
    return run.info.run_id
