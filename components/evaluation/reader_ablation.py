"""`regionops ablate reader`: the reader studies of issue 7, mean ± std over seeds.

Studies (each reader trained from scratch per seed; retrieval runs once and is shared):
  noise       ρ ∈ {0, 1/3, 1/2, 2/3} × {clean (oracle) contexts, retrieved regions};
  tokens      visual tokens chosen by query-oriented refinement vs average pooling vs random top-m
              (a reader trained and evaluated with each), at reader.noise_rho, retrieved regions;
  level       region-level vs page-level answering at the same k and budget rule (ANLS and the
              text + visual tokens actually passed);
  two_stage   image questions: two-stage (image -> entity -> rewritten question) vs single-stage.
Writes ``reader_ablation.json`` and ``reader_ablation.md`` into the output folder and logs both
plus the aggregated metrics to one MLflow run.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import defaultdict
from pathlib import Path

from components.config import Params
from components.data.corpus import Corpus

RHOS = (0.0, 1 / 3, 0.5, 2 / 3)
MODES = ("refine", "avgpool", "random")


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(rows: list[dict]) -> list[dict]:
    """Rows (study, condition, seed, metric values) -> one row per (study, condition) with mean and std."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["study"], row["condition"])].append(row)
    out = []
    for (study, condition), members in groups.items():
        agg = {
            "study": study,
            "condition": condition,
            "seeds": len(members),
            "n": members[0].get("n"),
        }
        for key in ("anls", "em", "visual_tokens", "text_tokens", "tokens", "precision"):
            if any(key in m for m in members):
                agg[f"{key}_mean"], agg[f"{key}_std"] = _mean_std([m.get(key) for m in members])
        out.append(agg)
    return out


def to_markdown(table: list[dict]) -> str:
    def cell(row, key):
        mean, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
        return "" if mean is None else f"{mean:.4f} ± {std:.4f}"

    lines = [
        "| study | condition | seeds | n | ANLS | EM | tokens passed | visual tokens | precision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        lines.append(
            f"| {r['study']} | {r['condition']} | {r['seeds']} | {r['n']} | {cell(r, 'anls')} | "
            f"{cell(r, 'em')} | {cell(r, 'tokens')} | {cell(r, 'visual_tokens')} | {cell(r, 'precision')} |"
        )
    return "\n".join(lines) + "\n"


def _scored(study: str, condition: str, seed: int, score: dict) -> dict:
    return {"study": study, "condition": condition, "seed": seed, **score}


def ablate_reader(
    params: Params,
    corpus: Corpus,
    model_dir: Path,
    index_dir: Path,
    out_dir: Path,
    settings,
    seeds: list[int],
    rhos: tuple[float, ...] | None = None,
    modes: tuple[str, ...] | None = None,
) -> dict:
    """Run the studies (``rhos``/``modes`` narrow the sweep; the default runs all of it)."""
    import mlflow

    from components.evaluation.answering import AnsweringBench
    from components.evaluation.evaluate import choose_region_params
    from components.rag.engine import RagEngine
    from components.reader.answerer import ReaderAnswerer
    from components.reader.train import load_retrieval, train_reader
    from components.tracking import ensure_experiment

    retrieval = load_retrieval(model_dir, index_dir)
    # Region settings chosen on val (never test), as `regionops evaluate` does.
    params, region_choice = choose_region_params(params, corpus, RagEngine(*retrieval, params))
    engine = RagEngine(*retrieval, params)
    bench = AnsweringBench(params, corpus, engine, params.evaluate.split)
    # params.yaml writes 1/3 as 0.3333: the sweep's 1/3 is the same condition.
    default_rho = next(
        (r for r in (rhos or RHOS) if abs(r - params.reader.noise_rho) < 1e-3),
        params.reader.noise_rho,
    )
    rows: list[dict] = []
    rhos = tuple(rhos) if rhos else RHOS
    modes = tuple(modes) if modes else MODES
    if modes[0] != "refine":
        raise ValueError(
            f"the token study compares against refine: modes must start with it, got {modes}"
        )

    def trained(seed: int, rho: float, mode: str):
        reader_params = params.reader.model_copy(update={"noise_rho": rho, "visual_tokens": mode})
        p = params.model_copy(update={"seed": seed, "reader": reader_params})
        _, reader = train_reader(
            p,
            corpus,
            model_dir,
            index_dir,
            None,
            settings,
            retrieval,
            run_name=f"ablate-reader-s{seed}-rho{rho:.2f}-{mode}",
        )
        return ReaderAnswerer(reader, retrieval[1])

    for seed in seeds:
        for rho in sorted(set(rhos) | {default_rho}):
            answerer = trained(seed, rho, "refine")
            if rho in rhos:
                rows.append(
                    _scored("noise", f"rho={rho:.2f} clean", seed, bench.score(answerer, "oracle"))
                )
                rows.append(
                    _scored(
                        "noise",
                        f"rho={rho:.2f} retrieved",
                        seed,
                        bench.score(answerer, "regionops"),
                    )
                )
            if rho == default_rho:
                rows.append(
                    _scored("tokens", "refine", seed, bench.score(answerer, "regionops", "refine"))
                )
                rows.append(_scored("level", "region", seed, bench.score(answerer, "regionops")))
                rows.append(_scored("level", "page", seed, bench.score(answerer, "page_level")))
                rows.append(
                    _scored(
                        "two_stage", "two-stage answers", seed, bench.score(answerer, "two_stage")
                    )
                )
                rows.append(
                    _scored(
                        "two_stage",
                        "single-stage answers",
                        seed,
                        bench.score(answerer, "single_stage"),
                    )
                )
        for mode in modes[1:]:
            answerer = trained(seed, default_rho, mode)
            rows.append(_scored("tokens", mode, seed, bench.score(answerer, "regionops", mode)))
    precision = bench.retrieval_precision()  # retrieval only: the same for every seed
    for key in ("stage1_precision", "stage2_precision", "single_stage_precision"):
        if precision.get(key) is not None:
            rows.append(
                {
                    "study": "two_stage",
                    "condition": key,
                    "seed": seeds[0],
                    "n": precision["n_image_questions"],
                    "precision": precision[key],
                }
            )

    table = aggregate(rows)
    markdown = (
        f"# Reader ablation ({params.evaluate.split} split, seeds {list(seeds)}, "
        f"reader.max_steps={params.reader.max_steps}, k={bench.k}, m={params.reader.top_m})\n\n"
        + to_markdown(table)
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "seeds": list(seeds),
        "regions": region_choice,
        "rows": rows,
        "table": table,
        "two_stage_retrieval": precision,
        "params": {k: v for k, v in params.flat().items() if k.startswith("reader.")},
    }
    for name, text in (
        ("reader_ablation.json", json.dumps(result, indent=2) + "\n"),
        ("reader_ablation.md", markdown),
    ):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out_dir / name)

    mlflow.set_tracking_uri(settings.tracking_uri)
    experiment_id = ensure_experiment(mlflow.MlflowClient(), params.registry.experiment)
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name="ablate-reader",
        tags={"regionops.stage": "ablate-reader"},
    ) as run:
        mlflow.log_params({"seeds": ",".join(map(str, seeds)), **result["params"]})
        for row in table:
            base = f"{row['study']}.{row['condition']}".replace(" ", "_").replace("=", "_")
            for key, value in row.items():
                if key.endswith(("_mean", "_std")) and value is not None:
                    mlflow.log_metric(f"{base}.{key}", value)
        mlflow.log_artifact(str(out_dir / "reader_ablation.json"), artifact_path="ablation")
        mlflow.log_artifact(str(out_dir / "reader_ablation.md"), artifact_path="ablation")
        result["mlflow_run_id"] = run.info.run_id
    return {**result, "markdown": markdown}
