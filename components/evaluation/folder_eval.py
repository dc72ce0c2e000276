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

The model is a folder (a training export, ``<dir>/retriever``) or a registered checkpoint
(``models:/NAME@ALIAS``, downloaded through ``components.registry.store.download_champion``:
its retriever, its bundled reader if it was promoted with one, and its params).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import Params, RegionParams, load_params
from components.evaluation.evaluate import (
    dataset_id,
    score_questions,
    tune_regions_on,
    write_outputs,
)

MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)@(?P<alias>[\w.-]+)")
COLLECTION = "eval"


@dataclass
class ModelSource:
    """A model ready to index a folder: its export folder, the params it runs with, its region choice."""

    label: str
    model_dir: Path
    params: Params
    regions: dict[str, Any]  # {"source": where the settings come from, "chosen": RegionParams fields}
    reader_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def _chosen_in(path: Path) -> dict | None:
    """Region settings recorded in a file: an evaluation's metrics.json (``regions.chosen``) or a
    params.yaml (``regions``)."""
    import yaml

    text = Path(path).read_text("utf-8")
    data = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        return None
    regions = data.get("regions")
    if isinstance(regions, dict) and isinstance(regions.get("chosen"), dict):
        return regions["chosen"]
    if isinstance(regions, dict) and "threshold" in regions:
        return regions
    return None


def _chosen_on_training_run(model_dir: Path) -> tuple[dict, str] | None:
    """The region settings the evaluate stage logged onto the model's training run (its
    ``evaluation/metrics.json`` artifact), when that run is in this tracking store."""
    run_file = Path(model_dir) / "train_run.json"
    if not run_file.is_file():
        return None
    run_id = json.loads(run_file.read_text("utf-8")).get("run_id")
    if not run_id:
        return None
    import mlflow
    from mlflow.exceptions import MlflowException

    from components.settings import get_settings

    mlflow.set_tracking_uri(get_settings().tracking_uri)
    try:
        with tempfile.TemporaryDirectory(prefix="regionops-run-metrics-") as tmp:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation/metrics.json",
                                                        dst_path=tmp)
            chosen = _chosen_in(Path(local))
    except (MlflowException, OSError, ValueError):
        return None  # no such run here, or it has no evaluation: not recorded
    return (chosen, f"the evaluation logged on the model's training run {run_id}") if chosen else None


def resolve_model(model: str, params: Params, workdir: Path, regions_from: Path | None = None) -> ModelSource:
    """A folder or ``models:/NAME@ALIAS`` -> the export to index with and the region settings to use.

    Region settings, first found: ``regions_from`` (a metrics.json or params.yaml); the registered
    checkpoint's bundled params (its settings as chosen on val when it was registered); the
    evaluation logged on a folder model's training run; else params.yaml, and the record says so.
    """
    from components.model.io import retriever_dir
    from components.reader.io import bundled_reader_dir

    match = MODEL_URI.fullmatch(model)
    notes: list[str] = []
    if match:
        from components.registry.rescore import champion_eval_params
        from components.registry.store import download_champion

        name, alias = match["name"], match["alias"]
        lookup = params.model_copy(update={"registry": params.registry.model_copy(update={"model_name": name})})
        bundle = download_champion(lookup, Path(workdir) / "registered", alias)
        if bundle is None:
            raise LookupError(f"{model}: no version of registered model {name!r} has the alias {alias!r}")
        # The checkpoint's behaviour settings (model, index, rag, regions); this run's data/evaluate settings.
        run_params = champion_eval_params(load_params(bundle["params_file"]), params)
        label, model_dir, reader = f"{model} (v{bundle['version']})", Path(bundle["model_dir"]), bundle["reader_dir"]
        regions = {"source": f"registered checkpoint {label}: the settings bundled at registration",
                   "chosen": run_params.regions.model_dump()}
    elif "://" in model or model.startswith("models:"):
        raise ValueError(f"--model {model}: give a folder or models:/NAME@ALIAS (e.g. models:/regionops@champion)")
    else:
        model_dir = Path(model)
        if not (retriever_dir(model_dir) / "config.json").is_file():
            raise FileNotFoundError(f"--model {model_dir}: no exported retriever there (run `regionops train`)")
        run_params, label, reader = params, str(model_dir), bundled_reader_dir(model_dir)
        recorded = _chosen_on_training_run(model_dir)
        if recorded:
            regions = {"source": recorded[1], "chosen": recorded[0]}
        else:
            regions = {"source": "params.yaml (no region choice recorded for this model)",
                       "chosen": params.regions.model_dump()}
            notes.append("no region choice recorded for this model: params.yaml's regions settings used")
    if regions_from is not None:
        chosen = _chosen_in(Path(regions_from))
        if chosen is None:
            raise ValueError(f"--regions-from {regions_from}: no `regions.chosen` (metrics.json) or `regions` "
                             "(params.yaml) in it")
        regions = {"source": f"--regions-from {regions_from}", "chosen": chosen}
        notes = [n for n in notes if not n.startswith("no region choice recorded")]
    run_params = run_params.model_copy(update={"regions": RegionParams(**regions["chosen"])})
    return ModelSource(label, model_dir, run_params, regions, reader, notes)


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
    why = "OCR is not available (install the `ocr` extra and tesseract)" if not report["ocr_available"] \
        else "OCR found no words on them"
    examples = ", ".join(p.id for p in pages if not p.words)[:300]
    return (f"{n} page(s) have no text layer and {why}: kept as visual-only pages (only the model's visual "
            f"channel can find them; lexical_only and the block baselines cannot): {examples}")


def evaluate_folder(params: Params, docs: Path, questions: Path, model: str, out_dir: Path,
                    tune_on: float | None = None, reader: Path | None = None,
                    regions_from: Path | None = None, log=None) -> dict:
    """Import, index and score a folder (see the module doc); write the outputs; return metrics.json's content.

    ``log``: called with a line of progress per step (the CLI prints them to stderr).
    """
    log = log or (lambda message: None)
    from components.data.corpus import load_corpus
    from components.data.importer import import_documents
    from components.evaluation.region_answer import RegionAnswerer
    from components.index.build import build_index
    from components.rag.engine import RagEngine

    with tempfile.TemporaryDirectory(prefix="regionops-evalfolder-") as tmp:
        tmp = Path(tmp)
        source = resolve_model(model, params, tmp, regions_from)
        log(f"model {source.label}; region settings from {source.regions['source']}")
        run_params, notes = source.params, list(source.notes)
        report = import_documents(Path(docs), Path(questions), tmp / "corpus", run_params, collection=COLLECTION)
        corpus = load_corpus(tmp / "corpus")
        if not corpus.pages:
            raise ValueError(f"--docs {docs}: no document imported ({report['documents']['reasons'] or 'none found'})")
        accepted = list(corpus.questions)
        if not accepted:
            raise ValueError(f"--questions {questions}: no question accepted ({report['questions']['reasons']})")
        log(f"imported {report['pages']} pages of {report['documents']['accepted']} documents "
            f"({report['documents']['quarantined']} quarantined), {len(accepted)} questions "
            f"({report['questions']['quarantined']} quarantined: {report['questions']['reasons']})")
        note = _visual_only_note(report, corpus.pages)
        if note:
            notes.append(note)
            log(note)
        log(f"indexing {len(corpus.pages)} pages with {source.label}")
        build_index(run_params, corpus, source.model_dir, tmp / "index")
        engine = RagEngine.from_dirs(source.model_dir, tmp / "index", run_params)
        if reader is not None:
            engine.with_reader(Path(reader))
        elif source.reader_dir is not None and engine.reader is None:
            engine.with_reader(source.reader_dir)
        scored_questions, tuned_on, regions = accepted, None, source.regions
        if tune_on is not None:
            tune_docs, _ = split_tuning_docs([q.doc for q in accepted if q.doc], tune_on, params.seed)
            tuning = [q for q in accepted if q.doc in tune_docs]
            scored_questions = [q for q in accepted if q.doc not in tune_docs]
            tuned = tune_regions_on(run_params, tuning, engine)
            if tuned is None:
                notes.append("--tune-on: no boxed text question on the tuning documents; recorded settings kept")
            else:
                run_params, record = tuned
                regions = {"source": f"tuned on {len(tune_docs)} held-out document(s) (--tune-on {tune_on})",
                           **record}
            tuned_on = {"docs": tune_docs, "n_questions": len(tuning), "fraction": tune_on, "seed": params.seed}
            notes.append(f"--tune-on {tune_on}: {len(tuning)} question(s) on {len(tune_docs)} document(s) used "
                         f"to tune region settings and not scored; {len(scored_questions)} scored")
        answerer = RegionAnswerer(engine.index, engine.reader)
        engine = RagEngine(engine.retriever, engine.index, run_params)
        log(f"scoring {len(scored_questions)} questions with six systems (answerer: {answerer.kind})")
        scored = score_questions(run_params, corpus, engine, scored_questions, answerer, desc="evaluate folder",
                                 progress=True)
        metrics = {
            "systems": scored["systems"],
            "systems_text_only": scored["systems_text_only"],
            "n_questions": len(scored_questions),
            "counts": scored["counts"] | {"n_visual_only_pages": report["visual_only_pages"],
                                          "n_ocr_pages": report["ocr_pages"]},
            "block_recall": scored["block_recall"],
            "answerer": scored["answerer"],
            "split": "all",
            "docs": str(docs),
            "model": source.label,
            "dataset_id": dataset_id([q.id for q in scored_questions], engine.index.page_ids),
            "import": {key: report[key] for key in ("documents", "pages", "visual_only_pages", "ocr_pages",
                                                     "ocr_available", "questions")},
            "index": {k: v for k, v in engine.index.stats().items() if k != "bytes_per_page"},
            "regions": regions,
            "tuned_on": tuned_on,
            "notes": notes,
        }
        write_outputs(Path(out_dir), metrics, scored, corpus, engine, run_params)
        # Which lines and documents were quarantined, and why: kept beside the metrics.
        shutil.copytree(tmp / "corpus" / "quarantine", Path(out_dir) / "quarantine", dirs_exist_ok=True)
        shutil.copyfile(tmp / "corpus" / "import_report.json", Path(out_dir) / "import_report.json")
    return metrics
