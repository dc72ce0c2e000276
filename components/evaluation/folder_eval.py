"""``regionops evaluate --docs DIR --questions FILE``: the six systems on any folder of PDFs/images.

1. The folder and its questions go through ``regionops import``'s own path
   (``components.data.importer.import_documents``) into a temporary corpus: bad documents and
   question lines are quarantined with a reason (reported), pages without a text layer are OCR'd
   when OCR is available, else kept as visual-only pages (counted, never dropped).
2. The given model indexes that corpus through ``regionops index build``'s code
   (``components.index.build.build_index``).
3. Every accepted question is scored (an external set has no train split: ``split`` is ignored),
   with the region settings the model recorded (``resolve_model``), or, with ``--tune-on F``,
   settings tuned on a seeded share F of the documents, whose questions are then not scored.

The model arrives resolved (``ModelSource``): a folder (a training export, ``<dir>/retriever``) or a
registered checkpoint (``models:/NAME@ALIAS``), resolved by ``components.registry.model_source``
(the registry sits above evaluation: evaluation never reads the model registry itself).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import Params
from components.evaluation.evaluate import dataset_id, tune_regions_on
from components.evaluation.outputs import write_outputs
from components.evaluation.scoring import score_questions

COLLECTION = "eval"


@dataclass
class ModelSource:
    """A model ready to index a folder: its export folder, the params it runs with, its region choice."""

    label: str
    model_dir: Path
    params: Params
    regions: dict[
        str, Any
    ]  # {"source": where the settings come from, "chosen": RegionParams fields}
    reader_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def split_tuning_docs(docs: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded share ``fraction`` of ``docs`` (at least one) for tuning, the rest (at least one) scored."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--tune-on {fraction}: give a fraction strictly between 0 and 1")
    docs = sorted(set(docs))
    if len(docs) < 2:
        raise ValueError(f"--tune-on needs questions on at least two documents (found {len(docs)})")
    n = min(max(1, round(fraction * len(docs))), len(docs) - 1)
    tune = sorted(random.Random(seed).sample(docs, n))
    return tune, [d for d in docs if d not in set(tune)]


def _visual_only_note(report: dict, pages) -> str | None:
    n = report["visual_only_pages"]
    if not n:
        return None
    why = (
        "OCR is not available (install the `ocr` extra and tesseract)"
        if not report["ocr_available"]
        else "OCR found no words on them"
    )
    examples = ", ".join(p.id for p in pages if not p.words)[:300]
    return (
        f"{n} page(s) have no text layer and {why}: kept as visual-only pages (only the model's visual "
        f"channel can find them; lexical_only and the block baselines cannot): {examples}"
    )


def _import_folder(docs: Path, questions: Path, tmp: Path, params: Params):
    """``regionops import``'s path into ``tmp/corpus``: (import report, corpus); refuses a folder
    from which no document or no question was accepted."""
    from components.data.corpus import load_corpus
    from components.data.importer import import_documents

    report = import_documents(
        Path(docs), Path(questions), tmp / "corpus", params, collection=COLLECTION
    )
    corpus = load_corpus(tmp / "corpus")
    if not corpus.pages:
        raise ValueError(
            f"--docs {docs}: no document imported ({report['documents']['reasons'] or 'none found'})"
        )
    if not corpus.questions:
        raise ValueError(
            f"--questions {questions}: no question accepted ({report['questions']['reasons']})"
        )
    return report, corpus


def _index_folder(corpus, source: ModelSource, tmp: Path, log):
    """``regionops index build``'s code over the imported corpus, and the engine on it."""
    from components.index.build import build_index
    from components.rag.engine import RagEngine

    log(f"indexing {len(corpus.pages)} pages with {source.label}")
    build_index(source.params, corpus, source.model_dir, tmp / "index")
    return RagEngine.from_dirs(source.model_dir, tmp / "index", source.params)


def evaluate_folder(
    params: Params,
    docs: Path,
    questions: Path,
    source: ModelSource,
    out_dir: Path,
    tune_on: float | None = None,
    reader: Path | None = None,
    log=None,
) -> dict:
    """Import, index and score a folder (see the module doc); write the outputs; return metrics.json's content.

    ``log``: called with a line of progress per step (the CLI prints them to stderr).
    """
    log = log or (lambda message: None)
    from components.evaluation.region_answer import RegionAnswerer
    from components.rag.engine import RagEngine

    with tempfile.TemporaryDirectory(prefix="regionops-evalfolder-") as tmp:
        tmp = Path(tmp)
        log(f"model {source.label}; region settings from {source.regions['source']}")
        run_params, notes = source.params, list(source.notes)
        report, corpus = _import_folder(docs, questions, tmp, run_params)
        accepted = list(corpus.questions)
        log(
            f"imported {report['pages']} pages of {report['documents']['accepted']} documents "
            f"({report['documents']['quarantined']} quarantined), {len(accepted)} questions "
            f"({report['questions']['quarantined']} quarantined: {report['questions']['reasons']})"
        )
        note = _visual_only_note(report, corpus.pages)
        if note:
            notes.append(note)
            log(note)
        engine = _index_folder(corpus, source, tmp, log)
        if reader is not None:
            engine.with_reader(Path(reader))
        elif source.reader_dir is not None and engine.reader is None:
            engine.with_reader(source.reader_dir)
        scored_questions, tuned_on, regions = accepted, None, source.regions
        if tune_on is not None:
            tune_docs, _ = split_tuning_docs(
                [q.doc for q in accepted if q.doc], tune_on, params.seed
            )
            tuning = [q for q in accepted if q.doc in tune_docs]
            scored_questions = [q for q in accepted if q.doc not in tune_docs]
            tuned = tune_regions_on(run_params, tuning, engine)
            if tuned is None:
                notes.append(
                    "--tune-on: no boxed text question on the tuning documents; recorded settings kept"
                )
            else:
                run_params, record = tuned
                regions = {
                    "source": f"tuned on {len(tune_docs)} held-out document(s) (--tune-on {tune_on})",
                    **record,
                }
            tuned_on = {
                "docs": tune_docs,
                "n_questions": len(tuning),
                "fraction": tune_on,
                "seed": params.seed,
            }
            notes.append(
                f"--tune-on {tune_on}: {len(tuning)} question(s) on {len(tune_docs)} document(s) used "
                f"to tune region settings and not scored; {len(scored_questions)} scored"
            )
        answerer = RegionAnswerer(engine.index, engine.reader)
        engine = RagEngine(engine.retriever, engine.index, run_params)
        log(
            f"scoring {len(scored_questions)} questions with six systems (answerer: {answerer.kind})"
        )
        scored = score_questions(
            run_params,
            corpus,
            engine,
            scored_questions,
            answerer,
            desc="evaluate folder",
            progress=True,
        )
        metrics = {
            "systems": scored["systems"],
            "systems_text_only": scored["systems_text_only"],
            "n_questions": len(scored_questions),
            "counts": scored["counts"]
            | {
                "n_visual_only_pages": report["visual_only_pages"],
                "n_ocr_pages": report["ocr_pages"],
            },
            "block_recall": scored["block_recall"],
            "answerer": scored["answerer"],
            "split": "all",
            "docs": str(docs),
            "model": source.label,
            "dataset_id": dataset_id([q.id for q in scored_questions], engine.index.page_ids),
            "import": {
                key: report[key]
                for key in (
                    "documents",
                    "pages",
                    "visual_only_pages",
                    "ocr_pages",
                    "ocr_available",
                    "questions",
                )
            },
            "index": {k: v for k, v in engine.index.stats().items() if k != "bytes_per_page"},
            "regions": regions,
            "tuned_on": tuned_on,
            "notes": notes,
        }
        write_outputs(Path(out_dir), metrics, scored, corpus, engine, run_params)
        # Which lines and documents were quarantined, and why: kept beside the metrics.
        shutil.copytree(
            tmp / "corpus" / "quarantine", Path(out_dir) / "quarantine", dirs_exist_ok=True
        )
        shutil.copyfile(tmp / "corpus" / "import_report.json", Path(out_dir) / "import_report.json")
    return metrics


def tune_folder(params: Params, docs: Path, questions: Path, source: ModelSource, log=None) -> dict:
    """Region settings (the rule included) tuned on every boxed text question of a folder, as the
    evaluate stage tunes on val: ``{"regions": {"tuned_on", "chosen", ...}}``, the shape
    ``--regions-from`` reads. Tune on a set you will not score (the real *train* set), never on
    the one you report."""
    log = log or (lambda message: None)

    with tempfile.TemporaryDirectory(prefix="regionops-tunefolder-") as tmp:
        tmp = Path(tmp)
        _, corpus = _import_folder(docs, questions, tmp, source.params)
        engine = _index_folder(corpus, source, tmp, log)
        log(f"tuning region settings on {len(corpus.questions)} questions")
        tuned = tune_regions_on(source.params, list(corpus.questions), engine)
    if tuned is None:
        raise ValueError(
            f"--questions {questions}: no boxed text question on an imported page to tune on"
        )
    _, record = tuned
    return {
        "regions": {"tuned_on": f"{docs} ({record['n_tuned']} questions)", **record},
        "model": source.label,
    }
