"""``regionops index``: build, extend, prune, describe and verify the region index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from components.cli.common import (
    DEFAULT_PARAMS,
    ParamsOpt,
    SetOpt,
    console,
    emit,
    index_app,
    require_index,
    require_model,
)
from components.cli.common import corpus as project_corpus
from components.cli.common import load as params_from
from components.paths import PROJECT
from components.settings import configure_environment


@index_app.command("build")
def index_build(
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = PROJECT.model,
    out: Annotated[Path, typer.Option(help="index folder")] = PROJECT.index,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Encode every page and write the faiss region index atomically."""
    params = params_from(params_path, overrides)
    configure_environment()
    from components.index.build import build_index
    from components.index.version_folders import UnsafeIndexTargetError, check_target

    try:
        check_target(out)  # before hours of encoding, not after
    except UnsafeIndexTargetError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    require_model(model)
    stats = build_index(params, project_corpus(params), model, out)
    emit(stats)


@index_app.command("add")
def index_add(
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = PROJECT.model,
    index: Annotated[Path, typer.Option(help="index folder")] = PROJECT.index,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Encode only the corpus pages the index lacks and add them, without a rebuild."""
    params = params_from(params_path, overrides)
    configure_environment()
    require_model(model)
    require_index(index)
    from components.index.build import add_to_index

    emit(add_to_index(params, project_corpus(params), model, index))


@index_app.command("delete")
def index_delete(
    doc: Annotated[str, typer.Option(help="document (relative path) whose pages to remove")],
    index: Annotated[Path, typer.Option(help="index folder")] = PROJECT.index,
) -> None:
    """Remove every page of one document from the index (saved atomically)."""
    configure_environment()
    require_index(index)
    from components.index.build import delete_from_index

    emit(delete_from_index(index, doc))


@index_app.command("stats")
def index_stats(index: Annotated[Path, typer.Option(help="index folder")] = PROJECT.index) -> None:
    """Print what an index holds."""
    require_index(index)
    from components.index.region_index import RegionIndex

    emit(RegionIndex.load(index).stats())


@index_app.command("verify")
def index_verify(index: Annotated[Path, typer.Option(help="index folder")] = PROJECT.index) -> None:
    """Check every file of the live index version against the sha256 in its manifest, then load it."""
    from components.index.region_index import IndexFormatError, RegionIndex

    try:
        loaded = RegionIndex.load(index, verify=True)
    except IndexFormatError as exc:
        console.print(f"[red]index damaged:[/red] {exc}")
        raise typer.Exit(1) from None
    emit({"index": str(index), "ok": True, "pages": len(loaded)})
