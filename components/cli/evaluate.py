"""Evaluation commands: score the systems, answer one question, diff two runs, and the ablations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from components.cli.common import (
    DEFAULT_PARAMS,
    ParamsOpt,
    SetOpt,
    ablate_app,
    app,
    console,
    emit,
    emit_text,
    require_index,
    require_model,
)
from components.cli.common import corpus as project_corpus
from components.cli.common import load as params_from
from components.paths import PROJECT
from components.settings import configure_environment


@app.command()
def evaluate(
    model: Annotated[
        str, typer.Option(help="exported retriever folder; with --docs also models:/NAME@ALIAS")
    ] = str(PROJECT.model),
    index: Annotated[
        Path, typer.Option(help="index folder (not with --docs: the folder is indexed afresh)")
    ] = PROJECT.index,
    out: Annotated[Path, typer.Option(help="metrics folder")] = PROJECT.eval,
    reader: Annotated[
        Path | None,
        typer.Option(
            help="exported reader folder: answer metrics (split mode); "
            "with --docs, the answerer of every system"
        ),
    ] = None,
    docs: Annotated[
        Path | None,
        typer.Option(
            help="evaluate on this folder of PDFs/images instead of the "
            "corpus split (imported and indexed in a temp folder)"
        ),
    ] = None,
    questions: Annotated[
        Path | None, typer.Option(help="questions JSONL for --docs (the import format)")
    ] = None,
    tune_on: Annotated[
        float | None,
        typer.Option(
            help="with --docs: tune region settings on this seeded "
            "share of the documents and score only the rest"
        ),
    ] = None,
    regions_from: Annotated[
        Path | None,
        typer.Option(
            help="with --docs: region settings from this "
            "metrics.json (regions.chosen) or params.yaml"
        ),
    ] = None,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Score regionops and the baselines (on the evaluation split, or on --docs); write metrics.json and
    report.md. The results JSON goes to stdout, everything else to stderr."""
    params = params_from(params_path, overrides)
    settings = configure_environment()
    if reader is not None and not (reader / "config.json").is_file():
        console.print(
            f"[red]--reader {reader}: no exported reader there (run `regionops train-reader`)[/red]"
        )
        raise typer.Exit(2)
    if docs is None and (questions is not None or tune_on is not None or regions_from is not None):
        console.print("[red]--questions, --tune-on and --regions-from go with --docs[/red]")
        raise typer.Exit(2)
    if docs is not None and questions is None:
        console.print(
            "[red]--docs needs --questions (a JSONL of questions on those documents)[/red]"
        )
        raise typer.Exit(2)
    if docs is None:
        if model.startswith("models:"):
            console.print(
                "[red]a models:/ URI is evaluated on a folder: add --docs and --questions[/red]"
            )
            raise typer.Exit(2)
        require_model(Path(model))
        require_index(index)
        from components.evaluation.evaluate import run_evaluation

        metrics = run_evaluation(
            params, project_corpus(params), Path(model), index, out, settings, reader_dir=reader
        )
        result = {"systems": metrics["systems"], "n_questions": metrics["n_questions"]}
    else:
        import tempfile

        from components.evaluation.folder_eval import evaluate_folder
        from components.registry.model_source import resolve_model

        try:
            with tempfile.TemporaryDirectory(prefix="regionops-model-") as workdir:
                source = resolve_model(model, params, Path(workdir), regions_from)
                metrics = evaluate_folder(
                    params,
                    docs,
                    questions,
                    source,
                    out,
                    tune_on,
                    reader,
                    log=lambda line: console.print(line, markup=False),
                )
        except (ValueError, LookupError, FileNotFoundError, NotADirectoryError) as exc:
            console.print(f"[red]evaluate --docs failed:[/red] {exc}")
            raise typer.Exit(2) from None
        keys = (
            "systems",
            "systems_text_only",
            "n_questions",
            "block_recall",
            "answerer",
            "import",
            "regions",
            "tuned_on",
            "notes",
            "model",
        )
        result = {key: metrics[key] for key in keys} | {"out": str(out)}
    emit(result)


@app.command("tune-regions")
def tune_regions(
    docs: Annotated[
        Path, typer.Option(help="folder of PDFs/images to tune on (never the set you report)")
    ],
    questions: Annotated[Path, typer.Option(help="questions JSONL for --docs (the import format)")],
    out: Annotated[
        Path, typer.Option(help="JSON to write; `regionops evaluate --regions-from` reads it")
    ],
    model: Annotated[
        str, typer.Option(help="exported retriever folder or models:/NAME@ALIAS")
    ] = str(PROJECT.model),
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Tune region settings (threshold, snapping, the region rule) on a folder's boxed questions and
    write them for `evaluate --regions-from`: choose on real training documents, score on dev."""
    import tempfile

    from components.evaluation.folder_eval import tune_folder
    from components.registry.model_source import resolve_model

    params = params_from(params_path, overrides)
    configure_environment()
    try:
        with tempfile.TemporaryDirectory(prefix="regionops-model-") as workdir:
            source = resolve_model(model, params, Path(workdir))
            result = tune_folder(
                params, docs, questions, source, log=lambda line: console.print(line, markup=False)
            )
    except (ValueError, LookupError, FileNotFoundError, NotADirectoryError) as exc:
        console.print(f"[red]tune-regions failed:[/red] {exc}")
        raise typer.Exit(2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    emit(result | {"out": str(out)})


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="the question")],
    k: Annotated[int, typer.Option(help="regions to return")] = 5,
    reader: Annotated[
        Path | None, typer.Option(help="exported reader folder: answer with the span reader")
    ] = None,
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = PROJECT.model,
    index: Annotated[Path, typer.Option(help="index folder")] = PROJECT.index,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Print ranked regions (page id, normalised box, score) and the answer for a question."""
    params = params_from(params_path, overrides)
    configure_environment()
    require_model(model)
    require_index(index)
    from components.rag.engine import RagEngine

    engine = RagEngine.from_dirs(model, index, params)
    if reader is not None:
        engine.with_reader(reader)
    result = engine.answer(question, k=k)
    emit(result.to_dict())


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="MLflow run id A (the baseline)")],
    run_b: Annotated[str, typer.Argument(help="MLflow run id B (deltas are B - A)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Diff two runs: the params that changed, and the metrics side by side with deltas."""
    configure_environment()
    from components.evaluation.run_diff import RunNotFound, diff_runs
    from components.registry.client import registry_client

    try:
        diff = diff_runs(registry_client(), run_a, run_b)
    except RunNotFound as exc:
        console.print(f"[red]compare failed:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        emit(diff.to_dict())
        return
    emit_text(diff.to_markdown())


@ablate_app.command("retriever")
def ablate_retriever_cmd(
    seeds: Annotated[str, typer.Option(help="comma-separated training seeds")] = "13,14,15",
    variants: Annotated[
        str,
        typer.Option(
            help="comma-separated variants (global_only always runs: "
            "the others are compared with it)"
        ),
    ] = "",
    out: Annotated[Path, typer.Option(help="where the tables go")] = PROJECT.reports,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Global-only vs + labelled local vs + pseudo-labelled local, each over seeds (mean ± std,
    and each variant's paired difference to global-only with a 95 % interval)."""
    params = params_from(params_path, overrides)
    settings = configure_environment()
    from components.evaluation.ablation import (
        REFERENCE_VARIANT,
        RETRIEVER_VARIANTS,
        ablate_retriever,
    )

    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    names = [v.strip() for v in variants.split(",") if v.strip()] or list(RETRIEVER_VARIANTS)
    unknown = sorted(set(names) - set(RETRIEVER_VARIANTS))
    if unknown:
        console.print(
            f"[red]--variants: unknown {unknown}; choose from {list(RETRIEVER_VARIANTS)}[/red]"
        )
        raise typer.Exit(2)
    chosen = {v: RETRIEVER_VARIANTS[v] for v in [REFERENCE_VARIANT, *names]}
    report = ablate_retriever(
        params,
        project_corpus(params),
        out,
        settings,
        seed_list,
        variants=chosen,
        progress=lambda row: console.print_json(json.dumps(row)),
    )  # progress: stderr
    emit_text((out / "ablation_retriever.md").read_text())
    console.print(f"MLflow run {report['mlflow_run_id']}")


@ablate_app.command("reader")
def ablate_reader_cmd(
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = PROJECT.model,
    index: Annotated[Path, typer.Option(help="index folder")] = PROJECT.index,
    out: Annotated[Path, typer.Option(help="folder for the tables")] = PROJECT.reports,
    seeds: Annotated[
        list[int] | None, typer.Option("--seed", help="seeds (default reader.ablation_seeds)")
    ] = None,
    rhos: Annotated[
        list[float] | None, typer.Option("--rho", help="noise levels (default 0, 1/3, 1/2, 2/3)")
    ] = None,
    modes: Annotated[
        list[str] | None,
        typer.Option("--mode", help="visual token modes, refine first (default all)"),
    ] = None,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Noise sweep (ρ × clean/retrieved), token refinement vs pooling vs random, two- vs single-stage."""
    params = params_from(params_path, overrides)
    settings = configure_environment()
    require_model(model)
    require_index(index)
    from components.evaluation.reader_ablation import ablate_reader

    result = ablate_reader(
        params,
        project_corpus(params),
        model,
        index,
        out,
        settings,
        seeds or params.reader.ablation_seeds,
        tuple(rhos or ()),
        tuple(modes or ()),
    )
    emit_text(result["markdown"])


@ablate_app.command("two-stage")
def ablate_two_stage_cmd(
    reader: Annotated[Path, typer.Option(help="exported reader folder")],
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = PROJECT.model,
    index: Annotated[Path, typer.Option(help="index folder")] = PROJECT.index,
    out: Annotated[Path, typer.Option(help="folder for the tables")] = PROJECT.reports,
    splits: Annotated[
        list[str] | None, typer.Option("--split", help="splits to pool (default val, test)")
    ] = None,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Image questions: two-stage with stage 1 by stored pictures vs by the pixel path vs single-stage (ADR 8)."""
    params = params_from(params_path, overrides)
    configure_environment()
    require_model(model)
    require_index(index)
    from components.evaluation.two_stage_eval import run_stage_one_comparison

    chosen = splits or ["val", "test"]
    unknown = set(chosen) - {"train", "val", "test"}
    if unknown:
        console.print(f"[red]--split {sorted(unknown)}: splits are train, val, test[/red]")
        raise typer.Exit(2)
    result = run_stage_one_comparison(
        params, project_corpus(params), model, index, reader, chosen, out
    )
    emit_text(Path(result["report"]["markdown"]).read_text())
