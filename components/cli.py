"""The ``regionops`` command line: one command per pipeline stage, plus the tools users need.

DVC stages, Prefect tasks and people all call these same commands. Heavy imports
stay inside the commands so that ``--help`` answers at once.

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

from components import versioning
from components.config import ConfigError, Params, load_params
from components.settings import configure_environment

app = typer.Typer(help="regionops: region-level multimodal RAG, trained, gated and served.", no_args_is_help=True)
index_app = typer.Typer(help="Build and maintain the region index.", no_args_is_help=True)
app.add_typer(index_app, name="index")
ablate_app = typer.Typer(help="Ablations: train variants over seeds, mean ± std tables.", no_args_is_help=True)
app.add_typer(ablate_app, name="ablate")
console = Console(stderr=True)  # messages and progress; results go through _emit


@app.callback()
def _log_to_stderr() -> None:
    """Every command: our INFO records (training progress lines among them) to stderr.

    A stage's parent (``dvc repro`` under Prefect) forwards these lines; without a handler
    the standard ``logging`` records of components would be dropped.
    """
    import logging

    # Other libraries stay at WARNING: their INFO chatter (HTTP clients, migrations) would bury ours.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for ours in ("components", "regionops"):
        logging.getLogger(ours).setLevel(logging.INFO)


DEFAULT_READER = Path("data/reader/reader")  # where the train-reader stage exports the reader
DATA_CONTRACT = "docs/data-contract.md"
# Which command makes each default input, for the "missing file" message.
MADE_BY = {
    "data/model": "regionops train",
    "data/index": "regionops index build",
    "data/reader": "regionops train-reader",
    "eval": "regionops evaluate",
    "data/validation": "regionops validate",
    "data/corpus": "regionops generate (or regionops import)",
}
_results: list[str] | None = None  # a running command's results, written to stdout when it ends


def _emit_text(text: str) -> None:
    """A result for stdout (written when the command ends, after its logs went to stderr)."""
    if _results is None:
        sys.stdout.write(text.rstrip("\n") + "\n")
    else:
        _results.append(text)


def _emit(data: object) -> None:
    _emit_text(json.dumps(data, indent=2, default=str))


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
        if tuple(Path(prefix).parts) == parts[: len(Path(prefix).parts)]:
            return command
    return None


def _missing_message(exc: FileNotFoundError) -> str:
    if exc.filename is None:  # raised with a message of its own (e.g. load_corpus names its command)
        return str(exc)
    text = exc.strerror if "run `" in str(exc.strerror) else f"{exc.filename}: {exc.strerror}"
    hint = _made_by(str(exc.filename))
    return text if hint is None or "run `" in text else f"{text}; run `{hint}` first"


def _results_on_stdout(command: Callable) -> Callable:
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
            console.print(f"[red]missing file:[/red] {_missing_message(exc)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        finally:
            pending, _results = _results, outer
            for text in pending:
                _emit_text(text)
            sys.stdout.flush()

    return run


def _require(path: Path, what: str, default: str) -> None:
    """Stop with the file's name and the command that makes it when ``path`` is missing."""
    if not Path(path).exists():
        hint = _made_by(str(path)) or MADE_BY[default]
        raise FileNotFoundError(2, f"{what} {path} not found: run `{hint}` first", str(path))


def _require_model(model: Path) -> None:
    nested, flat = Path(model) / "retriever" / "config.json", Path(model) / "config.json"
    if not (nested.is_file() or flat.is_file()):
        _require(nested, "exported retriever", "data/model")


def _require_index(index: Path) -> None:
    _require(Path(index) / "CURRENT", "region index", "data/index")


ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml to read")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="override a parameter, e.g. --set train.max_steps=50")
]


def _params(path: Path, overrides: list[str] | None) -> Params:
    try:
        return load_params(path, overrides or [])
    except ConfigError as exc:
        console.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None


def _corpus(params: Params, accepted: bool = True):
    from components.data.corpus import load_corpus

    root = Path(params.data.corpus_dir)
    accepted_file = Path("data/validation/accepted.json")
    return load_corpus(root, accepted_file if accepted and accepted_file.exists() else None)


@app.command()
def generate(
    out: Annotated[Path | None, typer.Option(help="corpus folder (default: data.corpus_dir)")] = None,
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Render the seeded synthetic corpus: pages, text layers, questions with evidence boxes."""
    params = _params(params_path, overrides)
    configure_environment()
    from components.data.synthetic import generate_corpus

    summary = generate_corpus(params, Path(out or params.data.corpus_dir))
    _emit(summary)


@app.command("import")
def import_(
    docs: Annotated[Path, typer.Option(help="folder of PDFs and images")],
    name: Annotated[str, typer.Option(help="collection name")],
    questions: Annotated[Path | None, typer.Option(help=f"questions JSONL ({DATA_CONTRACT})")] = None,
    out: Annotated[Path | None, typer.Option(help="corpus folder to write")] = None,
    dvc: Annotated[bool, typer.Option(help="version the imported dataset with `dvc add`")] = True,
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Import a user's PDFs/images (and questions) through the data contract, quarantining bad input.

    Page ids are <relative path>#<page>; the questions JSONL format, what is kept as metadata and
    what is quarantined (with its reason) are in docs/data-contract.md.
    """
    params = _params(params_path, overrides)
    configure_environment()
    from components.data.importer import UnsafeImportError, check_collection_name, import_documents

    try:
        check_collection_name(name)  # it becomes a path below: a slug, never "../.."
        target = Path(out or f"data/imports/{name}")
        report = import_documents(docs, questions, target, params, collection=name)
    except (UnsafeImportError, NotADirectoryError, FileNotFoundError) as exc:
        console.print(f"[red]import refused:[/red] {exc}")
        raise typer.Exit(2) from None
    root = Path.cwd().resolve()
    if dvc and versioning.is_dvc_project(root) and root in target.resolve().parents:
        report["dvc_md5"] = versioning.add(root, target.resolve().relative_to(root).as_posix())
        report["next"] = (f"git add {target.as_posix()}.dvc; set data.corpus_dir: {target.as_posix()} in "
                          "params.yaml, then `make run` or `dvc repro`")
    _emit(report)


@app.command()
def validate(
    out: Annotated[Path, typer.Option(help="validation output folder")] = Path("data/validation"),
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Run the Great Expectations suites; quarantine bad records; stop if too many are bad."""
    params = _params(params_path, overrides)
    configure_environment()
    from components.data.validation import QuarantineLimitExceeded, validate_corpus

    try:
        report = validate_corpus(Path(params.data.corpus_dir), out, params)
    except QuarantineLimitExceeded as exc:
        console.print(f"[red]validation failed:[/red] {exc}")
        raise typer.Exit(1) from None
    _emit(report)


@app.command()
def show(
    out: Annotated[Path, typer.Option(help="PNG to write")],
    page: Annotated[str | None, typer.Option(help="page id, <doc>#<page>")] = None,
    question: Annotated[str | None, typer.Option(help="question id (alone: its gold page)")] = None,
    corpus_dir: Annotated[Path | None, typer.Option(help="corpus folder (default: data.corpus_dir)")] = None,
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Draw a page with its evidence boxes (green) and layout blocks (labelled with their kind)."""
    params = _params(params_path, overrides)
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


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="where the exported retriever goes")] = Path("data/model"),
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Train the region retriever in Lightning (global + local loss, hybrid supervision)."""
    params = _params(params_path, overrides)
    settings = configure_environment()
    from components.training.train import train_retriever

    result = train_retriever(params, _corpus(params), out, settings)
    _emit(result)


@index_app.command("build")
def index_build(
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = Path("data/model"),
    out: Annotated[Path, typer.Option(help="index folder")] = Path("data/index"),
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Encode every page and write the faiss region index atomically."""
    params = _params(params_path, overrides)
    configure_environment()
    from components.index.build import build_index
    from components.index.version_folders import UnsafeIndexTargetError, check_target

    try:
        check_target(out)  # before hours of encoding, not after
    except UnsafeIndexTargetError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    _require_model(model)
    stats = build_index(params, _corpus(params), model, out)
    _emit(stats)


@index_app.command("add")
def index_add(
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = Path("data/model"),
    index: Annotated[Path, typer.Option(help="index folder")] = Path("data/index"),
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Encode only the corpus pages the index lacks and add them, without a rebuild."""
    params = _params(params_path, overrides)
    configure_environment()
    _require_model(model)
    _require_index(index)
    from components.index.build import add_to_index

    _emit(add_to_index(params, _corpus(params), model, index))


@index_app.command("delete")
def index_delete(
    doc: Annotated[str, typer.Option(help="document (relative path) whose pages to remove")],
    index: Annotated[Path, typer.Option(help="index folder")] = Path("data/index"),
) -> None:
    """Remove every page of one document from the index (saved atomically)."""
    configure_environment()
    _require_index(index)
    from components.index.build import delete_from_index

    _emit(delete_from_index(index, doc))


@index_app.command("stats")
def index_stats(index: Annotated[Path, typer.Option(help="index folder")] = Path("data/index")) -> None:
    """Print what an index holds."""
    _require_index(index)
    from components.index.region_index import RegionIndex

    _emit(RegionIndex.load(index).stats())


@index_app.command("verify")
def index_verify(index: Annotated[Path, typer.Option(help="index folder")] = Path("data/index")) -> None:
    """Check every file of the live index version against the sha256 in its manifest, then load it."""
    from components.index.region_index import IndexFormatError, RegionIndex

    try:
        loaded = RegionIndex.load(index, verify=True)
    except IndexFormatError as exc:
        console.print(f"[red]index damaged:[/red] {exc}")
        raise typer.Exit(1) from None
    _emit({"index": str(index), "ok": True, "pages": len(loaded)})


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="exported retriever folder; with --docs also models:/NAME@ALIAS")] = "data/model",
    index: Annotated[Path, typer.Option(help="index folder (not with --docs: the folder is indexed afresh)")] = Path("data/index"),
    out: Annotated[Path, typer.Option(help="metrics folder")] = Path("eval"),
    reader: Annotated[Path | None, typer.Option(help="exported reader folder: answer metrics (split mode); "
                                                   "with --docs, the answerer of every system")] = None,
    docs: Annotated[Path | None, typer.Option(help="evaluate on this folder of PDFs/images instead of the "
                                                 "corpus split (imported and indexed in a temp folder)")] = None,
    questions: Annotated[Path | None, typer.Option(help="questions JSONL for --docs (the import format)")] = None,
    tune_on: Annotated[float | None, typer.Option(help="with --docs: tune region settings on this seeded "
                                                     "share of the documents and score only the rest")] = None,
    regions_from: Annotated[Path | None, typer.Option(help="with --docs: region settings from this "
                                                         "metrics.json (regions.chosen) or params.yaml")] = None,
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Score regionops and the baselines (on the evaluation split, or on --docs); write metrics.json and
    report.md. The results JSON goes to stdout, everything else to stderr."""
    params = _params(params_path, overrides)
    settings = configure_environment()
    if reader is not None and not (reader / "config.json").is_file():
        console.print(f"[red]--reader {reader}: no exported reader there (run `regionops train-reader`)[/red]")
        raise typer.Exit(2)
    if docs is None and (questions is not None or tune_on is not None or regions_from is not None):
        console.print("[red]--questions, --tune-on and --regions-from go with --docs[/red]")
        raise typer.Exit(2)
    if docs is not None and questions is None:
        console.print("[red]--docs needs --questions (a JSONL of questions on those documents)[/red]")
        raise typer.Exit(2)
    if docs is None:
        if model.startswith("models:"):
            console.print("[red]a models:/ URI is evaluated on a folder: add --docs and --questions[/red]")
            raise typer.Exit(2)
        _require_model(Path(model))
        _require_index(index)
        from components.evaluation.evaluate import run_evaluation

        metrics = run_evaluation(params, _corpus(params), Path(model), index, out, settings, reader_dir=reader)
        result = {"systems": metrics["systems"], "n_questions": metrics["n_questions"]}
    else:
        from components.evaluation.folder_eval import evaluate_folder

        try:
            metrics = evaluate_folder(params, docs, questions, model, out, tune_on, reader, regions_from,
                                      log=lambda line: console.print(line, markup=False))
        except (ValueError, LookupError, FileNotFoundError, NotADirectoryError) as exc:
            console.print(f"[red]evaluate --docs failed:[/red] {exc}")
            raise typer.Exit(2) from None
        keys = ("systems", "systems_text_only", "n_questions", "block_recall", "answerer", "import",
                "regions", "tuned_on", "notes", "model")
        result = {key: metrics[key] for key in keys} | {"out": str(out)}
    _emit(result)


@ablate_app.command("retriever")
def ablate_retriever_cmd(
    seeds: Annotated[str, typer.Option(help="comma-separated training seeds")] = "13,14,15",
    variants: Annotated[str, typer.Option(help="comma-separated variants (global_only always runs: "
                                          "the others are compared with it)")] = "",
    out: Annotated[Path, typer.Option(help="where the tables go")] = Path("reports"),
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Global-only vs + labelled local vs + pseudo-labelled local, each over seeds (mean ± std,
    and each variant's paired difference to global-only with a 95 % interval)."""
    params = _params(params_path, overrides)
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
        console.print(f"[red]--variants: unknown {unknown}; choose from {list(RETRIEVER_VARIANTS)}[/red]")
        raise typer.Exit(2)
    chosen = {v: RETRIEVER_VARIANTS[v] for v in [REFERENCE_VARIANT, *names]}
    report = ablate_retriever(params, _corpus(params), out, settings, seed_list, variants=chosen,
                              progress=lambda row: console.print_json(json.dumps(row)))  # progress: stderr
    _emit_text((out / "ablation_retriever.md").read_text())
    console.print(f"MLflow run {report['mlflow_run_id']}")
@app.command("train-reader")
def train_reader_cmd(
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = Path("data/model"),
    index: Annotated[Path, typer.Option(help="index folder")] = Path("data/index"),
    out: Annotated[Path, typer.Option(help="where the exported reader goes")] = Path("data/reader"),
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Train the span reader with noisy contexts (reader.noise_rho distractors) in Lightning."""
    params = _params(params_path, overrides)
    settings = configure_environment()
    _require_model(model)
    _require_index(index)
    from components.reader.train import train_reader

    record, _ = train_reader(params, _corpus(params), model, index, out, settings)
    _emit(record)


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="the question")],
    k: Annotated[int, typer.Option(help="regions to return")] = 5,
    reader: Annotated[Path | None, typer.Option(help="exported reader folder: answer with the span reader")] = None,
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = Path("data/model"),
    index: Annotated[Path, typer.Option(help="index folder")] = Path("data/index"),
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Print ranked regions (page id, normalised box, score) and the answer for a question."""
    params = _params(params_path, overrides)
    configure_environment()
    _require_model(model)
    _require_index(index)
    from components.rag.engine import RagEngine

    engine = RagEngine.from_dirs(model, index, params)
    if reader is not None:
        engine.with_reader(reader)
    result = engine.answer(question, k=k)
    _emit(result.to_dict())


def _read_candidate(metrics: Path, model: Path | None) -> dict:
    """The candidate's metrics from its evaluation run; a clear error (exit 2) when they cannot be trusted."""
    from components.registry.client import registry_client
    from components.registry.evaluation_run import EvaluationRunError
    from components.registry.promote import read_candidate

    try:
        return read_candidate(registry_client(), metrics, model)
    except EvaluationRunError as exc:
        console.print(f"[red]cannot gate:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def gate(
    metrics: Annotated[Path, typer.Option(help="candidate metrics.json")] = Path("eval/metrics.json"),
    index: Annotated[Path, typer.Option(help="candidate index folder (its pages define the eval set)")] = Path("data/index"),
    model: Annotated[Path, typer.Option(help="candidate retriever folder (its train_run.json names the "
                                             "training run the evaluation run must belong to)")] = Path("data/model"),
    rescore: Annotated[bool, typer.Option("--rescore/--no-rescore",
                                          help="re-score the champion on the candidate's eval set first")] = True,
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Judge a candidate against the floors and the current champion, by the metrics of its MLflow
    evaluation run (named in metrics.json, which must agree with it)."""
    params = _params(params_path, overrides)
    configure_environment()
    _require(metrics, "candidate metrics", "eval")
    from components.registry.client import registry_client
    from components.registry.gate import champion_metrics, decide
    from components.registry.promote import champion_version

    candidate = _read_candidate(metrics, model if (model / "train_run.json").is_file() else None)
    has_champion = champion_version(registry_client(), params.registry.model_name) is not None
    reference, notes = None, []
    if has_champion and rescore:
        import tempfile

        _require_index(index)  # only a re-score reads it
        from components.registry.rescore import rescore_champion

        with tempfile.TemporaryDirectory(prefix="regionops-rescore-") as tmp:
            rescored = rescore_champion(params, _corpus(params), index, candidate, Path(tmp))
        reference, notes = rescored.metrics, rescored.notes
    if has_champion and reference is None:
        reference = champion_metrics(params)
        notes.append("champion compared by the metrics recorded at its registration")
    decision = decide(candidate, reference, params.gate)
    decision.reasons.extend(notes)
    _emit(decision.to_dict())
    raise typer.Exit(0 if decision.passed else 1)


@app.command()
def register(
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = Path("data/model"),
    index: Annotated[Path, typer.Option(help="index folder")] = Path("data/index"),
    metrics: Annotated[Path, typer.Option(help="candidate metrics.json")] = Path("eval/metrics.json"),
    rescore: Annotated[bool, typer.Option("--rescore/--no-rescore",
                                          help="re-score the champion on the candidate's eval set first")] = True,
    reader: Annotated[Path | None, typer.Option(
        help="exported reader to bundle (default: data/reader/reader when it exists)")] = None,
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Gate the candidate, register it as a pyfunc RAG checkpoint and move aliases."""
    params = _params(params_path, overrides)
    configure_environment()
    _require_model(model)
    _require_index(index)
    _require(metrics, "candidate metrics", "eval")
    from components.registry.promote import gate_and_register
    from components.registry.rescore import gate_and_register_rescored

    if reader is None and (DEFAULT_READER / "config.json").is_file():
        reader = DEFAULT_READER
    _read_candidate(metrics, model)  # a metrics.json its evaluation run does not back stops here, clearly
    if rescore:
        outcome = gate_and_register_rescored(params, _corpus(params), model, index, metrics, reader_dir=reader)
    else:
        corpus = _corpus(params)
        outcome = gate_and_register(params, model, index, metrics, reader_dir=reader,
                                    page_images=[(p.id, corpus.image_path(p)) for p in corpus.pages])
    _emit(outcome)


@app.command()
def rollback(
    reason: Annotated[str, typer.Option("--reason", help="why champion moves back (recorded in the audit trail)")],
    to: Annotated[str | None, typer.Option("--to", help="version to restore (default: the previous champion)")] = None,
    force: Annotated[bool, typer.Option("--force", help="allow a version whose gate failed (recorded as an override)")] = False,
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Move the champion alias back to an earlier version, recording who, when and why.

    A version whose gate failed is refused unless --force; the override is in the audit trail.
    """
    params = _params(params_path, overrides)
    configure_environment()
    from components.registry.promote import RegistryError
    from components.registry.promote import rollback as rollback_champion

    try:
        outcome = rollback_champion(params, to, reason, force=force)
    except RegistryError as exc:
        console.print(f"[red]rollback refused:[/red] {exc}")
        raise typer.Exit(1) from None
    _emit(outcome)


@app.command()
def reproduce(
    version: Annotated[str, typer.Argument(help="registered model version")],
    out: Annotated[Path, typer.Option("--out", help="new, empty folder to rebuild the version in")],
    params_path: ParamsOpt = Path("params.yaml"),
) -> None:
    """Rebuild a registered version from its record (dvc.lock, params, DVC remote) and re-score it.

    Exits 1 when the re-scored quality metrics differ from the ones recorded with the version.
    """
    params = _params(params_path, None)
    settings = configure_environment()
    from components.registry.client import registry_client
    from components.reproduce import ReproduceError, reproduce_version

    try:
        result = reproduce_version(registry_client(), params.registry.model_name, version, out, settings.dvc_remote)
    except (ReproduceError, versioning.StageFailed) as exc:
        console.print(f"[red]reproduce failed:[/red] {exc}")
        raise typer.Exit(2) from None
    _emit(result)
    if result["problems"]:
        console.print("[red]re-scored metrics differ from the recorded ones[/red]")
        raise typer.Exit(1)


@app.command()
def history(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Print every alias move of the registered model (promote, challenger, rollback)."""
    params = _params(params_path, overrides)
    configure_environment()
    from components.registry.promote import history as alias_history

    events = alias_history(params)
    if as_json:
        _emit(events)
        return
    import io

    from rich.table import Table

    table = Table(title=f"alias moves of {params.registry.model_name}")
    for column in ("when", "who", "action", "alias", "from", "to", "reason"):
        table.add_column(column)
    for e in events:
        table.add_row(e["when"], e["who"], e["action"], e["alias"], str(e["from_version"] or "—"),
                      str(e["to_version"]), e["reason"])
    rendered = Console(file=io.StringIO(), width=160, record=True)
    rendered.print(table)
    _emit_text(rendered.export_text())


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
        _emit(diff.to_dict())
        return
    _emit_text(diff.to_markdown())


@app.command()
def bench(
    out: Annotated[Path, typer.Option(help="folder for bench.json and bench.md")] = Path("reports"),
    pages: Annotated[list[int], typer.Option(help="corpus sizes to measure (repeat the option); one corpus of the largest is generated and encoded, smaller sizes are its leading pages")] = [1000, 10000],  # noqa: B006
    model: Annotated[Path, typer.Option(help="trained retriever (a fresh one is used if absent)")] = Path("data/model"),
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
    queries: Annotated[int, typer.Option(min=1, help="questions per size (all of the size's questions up to this many)")] = 5000,
    real_docs: Annotated[Path | None, typer.Option(help="real pages for the latency figure: a folder of PDFs/images (with --real-questions) or an imported corpus folder; replicated to --real-pages, timed beside synthetic pages")] = None,
    real_questions: Annotated[Path | None, typer.Option(help="questions JSONL of --real-docs (data contract), when it is a folder of documents")] = None,
    real_pages: Annotated[int, typer.Option(min=1, help="pages the real corpus is replicated to for the latency figure")] = 1000,
    threads: Annotated[int, typer.Option(min=1, help="torch threads while answering (the real-page latency bar is set at 2)")] = 2,
    latency_questions: Annotated[int, typer.Option(min=1, help="questions timed from their text, per size and per side of the real-page comparison")] = 200,
) -> None:
    """Per storage mode: the served system's page R@1 / region hit@1, bytes/page and latency, beside lexical_only."""
    params = _params(params_path, overrides)
    configure_environment()
    from components.bench import run_benchmark

    run_benchmark(params, pages, out, model, max_queries=queries, real_docs=real_docs,
                  real_questions=real_questions, real_pages=real_pages,
                  threads=threads, latency_questions=latency_questions)
    _emit_text((out / "bench.md").read_text())  # also in out/bench.md and out/bench.json


# --- landing folder and deployments (issue 9) -------------------------------------------------

landing_app = typer.Typer(help="Take in documents dropped into the landing folder.", no_args_is_help=True)
app.add_typer(landing_app, name="landing")


@landing_app.command("ingest")
def landing_ingest(
    landing: Annotated[Path, typer.Option(help="folder users drop PDFs/images (+ questions .jsonl) into")] = Path("landing"),
    landed: Annotated[Path, typer.Option(help="DVC-tracked folder of accepted documents")] = Path("landed"),
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
    emit: Annotated[bool, typer.Option("--emit/--no-emit", help="send regionops.landing.files-arrived to the "
                                       "Prefect server (PREFECT_API_URL) when documents were accepted")] = True,
) -> None:
    """Take in new landing files once each (by sha256), quarantining bad documents with a reason.

    When documents were accepted, an event tells Prefect (the retrain deployment's trigger starts a retrain).
    """
    params = _params(params_path, overrides)
    configure_environment()
    import subprocess
    import sys

    from components.data.landing import ingest_landing

    intake = ingest_landing(landing, landed, params)
    _emit(intake)
    if emit and intake["changed"]:
        # Prefect lives in flows/, never in components/: flows.events sends the event.
        sent = subprocess.run([sys.executable, "-m", "flows.events", "files-arrived", "--project-dir",
                               str(landed.resolve().parent)], input=json.dumps(intake), text=True, check=False)
        if sent.returncode != 0:
            console.print("[red]documents taken in, but the arrival event was not sent:[/red] start the retrain "
                          "deployment by hand (prefect deployment run retrain/retrain)")
            raise typer.Exit(sent.returncode)


@landing_app.command("merge")
def landing_merge(
    corpus: Annotated[Path | None, typer.Option(help="corpus folder (default: data.corpus_dir)")] = None,
    landed: Annotated[Path, typer.Option(help="DVC-tracked folder of accepted documents")] = Path("landed"),
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Import the landed documents into the corpus (the generate stage runs this after generating)."""
    params = _params(params_path, overrides)
    configure_environment()
    from components.data.landing import merge_landed

    _emit(merge_landed(Path(corpus or params.data.corpus_dir), landed, params))


@app.command()
def deploy(
    project_dir: Annotated[Path, typer.Option(help="project the deployments run in")] = Path("."),
    work_pool: Annotated[str | None, typer.Option(help="work pool (default: orchestrate.work_pool)")] = None,
    cron: Annotated[str | None, typer.Option(help="retrain schedule (default: orchestrate.retrain_cron)")] = None,
    params_path: ParamsOpt = Path("params.yaml"),
) -> None:
    """Register the Prefect deployments (pipeline, retrain with its cron, landing watcher) on PREFECT_API_URL."""
    import subprocess
    import sys

    _params(project_dir / params_path, None)  # fail on a bad parameter before touching the server
    cmd = [sys.executable, "-m", "flows.deployments", "--project-dir", str(project_dir.resolve()),
           "--params", str(params_path)]
    if work_pool:
        cmd += ["--work-pool", work_pool]
    if cron:
        cmd += ["--cron", cron]
    # Prefect lives in flows/, never in components/: the deployments module does the work.
    raise typer.Exit(subprocess.run(cmd, check=False).returncode)
@ablate_app.command("reader")
def ablate_reader_cmd(
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = Path("data/model"),
    index: Annotated[Path, typer.Option(help="index folder")] = Path("data/index"),
    out: Annotated[Path, typer.Option(help="folder for the tables")] = Path("reports"),
    seeds: Annotated[list[int] | None, typer.Option("--seed", help="seeds (default reader.ablation_seeds)")] = None,
    rhos: Annotated[list[float] | None, typer.Option("--rho", help="noise levels (default 0, 1/3, 1/2, 2/3)")] = None,
    modes: Annotated[list[str] | None, typer.Option("--mode", help="visual token modes, refine first (default all)")] = None,
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Noise sweep (ρ × clean/retrieved), token refinement vs pooling vs random, two- vs single-stage."""
    params = _params(params_path, overrides)
    settings = configure_environment()
    _require_model(model)
    _require_index(index)
    from components.evaluation.reader_ablation import ablate_reader

    result = ablate_reader(params, _corpus(params), model, index, out, settings, seeds or params.reader.ablation_seeds,
                           tuple(rhos or ()), tuple(modes or ()))
    _emit_text(result["markdown"])


@ablate_app.command("two-stage")
def ablate_two_stage_cmd(
    reader: Annotated[Path, typer.Option(help="exported reader folder")],
    model: Annotated[Path, typer.Option(help="exported retriever folder")] = Path("data/model"),
    index: Annotated[Path, typer.Option(help="index folder")] = Path("data/index"),
    out: Annotated[Path, typer.Option(help="folder for the tables")] = Path("reports"),
    splits: Annotated[list[str] | None, typer.Option("--split", help="splits to pool (default val, test)")] = None,
    params_path: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Image questions: two-stage with stage 1 by stored pictures vs by the pixel path vs single-stage (ADR 8)."""
    params = _params(params_path, overrides)
    configure_environment()
    _require_model(model)
    _require_index(index)
    from components.evaluation.two_stage_eval import run_stage_one_comparison

    chosen = splits or ["val", "test"]
    unknown = set(chosen) - {"train", "val", "test"}
    if unknown:
        console.print(f"[red]--split {sorted(unknown)}: splits are train, val, test[/red]")
        raise typer.Exit(2)
    result = run_stage_one_comparison(params, _corpus(params), model, index, reader, chosen, out)
    _emit_text(Path(result["report"]["markdown"]).read_text())


# Every command: results on stdout, everything else on stderr, missing files named (see the top).
for _typer_app in (app, index_app, ablate_app, landing_app):
    for _command in _typer_app.registered_commands:
        _command.callback = _results_on_stdout(_command.callback)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":
    app()
