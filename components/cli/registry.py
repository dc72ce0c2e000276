"""Registry commands: gate, register, roll back, reproduce and the alias history.

``gate`` and ``register`` decide through the one gate path (``registry.gate.judge`` over
``registry.store.champion_reference``), as the promote step and ``rescore`` do."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from components import versioning
from components.cli.common import (
    DEFAULT_PARAMS,
    ParamsOpt,
    SetOpt,
    app,
    console,
    emit,
    emit_text,
    require,
    require_index,
    require_model,
)
from components.cli.common import corpus as project_corpus
from components.cli.common import load as params_from
from components.paths import PROJECT
from components.settings import configure_environment


def _read_candidate(metrics: Path, model: Path | None) -> dict:
    """The candidate's metrics from its evaluation run; a clear error (exit 2) when they cannot be trusted."""
    from components.registry.client import registry_client
    from components.registry.evaluation_run import EvaluationRunError
    from components.registry.store import read_candidate

    try:
        return read_candidate(registry_client(), metrics, model)
    except EvaluationRunError as exc:
        console.print(f"[red]cannot gate:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def gate(
    metrics: Annotated[Path, typer.Option(help="candidate metrics.json")] = PROJECT.metrics,
    index: Annotated[
        Path, typer.Option(help="candidate index folder (its pages define the eval set)")
    ] = PROJECT.index,
    model: Annotated[
        Path,
        typer.Option(
            help="candidate retriever folder (its train_run.json names the "
            "training run the evaluation run must belong to)"
        ),
    ] = PROJECT.model,
    rescore: Annotated[
        bool,
        typer.Option(
            "--rescore/--no-rescore", help="re-score the champion on the candidate's eval set first"
        ),
    ] = True,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Judge a candidate against the floors and the current champion, by the metrics of its MLflow
    evaluation run (named in metrics.json, which must agree with it)."""
    params = params_from(params_path, overrides)
    configure_environment()
    require(metrics, "candidate metrics", PROJECT.eval)
    from components.registry.client import registry_client
    from components.registry.gate import judge
    from components.registry.store import champion_reference, champion_version

    candidate = _read_candidate(metrics, model if (model / "train_run.json").is_file() else None)
    client = registry_client()
    champion = champion_version(client, params.registry.model_name)
    rescored = None
    if champion is not None and rescore:
        import tempfile

        require_index(index)  # only a re-score reads it
        from components.registry.rescore import rescore_champion

        with tempfile.TemporaryDirectory(prefix="regionops-rescore-") as tmp:
            rescored = rescore_champion(params, project_corpus(params), index, candidate, Path(tmp))
    decision = judge(candidate, champion_reference(client, champion, rescored), params.gate)
    emit(decision.to_dict())
    raise typer.Exit(0 if decision.passed else 1)


@app.command()
def register(
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = PROJECT.model,
    index: Annotated[Path, typer.Option(help="index folder")] = PROJECT.index,
    metrics: Annotated[Path, typer.Option(help="candidate metrics.json")] = PROJECT.metrics,
    rescore: Annotated[
        bool,
        typer.Option(
            "--rescore/--no-rescore", help="re-score the champion on the candidate's eval set first"
        ),
    ] = True,
    reader: Annotated[
        Path | None,
        typer.Option(help="exported reader to bundle (default: data/reader/reader when it exists)"),
    ] = None,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Gate the candidate, register it as a pyfunc RAG checkpoint and move aliases."""
    params = params_from(params_path, overrides)
    configure_environment()
    require_model(model)
    require_index(index)
    require(metrics, "candidate metrics", PROJECT.eval)
    from components.registry.promote import gate_and_register
    from components.registry.rescore import gate_and_register_rescored

    if reader is None and (PROJECT.reader_export / "config.json").is_file():
        reader = PROJECT.reader_export
    _read_candidate(
        metrics, model
    )  # a metrics.json its evaluation run does not back stops here, clearly
    if rescore:
        outcome = gate_and_register_rescored(
            params, project_corpus(params), model, index, metrics, reader_dir=reader
        )
    else:
        corpus = project_corpus(params)
        outcome = gate_and_register(
            params,
            model,
            index,
            metrics,
            reader_dir=reader,
            page_images=[(p.id, corpus.image_path(p)) for p in corpus.pages],
        )
    emit(outcome)


@app.command()
def rollback(
    reason: Annotated[
        str, typer.Option("--reason", help="why champion moves back (recorded in the audit trail)")
    ],
    to: Annotated[
        str | None, typer.Option("--to", help="version to restore (default: the previous champion)")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="allow a version whose gate failed (recorded as an override)"),
    ] = False,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Move the champion alias back to an earlier version, recording who, when and why.

    A version whose gate failed is refused unless --force; the override is in the audit trail.
    """
    params = params_from(params_path, overrides)
    configure_environment()
    from components.registry.audit import rollback as rollback_champion
    from components.registry.errors import RegistryError

    try:
        outcome = rollback_champion(params, to, reason, force=force)
    except RegistryError as exc:
        console.print(f"[red]rollback refused:[/red] {exc}")
        raise typer.Exit(1) from None
    emit(outcome)


@app.command()
def reproduce(
    version: Annotated[str, typer.Argument(help="registered model version")],
    out: Annotated[Path, typer.Option("--out", help="new, empty folder to rebuild the version in")],
    params_path: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Rebuild a registered version from its record (dvc.lock, params, DVC remote) and re-score it.

    Exits 1 when the re-scored quality metrics differ from the ones recorded with the version.
    """
    params = params_from(params_path, None)
    settings = configure_environment()
    from components.registry.client import registry_client
    from components.reproduce import ReproduceError, reproduce_version

    try:
        result = reproduce_version(
            registry_client(), params.registry.model_name, version, out, settings.dvc_remote
        )
    except (ReproduceError, versioning.StageFailed) as exc:
        console.print(f"[red]reproduce failed:[/red] {exc}")
        raise typer.Exit(2) from None
    emit(result)
    if result["problems"]:
        console.print("[red]re-scored metrics differ from the recorded ones[/red]")
        raise typer.Exit(1)


@app.command()
def history(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Print every alias move of the registered model (promote, challenger, rollback)."""
    params = params_from(params_path, overrides)
    configure_environment()
    from components.registry.audit import history as alias_history

    events = alias_history(params)
    if as_json:
        emit(events)
        return
    import io

    from rich.table import Table

    table = Table(title=f"alias moves of {params.registry.model_name}")
    for column in ("when", "who", "action", "alias", "from", "to", "reason"):
        table.add_column(column)
    for e in events:
        table.add_row(
            e["when"],
            e["who"],
            e["action"],
            e["alias"],
            str(e["from_version"] or "—"),
            str(e["to_version"]),
            e["reason"],
        )
    rendered = Console(file=io.StringIO(), width=160, record=True)
    rendered.print(table)
    emit_text(rendered.export_text())
