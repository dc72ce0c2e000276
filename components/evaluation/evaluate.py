"""Score regionops, its ablations and the baselines on the same questions and pages.

The six systems are described in ``components.evaluation.systems``: all search exactly the pages
held by the index, read the same question text and answer with the same answerer over their top
region (``components.evaluation.region_answer``), so differences come from retrieval and
localisation alone.

``run_evaluation`` scores one split of the pipeline's corpus (the DVC ``evaluate`` stage);
``components.evaluation.folder_eval`` scores every question of an external folder with the same
``score_questions``. Both write ``metrics.json`` (per system the retrieval, region and answer
metrics and ``latency_ms: {p50, p95}``; the same for text-only questions in
``systems_text_only``; ``block_recall``), ``report.md``, ``per_type.json``/``per_type.md``,
``per_question.jsonl`` (every system's scores per question, for paired comparisons) and
``highlights/`` (a fixed seeded sample of questions as PNGs plus ``sample.json``) into the
output folder, plus ``plots/`` (series for dvc.yaml's plots); ``run_evaluation`` also logs them
(plus ``<system>.<metric>`` metrics) to an MLflow run of its own, nested under the candidate's
training run.

Over 400 lines on purpose: scoring, writing the declared outputs and logging the evaluation run
are one stage's steps, and the gate reads exactly what this module writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from components.config import Params
from components.data.corpus import Corpus
from components.evaluation import metrics as M
from components.evaluation.block_recall import block_recall
from components.evaluation.highlights import highlight_sample, write_highlights
from components.evaluation.plot_data import write_plot_data
from components.evaluation.region_answer import RegionAnswerer
from components.evaluation.report import render_per_type, render_report
from components.evaluation.systems import FULL_PAGE, SYSTEMS, SystemOutput, SystemRunner  # noqa: F401
from components.rag.engine import RagEngine

METRIC_KEYS = ("page_r1", "page_r5", "ndcg5", "mrr", "region_hit1", "region_miou", "anls", "em")
_highlight_sample = highlight_sample  # the name the tests and older callers import


def dataset_id(question_ids: list[str], page_ids: list[str]) -> str:
    blob = json.dumps({"questions": sorted(question_ids), "pages": sorted(page_ids)}).encode()
    return hashlib.sha256(blob).hexdigest()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def score_question(out: SystemOutput, question, iou_hit: float, k: int) -> dict[str, float | None]:
    """Per-question metrics; None where the gold field is missing."""
    gold_page, gold_box = question.page_id, question.box
    has_page, has_box = gold_page is not None, gold_page is not None and gold_box is not None
    return {
        "page_r1": M.recall_at_k(out.ranking, gold_page, 1) if has_page else None,
        "page_r5": M.recall_at_k(out.ranking, gold_page, 5) if has_page else None,
        "ndcg5": M.ndcg_at_k(out.ranking, gold_page, k) if has_page else None,
        "mrr": M.reciprocal_rank(out.ranking, gold_page) if has_page else None,
        "region_hit1": M.region_hit(out.top_page, out.top_box, gold_page, gold_box, iou_hit)
        if has_box
        else None,
        "region_miou": (M.iou(out.gold_page_box, gold_box) if out.gold_page_box else 0.0)
        if has_box
        else None,
        "anls": M.anls(out.answer, question.answers),
        "em": M.exact_match(out.answer, question.answers),
    }


def _write_per_question(path: Path, records: list[dict]) -> None:
    """One line per question: its id, type and every system's scores, so that two runs on the same
    questions can be compared question by question (paired intervals in the retriever ablation),
    and what each system returned (top page, top region box, answer)."""
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            q = record["question"]
            outputs = {
                name: {
                    "page": out.top_page,
                    "box": None
                    if out.top_box is None
                    else [round(float(v), 6) for v in out.top_box],
                    "answer": out.answer,
                }
                for name, out in record["outputs"].items()
            }
            f.write(
                json.dumps(
                    {
                        "id": q.id,
                        "type": q.type,
                        "query_image": bool(q.query_image),
                        "scores": record["scores"],
                        "outputs": outputs,
                    }
                )
                + "\n"
            )


def _system_table(acc: dict[str, M.MetricAccumulator], latencies: dict[str, list[float]]) -> dict:
    systems = {}
    for name in SYSTEMS:
        means = acc[name].means()
        values: dict[str, Any] = {key: means.get(key) for key in METRIC_KEYS}
        p50, p95 = M.percentile(latencies[name], 50), M.percentile(latencies[name], 95)
        values["latency_ms"] = {"p50": p50, "p95": p95}
        values["latency_ms_p50"], values["latency_ms_p95"] = (
            p50,
            p95,
        )  # flat, for MLflow and older readers
        systems[name] = values
    return systems


def score_questions(
    params: Params,
    corpus: Corpus,
    engine: RagEngine,
    questions: list,
    answerer: RegionAnswerer | None = None,
    desc: str = "evaluate",
    progress: bool | None = None,
) -> dict:
    """Run and score the six systems on ``questions``.

    Returns ``systems`` (all questions), ``systems_text_only`` (questions without a query image),
    ``counts``, ``block_recall``, per-type rows and the per-question records.
    """
    answerer = answerer or RegionAnswerer(engine.index, engine.reader)
    runner = SystemRunner(params, corpus, engine, answerer)
    iou_hit, k = params.evaluate.iou_hit, params.evaluate.k
    acc = {s: M.MetricAccumulator() for s in SYSTEMS}
    acc_text = {s: M.MetricAccumulator() for s in SYSTEMS}
    latencies: dict[str, list[float]] = defaultdict(list)
    latencies_text: dict[str, list[float]] = defaultdict(list)
    per_type: dict[tuple[str, str], M.MetricAccumulator] = defaultdict(M.MetricAccumulator)
    records = []
    not_indexed = 0
    if questions:
        # One untimed question first: lazy loads (text encoder, lexical channel) are not per-question latency.
        runner.run(questions[0])
    # progress None: a bar on a terminal only; True: also into a log file (every 15 s)
    bar = {"disable": None} if progress is None else {"disable": not progress, "mininterval": 15}
    for q in tqdm(questions, desc=desc, unit="q", **bar):
        if q.page_id is not None and not engine.index.has_page(q.page_id):
            not_indexed += 1  # scored as a retrieval miss: the system cannot find an unindexed page
        outputs = runner.run(q)
        scores = {}
        for name, out in outputs.items():
            scores[name] = score_question(out, q, iou_hit, k)
            for key, value in scores[name].items():
                acc[name].add(key, value)
                if not q.query_image:
                    acc_text[name].add(key, value)
                if key in ("page_r1", "region_hit1"):
                    per_type[(q.type or "untyped", name)].add(key, value)
            latencies[name].append(out.latency_ms)
            if not q.query_image:
                latencies_text[name].append(out.latency_ms)
        records.append({"question": q, "outputs": outputs, "scores": scores})
    first = acc["regionops"].counts
    counts = {
        "n_with_page": first.get("page_r1", 0),
        "n_with_box": first.get("region_hit1", 0),
        "n_with_answers": first.get("anls", 0),
        "n_query_image": sum(1 for q in questions if q.query_image),
        "n_text_only": sum(1 for q in questions if not q.query_image),
        "n_gold_page_not_indexed": not_indexed,
        "n_indexed_pages": len(engine.index),
        "n_blocks": runner.n_blocks,
    }
    type_rows = [
        {
            "type": t,
            "system": s,
            "n": acc_t.counts.get("page_r1", 0),
            **{key: acc_t.means().get(key) for key in ("page_r1", "region_hit1")},
        }
        for (t, s), acc_t in sorted(per_type.items())
    ]
    return {
        "systems": _system_table(acc, latencies),
        "systems_text_only": _system_table(acc_text, latencies_text),
        "counts": counts,
        "block_recall": block_recall(corpus.pages, questions, iou_hit),
        "answerer": answerer.kind,
        "type_rows": type_rows,
        "records": records,
    }


def write_outputs(
    out_dir: Path, metrics: dict, scored: dict, corpus: Corpus, engine: RagEngine, params: Params
) -> None:
    """metrics.json, per_type.{json,md}, per_question.jsonl, report.md and highlights/ into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    type_rows, records = scored["type_rows"], scored["records"]
    _write_json(out_dir / "metrics.json", metrics)
    _write_json(out_dir / "per_type.json", type_rows)
    _write_per_question(out_dir / "per_question.jsonl", records)
    (out_dir / "report.md").write_text(render_report(metrics, type_rows), encoding="utf-8")
    (out_dir / "per_type.md").write_text(render_per_type(type_rows), encoding="utf-8")
    write_plot_data(
        out_dir, metrics["systems"], type_rows, _write_json
    )  # the series dvc.yaml's plots draw
    highlights = out_dir / "highlights"
    if highlights.exists():
        for old in highlights.glob("*.png"):
            old.unlink()
    sample = highlight_sample(records, params.evaluate.n_highlights, params.seed)
    write_highlights(sample, corpus, engine, highlights)


def tune_regions_on(
    params: Params, questions: list, engine: RagEngine
) -> tuple[Params, dict] | None:
    """Region-extraction settings tuned on ``questions``' gold-page fused heatmaps (those with a box,
    an indexed gold page and no query image); None when there is no such question."""
    from components.evaluation.region_tuning import tune_region_params
    from components.model.encode import encode_queries

    usable = [
        q
        for q in questions
        if q.box and q.page_id and not q.query_image and engine.index.has_page(q.page_id)
    ]
    if not usable:
        return None
    vectors = encode_queries(engine.retriever, [q.question for q in usable])
    heatmaps = [
        engine.index.heatmap(
            q.page_id,
            engine.index_query(v, q.question),
            q.question,
            params.rag.lexical_weight,
            params.rag.lexical_scope,
            params.rag.region_term_weights,
        )
        for q, v in zip(usable, vectors)
    ]
    blocks = [engine.index.meta(q.page_id).blocks for q in usable]
    text_scores = [
        engine.index.lexical.block_scores(q.question, engine.index.position(q.page_id))
        for q in usable
    ]
    chosen, table = tune_region_params(
        heatmaps,
        [q.box for q in usable],
        params.regions,
        params.evaluate.iou_hit,
        blocks=blocks,
        text_scores=text_scores,
    )
    best = max(table, key=lambda row: (row["hit1"], row["miou"]))
    by_rule = {
        rule: max(row["hit1"] for row in table if row["rule"] == rule)
        for rule in {r["rule"] for r in table}
    }
    record = {
        "n_tuned": len(usable),
        "chosen": chosen.model_dump(),
        "tuned_gold_page_hit1": best["hit1"],
        "tuned_gold_page_miou": best["miou"],
        "best_gold_page_hit1_per_rule": by_rule,
    }
    return params.model_copy(update={"regions": chosen}), record


def choose_region_params(params: Params, corpus: Corpus, engine: RagEngine) -> tuple[Params, dict]:
    """Region-extraction settings chosen on the validation split (never on test), and the record.

    Tuned on the fused gold-page heatmaps of val questions with a box; with ``regions.tune: false``
    or no such questions the params.yaml settings stand, and the record says so.
    """
    if not params.regions.tune:
        return params, {
            "tuned_on": None,
            "chosen": params.regions.model_dump(),
            "note": "regions.tune is false: params.yaml's settings, untuned",
        }
    tuned = tune_regions_on(params, corpus.questions_in("val"), engine)
    if tuned is None:
        return params, {"tuned_on": None, "chosen": params.regions.model_dump()}
    params, record = tuned
    return params, {
        "tuned_on": "val",
        "n_val": record["n_tuned"],
        "chosen": record["chosen"],
        "val_gold_page_hit1": record["tuned_gold_page_hit1"],
        "val_gold_page_miou": record["tuned_gold_page_miou"],
    }


def _log_to_mlflow(
    params: Params,
    settings,
    model_dir: Path,
    out_dir: Path,
    metrics: dict,
    questions: list | None = None,
    dataset_name: str | None = None,
) -> str:
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
    experiment = (
        client.get_experiment(parent.info.experiment_id).name
        if parent is not None
        else params.registry.experiment
    )
    experiment_id = ensure_experiment(
        client, experiment
    )  # (also marks it: opens on runs, not traces)
    name = dataset_name or params.evaluate.split
    digest = metrics["dataset_id"]
    tags = {
        "regionops.stage": "evaluate",
        "regionops.eval_dataset_id": digest,
        "regionops.eval_dataset": name,
        "regionops.eval_split": metrics["split"],
    }
    if parent is not None:
        tags.update(
            {PARENT_RUN_TAG: parent.info.run_id, "regionops.training_run_id": parent.info.run_id}
        )
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
        # The client, not the fluent API: a process that already set another active experiment
        # (a training run before this evaluation) may not `start_run` a run of this one.
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        logged_params = {
            "split": metrics["split"],
            "dataset": name,
            "dataset_id": digest[:32],
            "k": params.evaluate.k,
            "iou_hit": params.evaluate.iou_hit,
        }
        client.log_batch(
            run_id,
            metrics=[Metric(key, float(value), now, 0) for key, value in flat.items()],
            params=[Param(key, str(value)) for key, value in logged_params.items()],
        )
        if questions is not None:
            log_dataset(
                client,
                run_id,
                question_rows(questions),
                name=name,
                digest=digest,
                source=out_dir,
                context="evaluation",
            )
        client.log_artifacts(run_id, str(out_dir), artifact_path="evaluation")
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status)
    return run_id


def _reader_answering(
    params: Params,
    corpus: Corpus,
    engine: RagEngine,
    reader_dir: Path,
    split: str,
    records: list[dict] | None = None,
) -> dict:
    """Answers by the trained reader (issue 7): oracle vs retrieved contexts, region vs page level.

    ``records``: ``score_questions``'s per-question records; their text questions' query vectors
    and page hits are reused (same engine, same params), not searched again."""
    from components.evaluation.answering import AnsweringBench, evaluate_answering
    from components.reader.answerer import ReaderAnswerer
    from components.reader.io import load_reader

    reader = load_reader(reader_dir)
    params = params.model_copy(update={"reader": reader.params})  # contexts and m as trained
    retrieved = {}
    for record in records or []:
        question, extra = record["question"], record["outputs"]["regionops"].extra
        if not question.query_image and "hits" in extra:
            retrieved[question.id] = (extra["query"], extra["hits"])
    bench = AnsweringBench(params, corpus, engine, split, retrieved=retrieved)
    return evaluate_answering(bench, ReaderAnswerer(reader, engine.index))


def _real_answering(pipeline_params, params, home, model_dir, engine, reader_dir) -> dict:
    """Reader vs text layer on the real set's held-out documents (``real_answering``)."""
    from components.evaluation.real_answering import score_real_answering
    from components.reader.io import load_reader

    return score_real_answering(
        pipeline_params, params, home, model_dir, engine.retriever, load_reader(reader_dir)
    )


def run_evaluation(
    params: Params,
    corpus: Corpus,
    model_dir: Path,
    index_dir: Path,
    out_dir: Path,
    settings=None,
    engine: RagEngine | None = None,
    log_mlflow: bool = True,
    reader_dir: Path | None = None,
) -> dict:
    """Evaluate the six systems on ``params.evaluate.split``; write and log the outputs; return metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = params.evaluate.split
    questions = corpus.questions_in(split)
    if not questions:
        raise ValueError(
            f"no questions in the {split!r} split of {corpus.root}: nothing to evaluate"
        )
    engine = engine or RagEngine.from_dirs(Path(model_dir), Path(index_dir), params)
    pipeline_params = params  # keys the reader's real-pages cache as its training did
    params, region_choice = choose_region_params(params, corpus, engine)
    # The caller's engine keeps its settings; the answerer is the engine's own (bundled reader or text layer).
    answerer = RegionAnswerer(engine.index, engine.reader)
    engine = RagEngine(engine.retriever, engine.index, params)
    # progress=True: the stage runs under DVC/Prefect with no terminal; a line every 15 s shows it moving.
    scored = score_questions(
        params, corpus, engine, questions, answerer, desc=f"evaluate {split}", progress=True
    )
    systems = scored["systems"]
    metrics = {
        "systems": systems,
        "systems_text_only": scored["systems_text_only"],
        "n_questions": len(questions),
        "counts": scored["counts"],
        "block_recall": scored["block_recall"],
        "answerer": scored["answerer"],
        "split": split,
        "dataset_id": dataset_id([q.id for q in questions], engine.index.page_ids),
        "index": {k2: v for k2, v in engine.index.stats().items() if k2 != "bytes_per_page"},
        "regions": region_choice,
    }
    if reader_dir is not None:
        metrics["answering"] = _reader_answering(
            params, corpus, engine, Path(reader_dir), split, scored["records"]
        )
        for name in ("regionops", "page_level"):
            values = metrics["answering"]["systems"][name]
            systems[name].update({f"reader_{key}": values[key] for key in ("anls", "em")})
            systems[name].update(
                {
                    key: values[key]
                    for key in (
                        "visual_tokens",
                        "text_tokens",
                        "tokens",
                        "visual_token_ratio",
                        "token_ratio",
                    )
                }
            )
        if settings is None:
            from components.settings import get_settings

            settings = get_settings()
        metrics["answering_real"] = _real_answering(
            pipeline_params, params, settings.home, Path(model_dir), engine, Path(reader_dir)
        )
        if metrics["answering_real"]["measured"]:  # logged with the run, read back by the gate
            systems["regionops"].update(
                {
                    "real_reader_anls": metrics["answering_real"]["reader_anls"],
                    "real_text_anls": metrics["answering_real"]["text_anls"],
                }
            )
    write_outputs(out_dir, metrics, scored, corpus, engine, params)
    _write_json(
        out_dir / "regions.json", region_choice
    )  # the declared artifact of the region choice
    if log_mlflow:
        if settings is None:
            from components.settings import get_settings

            settings = get_settings()
        run_id = _log_to_mlflow(
            params,
            settings,
            model_dir,
            out_dir,
            metrics,
            questions,
            f"{Path(corpus.root).name}/{split}",
        )
        metrics = {**metrics, "mlflow_run_id": run_id}
        _write_json(
            out_dir / "metrics.json", metrics
        )  # the gate and the registry find the evaluation run
    return metrics
