"""Data commands: generate the synthetic corpus, import a user's documents, validate, preview a page,
and take in the landing folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from components import versioning
from components.cli.common import (
    DATA_CONTRACT,
    DEFAULT_PARAMS,
    ParamsOpt,
    SetOpt,
    app,
    console,
    emit,
    landing_app,
)
from components.cli.common import load as params_from
from components.paths import PROJECT
from components.settings import configure_environment


@app.command()
def generate(
    out: Annotated[
        Path | None, typer.Option(help="corpus folder (default: data.corpus_dir)")
    ] = None,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Render the seeded synthetic corpus: pages, text layers, questions with evidence boxes."""
    params = params_from(params_path, overrides)
    configure_environment()
    from components.data.synthetic import generate_corpus

    summary = generate_corpus(params, Path(out or params.data.corpus_dir))
    emit(summary)


@app.command("import")
def import_(
    docs: Annotated[Path, typer.Option(help="folder of PDFs and images")],
    name: Annotated[str, typer.Option(help="collection name")],
    questions: Annotated[
        Path | None, typer.Option(help=f"questions JSONL ({DATA_CONTRACT})")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="corpus folder to write")] = None,
    dvc: Annotated[bool, typer.Option(help="version the imported dataset with `dvc add`")] = True,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Import a user's PDFs/images (and questions) through the data contract, quarantining bad input.

    Page ids are <relative path>#<page>; the questions JSONL format, what is kept as metadata and
    what is quarantined (with its reason) are in docs/data-contract.md.
    """
    params = params_from(params_path, overrides)
    configure_environment()
    from components.data.importer import UnsafeImportError, check_collection_name, import_documents

    try:
        check_collection_name(name)  # it becomes a path below: a slug, never "../.."
        target = Path(out or PROJECT.collection(name))
        report = import_documents(docs, questions, target, params, collection=name)
    except (UnsafeImportError, NotADirectoryError, FileNotFoundError) as exc:
        console.print(f"[red]import refused:[/red] {exc}")
        raise typer.Exit(2) from None
    root = Path.cwd().resolve()
    if dvc and versioning.is_dvc_project(root) and root in target.resolve().parents:
        report["dvc_md5"] = versioning.add(root, target.resolve().relative_to(root).as_posix())
        report["next"] = (
            f"git add {target.as_posix()}.dvc; set data.corpus_dir: {target.as_posix()} in "
            "params.yaml, then `make run` or `dvc repro`"
        )
    emit(report)


@app.command()
def validate(
    out: Annotated[Path, typer.Option(help="validation output folder")] = PROJECT.validation,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Run the Great Expectations suites; quarantine bad records; stop if too many are bad."""
    params = params_from(params_path, overrides)
    configure_environment()
    from components.data.validation import QuarantineLimitExceeded, validate_corpus

    try:
        report = validate_corpus(Path(params.data.corpus_dir), out, params)
    except QuarantineLimitExceeded as exc:
        console.print(f"[red]validation failed:[/red] {exc}")
        raise typer.Exit(1) from None
    emit(report)


@app.command()
def show(
    out: Annotated[Path, typer.Option(help="PNG to write")],
    page: Annotated[str | None, typer.Option(help="page id, <doc>#<page>")] = None,
    question: Annotated[str | None, typer.Option(help="question id (alone: its gold page)")] = None,
    corpus_dir: Annotated[
        Path | None, typer.Option(help="corpus folder (default: data.corpus_dir)")
    ] = None,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Draw a page with its evidence boxes (green) and layout blocks (labelled with their kind)."""
    params = params_from(params_path, overrides)
    from components.data.corpus import load_corpus
    from components.data.preview import draw_page, page_for_question, save_png

    if page is None and question is None:
        console.print("[red]error:[/red] give --page, --question or both")
        raise typer.Exit(2)
    corpus = load_corpus(Path(corpus_dir or params.data.corpus_dir))
    try:
        page_id = page or page_for_question(corpus, question)
        image = draw_page(corpus, page_id, question)
    except KeyError as exc:
        console.print(f"[red]error:[/red] {exc.args[0]}")
        raise typer.Exit(2) from None
    console.print(f"wrote {save_png(image, out)}")


@landing_app.command("ingest")
def landing_ingest(
    landing: Annotated[
        Path, typer.Option(help="folder users drop PDFs/images (+ questions .jsonl) into")
    ] = PROJECT.landing,
    landed: Annotated[
        Path, typer.Option(help="DVC-tracked folder of accepted documents")
    ] = PROJECT.landed,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
    send_event: Annotated[
        bool,
        typer.Option(
            "--emit/--no-emit",
            help="send regionops.landing.files-arrived to the "
            "Prefect server (PREFECT_API_URL) when documents were accepted",
        ),
    ] = True,
) -> None:
    """Take in new landing files once each (by sha256), quarantining bad documents with a reason.

    When documents were accepted, an event tells Prefect (the retrain deployment's trigger starts a retrain).
    """
    params = params_from(params_path, overrides)
    configure_environment()
    import subprocess
    import sys

    from components.data.landing import ingest_landing

    intake = ingest_landing(landing, landed, params)
    emit(intake)
    if send_event and intake["changed"]:
        # Prefect lives in flows/, never in components/: flows.events sends the event.
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.events",
                "files-arrived",
                "--project-dir",
                str(landed.resolve().parent),
            ],
            input=json.dumps(intake),
            text=True,
            check=False,
        )
        if sent.returncode != 0:
            console.print(
                "[red]documents taken in, but the arrival event was not sent:[/red] start the retrain "
                "deployment by hand (prefect deployment run retrain/retrain)"
            )
            raise typer.Exit(sent.returncode)


@landing_app.command("merge")
def landing_merge(
    corpus: Annotated[
        Path | None, typer.Option(help="corpus folder (default: data.corpus_dir)")
    ] = None,
    landed: Annotated[
        Path, typer.Option(help="DVC-tracked folder of accepted documents")
    ] = PROJECT.landed,
    params_path: ParamsOpt = DEFAULT_PARAMS,
    overrides: SetOpt = None,
) -> None:
    """Import the landed documents into the corpus (the generate stage runs this after generating)."""
    params = params_from(params_path, overrides)
    configure_environment()
    from components.data.landing import merge_landed

    emit(merge_landed(Path(corpus or params.data.corpus_dir), landed, params))
