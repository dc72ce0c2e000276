"""What every ``regionops`` command shares: the typer apps, results on stdout and everything else on
stderr, missing inputs named with the command that makes them, params and corpus loading.

Results (JSON, tables, reports) go to stdout and nothing else does: logs, warnings and progress
bars go to stderr, so ``regionops evaluate | jq .systems`` works. A missing input file is named
with the command that makes it, instead of a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from components.config import ConfigError, Params, load_params
from components.paths import PROJECT

app = typer.Typer(
    help="regionops: region-level multimodal RAG, trained, gated and served.", no_args_is_help=True
)
index_app = typer.Typer(help="Build and maintain the region index.", no_args_is_help=True)
app.add_typer(index_app, name="index")
ablate_app = typer.Typer(
    help="Ablations: train variants over seeds, mean ± std tables.", no_args_is_help=True
)
app.add_typer(ablate_app, name="ablate")
landing_app = typer.Typer(
    help="Take in documents dropped into the landing folder.", no_args_is_help=True
)
app.add_typer(landing_app, name="landing")
SUB_APPS = (index_app, ablate_app, landing_app)
console = Console(stderr=True)  # messages and progress; results go through emit


@app.callback()
def _log_to_stderr() -> None:
    """Every command: our INFO records (training progress lines among them) to stderr.

    A stage's parent (``dvc repro`` under Prefect) forwards these lines; without a handler
    the standard ``logging`` records of components would be dropped.
    """
    import logging

    # Other libraries stay at WARNING: their INFO chatter (HTTP clients, migrations) would bury ours.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for ours in ("components", "regionops"):
        logging.getLogger(ours).setLevel(logging.INFO)


DATA_CONTRACT = "docs/data-contract.md"
# Which command makes each default input, for the "missing file" message.
MADE_BY = {
    PROJECT.model: "regionops train",
    PROJECT.index: "regionops index build",
    PROJECT.reader: "regionops train-reader",
    PROJECT.eval: "regionops evaluate",
    PROJECT.validation: "regionops validate",
    PROJECT.corpus: "regionops generate (or regionops import)",
}
_results: list[str] | None = None  # a running command's results, written to stdout when it ends


def emit_text(text: str) -> None:
    """A result for stdout (written when the command ends, after its logs went to stderr)."""
    if _results is None:
        sys.stdout.write(text.rstrip("\n") + "\n")
    else:
        _results.append(text)


def emit(data: object) -> None:
    emit_text(json.dumps(data, indent=2, default=str))


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Everything written to stdout meanwhile (print, tqdm, Lightning's progress bar, child
    processes) goes to stderr instead; stdout stays for the results."""
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stdout (typer's CliRunner)
        fd = None
    saved = os.dup(fd) if fd is not None else None
    if saved is not None:
        os.dup2(sys.stderr.fileno(), fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)


def _made_by(path: str) -> str | None:
    parts = Path(path).parts
    for prefix, command in MADE_BY.items():
        if tuple(prefix.parts) == parts[: len(prefix.parts)]:
            return command
    return None


def _missing_message(exc: FileNotFoundError) -> str:
    if (
        exc.filename is None
    ):  # raised with a message of its own (e.g. load_corpus names its command)
        return str(exc)
    text = exc.strerror if "run `" in str(exc.strerror) else f"{exc.filename}: {exc.strerror}"
    hint = _made_by(str(exc.filename))
    return text if hint is None or "run `" in text else f"{text}; run `{hint}` first"


def results_on_stdout(command: Callable) -> Callable:
    """Wrap a command: stdout to stderr while it runs, then its results to stdout; a missing file
    becomes one line naming it (and the command that makes it) and exit code 2."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        global _results
        outer, _results = _results, []
        try:
            with _stdout_to_stderr():
                return command(*args, **kwargs)
        except FileNotFoundError as exc:
            console.print(
                f"[red]missing file:[/red] {_missing_message(exc)}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(2) from None
        finally:
            pending, _results = _results, outer
            for text in pending:
                emit_text(text)
            sys.stdout.flush()

    return run


def require(path: Path, what: str, default: Path) -> None:
    """Stop with the file's name and the command that makes it when ``path`` is missing."""
    if not Path(path).exists():
        hint = _made_by(str(path)) or MADE_BY[default]
        raise FileNotFoundError(2, f"{what} {path} not found: run `{hint}` first", str(path))


def require_model(model: Path) -> None:
    nested, flat = Path(model) / "retriever" / "config.json", Path(model) / "config.json"
    if not (nested.is_file() or flat.is_file()):
        require(nested, "exported retriever", PROJECT.model)


def require_index(index: Path) -> None:
    require(Path(index) / "CURRENT", "region index", PROJECT.index)


ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml to read")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a parameter, e.g. --set train.max_steps=50"),
]
DEFAULT_PARAMS = Path("params.yaml")


def load(path: Path, overrides: list[str] | None) -> Params:
    """The params, or exit 2 with the bad key named."""
    try:
        return load_params(path, overrides or [])
    except ConfigError as exc:
        console.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None


def corpus(params: Params, accepted: bool = True):
    """The corpus at data.corpus_dir, restricted to the records validation accepted (when it ran)."""
    from components.data.corpus import load_corpus

    root = Path(params.data.corpus_dir)
    accepted_file = PROJECT.accepted
    return load_corpus(root, accepted_file if accepted and accepted_file.exists() else None)
