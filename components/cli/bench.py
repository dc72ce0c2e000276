"""``regionops bench``: the benchmark ``make bench`` reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from components.cli.common import (
    DEFAULT_PARAMS,
    ParamsOpt,
    SetOpt,
    app,
    emit_text,
)
from components.cli.common import load as params_from
from components.paths import PROJECT
from components.settings import configure_environment


@app.command()
def bench(
    out: Annotated[Path, typer.Option(help="folder for bench.json and bench.md")] = PROJECT.reports,
    pages: Annotated[
        list[int],
        typer.Option(
            help="corpus sizes to measure (repeat the option); one corpus of the largest is generated and encoded, smaller sizes are its leading pages"
        ),
    ] = [1000, 10000],  # noqa: B006
    model: Annotated[
        Path, typer.Option(help="trained retriever (a fresh one is used if absent)")
    ] = PROJECT.model,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
    queries: Annotated[
        int,
        typer.Option(
            min=1, help="questions per size (all of the size's questions up to this many)"
        ),
    ] = 5000,
    real_docs: Annotated[
        Path | None,
        typer.Option(
            help="real pages for the latency figure: a folder of PDFs/images (with --real-questions) or an imported corpus folder; replicated to --real-pages, timed beside synthetic pages"
        ),
    ] = None,
    real_questions: Annotated[
        Path | None,
        typer.Option(
            help="questions JSONL of --real-docs (data contract), when it is a folder of documents"
        ),
    ] = None,
    real_pages: Annotated[
        int,
        typer.Option(min=1, help="pages the real corpus is replicated to for the latency figure"),
    ] = 1000,
    threads: Annotated[
        int,
        typer.Option(
            min=1, help="torch threads while answering (the real-page latency bar is set at 2)"
        ),
    ] = 2,
    regions_from: Annotated[
        Path | None,
        typer.Option(
            help="region settings to serve with (an evaluation's metrics.json or a JSON with regions.chosen, e.g. `tune-regions` on the real train set), as `evaluate --regions-from`; params.yaml's otherwise"
        ),
    ] = None,
    latency_questions: Annotated[
        int,
        typer.Option(
            min=1,
            help="questions timed from their text, per size and per side of the real-page comparison",
        ),
    ] = 200,
) -> None:
    """Per storage mode: the served system's page R@1 / region hit@1, bytes/page and latency, beside lexical_only."""
    params = params_from(params_path, overrides)
    if regions_from is not None:
        from components.config import RegionParams
        from components.registry.model_source import region_settings_from

        params = params.model_copy(
            update={"regions": RegionParams(**region_settings_from(regions_from))}
        )
    configure_environment()
    from components.bench import run_benchmark

    run_benchmark(
        params,
        pages,
        out,
        model,
        max_queries=queries,
        real_docs=real_docs,
        real_questions=real_questions,
        real_pages=real_pages,
        threads=threads,
        latency_questions=latency_questions,
    )
    emit_text((out / "bench.md").read_text())  # also in out/bench.md and out/bench.json
