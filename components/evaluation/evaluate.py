"""Score regionops and its baselines on one split, on the same questions and pages (DESIGN §7).

Systems:
  regionops     the retriever + index at region level (top region across candidate pages),
                dense and lexical channels fused (rag.lexical_weight);
  regionops_dense  the same with the lexical channel off: each channel's contribution;
  page_level    the same model and page ranking, region = the whole top page;
  bm25_blocks   BM25 over text-layer blocks, region = best block;
  dense_blocks  MiniLM dense retrieval over the same blocks.
All systems search exactly the pages held by the index and answer with the same region-text
answerer, so differences come from retrieval and localisation alone.

Writes ``metrics.json``, ``report.md``, ``per_type.json``/``per_type.md``, ``plots/`` (series for
dvc.yaml's plots), ``per_question.jsonl``
(every system's scores per question, for paired comparisons) and ``highlights/`` (a fixed
seeded sample of questions as PNGs, captioned with question and answers, plus ``sample.json``)
into the output folder and logs them (plus ``<system>.<metric>`` metrics) to an MLflow run of
their own, nested under the candidate's training run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from components.config import Params
from components.data.corpus import Corpus
from components.evaluation import metrics as M
from components.evaluation.baselines import BM25Blocks, DenseBlocks, blocks_from_words, page_blocks
from components.evaluation.highlights import draw_highlight, with_caption
from components.evaluation.plot_data import write_plot_data
from components.evaluation.report import render_per_type, render_report
from components.rag.answer import answer_from_region, answer_from_text_lines
from components.rag.engine import RagEngine
from components.regions.extract import extract_regions

SYSTEMS = ("regionops", "regionops_dense", "page_level", "bm25_blocks", "dense_blocks")
FULL_PAGE = (0.0, 0.0, 1.0, 1.0)
METRIC_KEYS = ("page_r1", "page_r5", "ndcg5", "mrr", "region_hit1", "region_miou", "anls", "em")


@dataclass
class SystemOutput:
    """What one system returned for one question."""

    ranking: list[str]
    top_page: str | None
    top_box: tuple | None
    gold_page_box: tuple | None  # the system's best region on the gold page (for mean IoU)
    answer: str
    latency_ms: float
    extra: dict[str, Any] = field(default_factory=dict)


def dataset_id(question_ids: list[str], page_ids: list[str]) -> str:
    blob = json.dumps({"questions": sorted(question_ids), "pages": sorted(page_ids)}).encode()
    return hashlib.sha256(blob).hexdigest()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _dedup(pages: list[str]) -> list[str]:
    return list(dict.fromkeys(pages))


class _Evaluator:
    def __init__(self, params: Params, corpus: Corpus, engine: RagEngine):
        self.params, self.corpus, self.engine = params, corpus, engine
        dense_params = params.model_copy(update={"rag": params.rag.model_copy(update={"lexical_weight": 0.0})})
        self.dense_engine = RagEngine(engine.retriever, engine.index, dense_params)
        index = engine.index
        blocks = []
        for pid in index.page_ids:
            if corpus.has_page(pid):
                blocks.extend(page_blocks(corpus.page(pid)))
            else:  # the index may hold pages the evaluation corpus lacks: use its stored text layer
                blocks.extend(blocks_from_words(pid, index.meta(pid).words))
        self.bm25 = BM25Blocks(blocks)
        self.dense = DenseBlocks.from_params(blocks, params.model)
        self.n_blocks = len(blocks)

    def query_image(self, question):
        path = self.corpus.query_image_path(question)
        if path is None:
            return None
        from PIL import Image

        with Image.open(path) as img:
            return img.convert("RGB")

    def run_model(self, question) -> tuple[SystemOutput, SystemOutput, SystemOutput]:
        engine, index, k = self.engine, self.engine.index, self.params.evaluate.k
        gold = question.page_id
        image = self.query_image(question)
        t0 = time.perf_counter()
        text, qv = engine.query(question.question, image)  # as served: two-stage for image questions
        t_enc = time.perf_counter()
        hits = engine.search_vector(qv, question=text)
        t_search = time.perf_counter()
        result = engine.answer_vector(text, qv, k=k, hits=hits)
        t_region = time.perf_counter()
        enc_ms, search_ms = (t_enc - t0) * 1e3, (t_search - t_enc) * 1e3
        region_ms = (t_region - t0) * 1e3  # encode + search + region extraction + answer

        gold_region_box = None
        if gold is not None and index.has_page(gold):
            fused = index.heatmap(gold, qv, text, self.params.rag.lexical_weight,
                                  self.params.rag.lexical_scope, self.params.rag.region_term_weights)
            regions = extract_regions(fused, self.params.regions, gold, blocks=index.meta(gold).blocks)
            gold_region_box = regions[0].box if regions else None
        region_pages = _dedup([r["page_id"] for r in result.regions] + [p for p, _ in result.page_ranking])
        regionops = SystemOutput(
            ranking=region_pages, top_page=result.page_id,
            top_box=tuple(result.boxes[0]) if result.boxes else None,
            gold_page_box=gold_region_box, answer=result.answer, latency_ms=region_ms,
            extra={"result": result, "query": qv},
        )
        top = hits[0].page_id if hits else None
        page_answer = answer_from_region(text, index.meta(top).words, FULL_PAGE) if top else ""
        page_level = SystemOutput(
            ranking=[h.page_id for h in hits], top_page=top, top_box=FULL_PAGE if top else None,
            gold_page_box=FULL_PAGE if gold is not None and index.has_page(gold) else None,
            answer=page_answer, latency_ms=enc_ms + search_ms,
        )
        t0 = time.perf_counter()
        dense = self.dense_engine.answer_vector(text, qv, k=k)
        dense_ms = enc_ms + (time.perf_counter() - t0) * 1e3
        dense_gold_box = None
        if gold is not None and index.has_page(gold):
            dense_regions = extract_regions(index.heatmap(gold, qv), self.params.regions, gold,
                                            blocks=index.meta(gold).blocks)
            dense_gold_box = dense_regions[0].box if dense_regions else None
        regionops_dense = SystemOutput(
            ranking=_dedup([r["page_id"] for r in dense.regions] + [p for p, _ in dense.page_ranking]),
            top_page=dense.page_id, top_box=tuple(dense.boxes[0]) if dense.boxes else None,
            gold_page_box=dense_gold_box, answer=dense.answer, latency_ms=dense_ms,
        )
        return regionops, regionops_dense, page_level

    def run_blocks(self, system, question) -> SystemOutput:
        t0 = time.perf_counter()
        hits = system.search(question.question)
        top = hits[0] if hits else None
        answer = answer_from_text_lines(question.question, top.block.text.split("\n")) if top else ""
        latency = (time.perf_counter() - t0) * 1e3
        gold_hit = next((h for h in hits if h.page_id == question.page_id), None)
        return SystemOutput(
            ranking=[h.page_id for h in hits], top_page=top.page_id if top else None,
            top_box=top.block.box if top else None,
            gold_page_box=gold_hit.block.box if gold_hit else None,
            answer=answer, latency_ms=latency,
        )


def score_question(out: SystemOutput, question, iou_hit: float, k: int) -> dict[str, float | None]:
    """Per-question metrics; None where the gold field is missing."""
    gold_page, gold_box = question.page_id, question.box
    has_page, has_box = gold_page is not None, gold_page is not None and gold_box is not None
    return {
        "page_r1": M.recall_at_k(out.ranking, gold_page, 1) if has_page else None,
        "page_r5": M.recall_at_k(out.ranking, gold_page, 5) if has_page else None,
        "ndcg5": M.ndcg_at_k(out.ranking, gold_page, k) if has_page else None,
        "mrr": M.reciprocal_rank(out.ranking, gold_page) if has_page else None,
        "region_hit1": M.region_hit(out.top_page, out.top_box, gold_page, gold_box, iou_hit) if has_box else None,
        "region_miou": (M.iou(out.gold_page_box, gold_box) if out.gold_page_box else 0.0) if has_box else None,
        "anls": M.anls(out.answer, question.answers),
        "em": M.exact_match(out.answer, question.answers),
    }


def _write_per_question(path: Path, records: list[dict]) -> None:
    """One line per question: its id, type and every system's scores, so that two runs on the same
    questions can be compared question by question (paired intervals in the retriever ablation)."""
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            q = record["question"]
            f.write(json.dumps({"id": q.id, "type": q.type, "scores": record["scores"]}) + "\n")


def _highlight_sample(records: list[dict], n: int, seed: int) -> list[dict]:
    """A fixed seeded sample of the boxed questions, drawn by question id alone, never by outcome.

    Every run over the same evaluation set draws the same questions, so two runs compare image
    by image; each image is then labelled hit or miss by this run's own outcome.
    """
    boxed = sorted((r for r in records if r["scores"]["regionops"]["region_hit1"] is not None),
                   key=lambda r: _question_id(r))
    return random.Random(seed).sample(boxed, min(n, len(boxed)))


def _question_id(record: dict) -> str:
    question = record.get("question")
    return str(getattr(question, "id", None) or record.get("id"))


def _write_highlights(sample: list[dict], corpus: Corpus, engine: RagEngine, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    index: list[dict] = []  # which question each image shows and whether this run hit it
    for rec in sample:
        q, out = rec["question"], rec["outputs"]["regionops"]
        result, qv = out.extra["result"], out.extra["query"]
        kind = "hit" if rec["scores"]["regionops"]["region_hit1"] == 1.0 else "miss"
        panels = []
        pages = _dedup([p for p in (result.page_id, q.page_id) if p is not None])
        for pid in pages:
            if not corpus.has_page(pid):
                continue
            heat = result.heatmaps.get(pid)  # the fused map the ranking used
            if heat is None:
                heat = engine.index.heatmap(pid, qv, result.question, engine.params.rag.lexical_weight,
                                            engine.params.rag.lexical_scope, engine.params.rag.region_term_weights)
            boxes = [r["box"] for r in result.regions if r["page_id"] == pid]
            label = "gold" if pid == q.page_id else "predicted"
            panels.append(
                draw_highlight(corpus.load_image(corpus.page(pid)), heat, boxes,
                               q.box if pid == q.page_id else None, f"{kind.upper()} {q.id} {label}: {pid}")
            )
        if not panels:
            continue
        height = max(p.size[1] for p in panels)
        from PIL import Image

        canvas = Image.new("RGB", (sum(p.size[0] for p in panels), height), "white")
        x = 0
        for panel in panels:
            canvas.paste(panel, (x, 0))
            x += panel.size[0]
        canvas = with_caption(canvas, [f"Q ({q.type or 'untyped'}): {q.question}",
                                       f"gold: {' | '.join(q.answers) or '(no answer)'}  on {q.page_id}",
                                       f"predicted: {result.answer or '(none)'}  on {result.page_id}  [{kind}]"])
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in q.id)[:60]
        # Named by question only: the same file name in two runs shows the same question.
        path = folder / f"{safe}.png"
        canvas.save(path, format="PNG")
        paths.append(path)
        index.append({"file": path.name, "question_id": q.id, "type": q.type, "outcome": kind,
                      "gold_page": q.page_id, "predicted_page": result.page_id})
    _write_json(folder / "sample.json", index)
    return paths


def _log_to_mlflow(params: Params, settings, model_dir: Path, out_dir: Path, metrics: dict,
                   questions: list | None = None, dataset_name: str | None = None) -> str:
    """Log this evaluation as its own MLflow run, nested under the candidate's training run.

    One run per evaluation: re-evaluating (another folder, the champion, a new corpus) never
    overwrites the training run's metrics nor mixes its highlight images. The run carries the
    evaluation set as a dataset input (name + digest) and the training run as its parent.
    """
    import mlflow

    from components.tracking import (
        PARENT_RUN_TAG,
        ensure_experiment,
        log_dataset,
        question_rows,
    )

    mlflow.set_tracking_uri(settings.tracking_uri)
    client = mlflow.MlflowClient()
    run_file = Path(model_dir) / "train_run.json"
    parent = None
    if run_file.is_file():
        run_id = json.loads(run_file.read_text("utf-8")).get("run_id")
        if run_id:
            try:
                parent = client.get_run(run_id)
            except mlflow.exceptions.MlflowException:
                parent = None  # the run lives in another tracking store: no parent here
    experiment = (client.get_experiment(parent.info.experiment_id).name if parent is not None
                  else params.registry.experiment)
    experiment_id = ensure_experiment(client, experiment)  # (also marks it: opens on runs, not traces)
    name = dataset_name or params.evaluate.split
    digest = metrics["dataset_id"]
    tags = {
        "regionops.stage": "evaluate",
        "regionops.eval_dataset_id": digest,
        "regionops.eval_dataset": name,
        "regionops.eval_split": metrics["split"],
    }
    if parent is not None:
        tags.update({PARENT_RUN_TAG: parent.info.run_id, "regionops.training_run_id": parent.info.run_id})
    run_name = f"evaluate {name} ({metrics['n_questions']} questions, dataset {digest[:8]})"
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id = run.info.run_id
    status = "FAILED"
    try:
        flat = {
            f"{system}.{key}": value
            for system, values in metrics["systems"].items()
            for key, value in values.items()
            if isinstance(value, (int, float)) and value is not None
        }
        flat["eval.n_questions"] = metrics["n_questions"]
        with mlflow.start_run(run_id=run_id):
            mlflow.log_metrics(flat)
            mlflow.log_params({"split": metrics["split"], "dataset": name, "dataset_id": digest[:32],
                               "k": params.evaluate.k, "iou_hit": params.evaluate.iou_hit})
            if questions is not None:
                log_dataset(client, run_id, question_rows(questions), name=name, digest=digest,
                            source=out_dir, context="evaluation")
            mlflow.log_artifacts(str(out_dir), artifact_path="evaluation")
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status)
    return run_id


def choose_region_params(params: Params, corpus: Corpus, engine: RagEngine) -> tuple[Params, dict]:
    """Region-extraction settings chosen on the validation split (never on test), and the record.

    Tuned on the fused gold-page heatmaps of val questions with a box; with no such
    questions the params.yaml settings stand, and the record says so.
    """
    from components.model.encode import encode_queries
    from components.regions.extract import tune_region_params

    val = [q for q in corpus.questions_in("val")
           if q.box and q.page_id and not q.query_image and engine.index.has_page(q.page_id)]
    if not val:
        return params, {"tuned_on": None, "chosen": params.regions.model_dump()}
    vectors = encode_queries(engine.retriever, [q.question for q in val])
    heatmaps = [engine.index.heatmap(q.page_id, v, q.question, params.rag.lexical_weight, params.rag.lexical_scope,
                                     params.rag.region_term_weights)
                for q, v in zip(val, vectors)]
    blocks = [engine.index.meta(q.page_id).blocks for q in val]
    chosen, table = tune_region_params(heatmaps, [q.box for q in val], params.regions, params.evaluate.iou_hit,
                                       blocks=blocks)
    best = max(table, key=lambda row: (row["hit1"], row["miou"]))
    record = {"tuned_on": "val", "n_val": len(val), "chosen": chosen.model_dump(),
              "val_gold_page_hit1": best["hit1"], "val_gold_page_miou": best["miou"]}
    return params.model_copy(update={"regions": chosen}), record


def _reader_answering(params: Params, corpus: Corpus, engine: RagEngine, reader_dir: Path, split: str) -> dict:
    """Answers by the trained reader (issue 7): oracle vs retrieved contexts, region vs page level."""
    from components.evaluation.answering import AnsweringBench, evaluate_answering
    from components.reader.answerer import ReaderAnswerer
    from components.reader.io import load_reader

    reader = load_reader(reader_dir)
    params = params.model_copy(update={"reader": reader.params})  # contexts and m as trained
    bench = AnsweringBench(params, corpus, engine, split)
    return evaluate_answering(bench, ReaderAnswerer(reader, engine.index))


def run_evaluation(
    params: Params, corpus: Corpus, model_dir: Path, index_dir: Path, out_dir: Path, settings=None,
    engine: RagEngine | None = None, log_mlflow: bool = True, reader_dir: Path | None = None,
) -> dict:
    """Evaluate the four systems on ``params.evaluate.split``; write and log the outputs; return metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = params.evaluate.split
    questions = corpus.questions_in(split)
    if not questions:
        raise ValueError(f"no questions in the {split!r} split of {corpus.root}: nothing to evaluate")
    engine = engine or RagEngine.from_dirs(Path(model_dir), Path(index_dir), params)
    params, region_choice = choose_region_params(params, corpus, engine)
    engine = RagEngine(engine.retriever, engine.index, params)  # the caller's engine keeps its settings
    evaluator = _Evaluator(params, corpus, engine)
    iou_hit, k = params.evaluate.iou_hit, params.evaluate.k

    acc = {s: M.MetricAccumulator() for s in SYSTEMS}
    latencies: dict[str, list[float]] = defaultdict(list)
    per_type: dict[tuple[str, str], M.MetricAccumulator] = defaultdict(M.MetricAccumulator)
    records = []
    not_indexed = 0
    for q in tqdm(questions, desc=f"evaluate {split}", unit="q", disable=None):
        if q.page_id is not None and not engine.index.has_page(q.page_id):
            not_indexed += 1  # scored as a retrieval miss: the system cannot find an unindexed page
        regionops, regionops_dense, page_level = evaluator.run_model(q)
        outputs = {
            "regionops": regionops,
            "regionops_dense": regionops_dense,
            "page_level": page_level,
            "bm25_blocks": evaluator.run_blocks(evaluator.bm25, q),
            "dense_blocks": evaluator.run_blocks(evaluator.dense, q),
        }
        scores = {}
        for name, out in outputs.items():
            scores[name] = score_question(out, q, iou_hit, k)
            for key, value in scores[name].items():
                acc[name].add(key, value)
                if key in ("page_r1", "region_hit1"):
                    per_type[(q.type or "untyped", name)].add(key, value)
            latencies[name].append(out.latency_ms)
        records.append({"question": q, "outputs": outputs, "scores": scores})

    systems = {}
    for name in SYSTEMS:
        means = acc[name].means()
        values = {key: means.get(key) for key in METRIC_KEYS}
        values["latency_ms_p50"] = M.percentile(latencies[name], 50)
        values["latency_ms_p95"] = M.percentile(latencies[name], 95)
        systems[name] = values
    first = acc["regionops"].counts
    counts = {
        "n_with_page": first.get("page_r1", 0),
        "n_with_box": first.get("region_hit1", 0),
        "n_with_answers": first.get("anls", 0),
        "n_query_image": sum(1 for q in questions if q.query_image),
        "n_gold_page_not_indexed": not_indexed,
        "n_indexed_pages": len(engine.index),
        "n_blocks": evaluator.n_blocks,
    }
    metrics = {
        "systems": systems,
        "n_questions": len(questions),
        "counts": counts,
        "split": split,
        "dataset_id": dataset_id([q.id for q in questions], engine.index.page_ids),
        "index": {k2: v for k2, v in engine.index.stats().items() if k2 != "bytes_per_page"},
        "regions": region_choice,
    }
    if reader_dir is not None:
        metrics["answering"] = _reader_answering(params, corpus, engine, Path(reader_dir), split)
        for name in ("regionops", "page_level"):
            values = metrics["answering"]["systems"][name]
            systems[name].update({f"reader_{key}": values[key] for key in ("anls", "em")})
            systems[name].update({key: values[key] for key in ("visual_tokens", "visual_token_ratio")})
    type_rows = [
        {"type": t, "system": s, "n": acc_t.counts.get("page_r1", 0), **{
            key: acc_t.means().get(key) for key in ("page_r1", "region_hit1")}}
        for (t, s), acc_t in sorted(per_type.items())
    ]
    _write_json(out_dir / "metrics.json", metrics)
    _write_json(out_dir / "per_type.json", type_rows)
    _write_per_question(out_dir / "per_question.jsonl", records)
    (out_dir / "report.md").write_text(render_report(metrics, type_rows), encoding="utf-8")
    (out_dir / "per_type.md").write_text(render_per_type(type_rows), encoding="utf-8")
    write_plot_data(out_dir, systems, type_rows, _write_json)  # the series dvc.yaml's top-level plots draw
    highlights = out_dir / "highlights"
    if highlights.exists():
        for old in highlights.glob("*.png"):
            old.unlink()
    sample = _highlight_sample(records, params.evaluate.n_highlights, params.seed)
    _write_highlights(sample, corpus, engine, highlights)
    if log_mlflow:
        if settings is None:
            from components.settings import get_settings

            settings = get_settings()
        run_id = _log_to_mlflow(params, settings, model_dir, out_dir, metrics, questions,
                                f"{Path(corpus.root).name}/{split}")
        metrics = {**metrics, "mlflow_run_id": run_id}
        _write_json(out_dir / "metrics.json", metrics)  # the gate and the registry find the evaluation run
    return metrics
