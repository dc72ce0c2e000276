"""Training commands: the region retriever and the span reader (Lightning)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from components.cli.common import (
    DEFAULT_PARAMS,
    ParamsOpt,
    SetOpt,
    app,
    emit,
    require_index,
    require_model,
)
from components.cli.common import corpus as project_corpus
from components.cli.common import load as params_from
from components.paths import PROJECT
from components.settings import configure_environment


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="where the exported retriever goes")] = PROJECT.model,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Train the region retriever in Lightning (global + local loss, hybrid supervision)."""
    params = params_from(params_path, overrides)
    settings = configure_environment()
    from components.training.train import train_retriever

    result = train_retriever(params, project_corpus(params), out, settings)
    emit(result)


@app.command("train-reader")
def train_reader_cmd(
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = PROJECT.model,
    index: Annotated[Path, typer.Option(help="index folder")] = PROJECT.index,
    out: Annotated[Path, typer.Option(help="where the exported reader goes")] = PROJECT.reader,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Train the span reader with noisy contexts (reader.noise_rho distractors) in Lightning."""
    params = params_from(params_path, overrides)
    settings = configure_environment()
    require_model(model)
    require_index(index)
    from components.reader.train import train_reader

    record, _ = train_reader(params, project_corpus(params), model, index, out, settings)
    emit(record)
