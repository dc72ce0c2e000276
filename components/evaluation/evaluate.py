"""Score regionops, its ablations and the baselines on the same questions and pages.

The six systems are described in ``components.evaluation.systems``: all search exactly the pages
held by the index, read the same question text and answer with the same answerer over their top
region (``components.evaluation.region_answer``), so differences come from retrieval and
localisation alone.

``run_evaluation`` scores one split of the pipeline's corpus (the DVC ``evaluate`` stage), with
region settings chosen on val here; ``components.evaluation.folder_eval`` scores every question of
an external folder with the same ``score_questions`` (``components.evaluation.scoring``). Both
write, through ``components.evaluation.outputs``, ``metrics.json`` (per system the retrieval,
region and answer metrics and ``latency_ms: {p50, p95}``; the same for text-only questions in
``systems_text_only``; ``block_recall``), ``report.md``, ``per_type.json``/``per_type.md``,
``per_question.jsonl`` (every system's scores per question, for paired comparisons) and
``highlights/`` (a fixed seeded sample of questions as PNGs plus ``sample.json``) into the
output folder, plus ``plots/`` (series for dvc.yaml's plots); ``run_evaluation`` also logs them
(plus ``<system>.<metric>`` metrics) to an MLflow run of its own, nested under the candidate's
training run.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from components.config import Params
from components.data.corpus import Corpus, write_json_atomic
from components.evaluation.outputs import write_outputs
from components.evaluation.region_answer import RegionAnswerer
from components.evaluation.scoring import score_questions
from components.rag.engine import RagEngine


def dataset_id(question_ids: list[str], page_ids: list[str]) -> str:
    blob = json.dumps({"questions": sorted(question_ids), "pages": sorted(page_ids)}).encode()
    return hashlib.sha256(blob).hexdigest()


def tune_regions_on(
    params: Params, questions: list, engine: RagEngine
) -> tuple[Params, dict] | None:
    """Region-extraction settings tuned on ``questions``' gold-page fused heatmaps (those with a box,
    an indexed gold page and no query image); None when there is no such question."""
    from components.evaluation.region_tuning import (
        best_row,
        tune_dense_settings,
        tune_region_params,
    )
    from components.model.encode import encode_queries

    usable = [
        q
        for q in questions
        if q.box and q.page_id and not q.query_image and engine.index.has_page(q.page_id)
    ]
    if not usable:
        return None
    vectors = encode_queries(engine.retriever, [q.question for q in usable])
    queries = [engine.index_query(v, q.question) for q, v in zip(usable, vectors)]
    blocks = [engine.index.meta(q.page_id).blocks for q in usable]
    text_scores = [
        engine.index.lexical.block_scores(q.question, engine.index.position(q.page_id))
        for q in usable
    ]
    # the region map's lexical weight is searched with the rest (ADR 31); an empty list keeps
    # the configured one
    weights = list(
        dict.fromkeys(params.regions.search.lexical_weight or [params.region_lexical_weight()])
    )
    # per question, its gold page's dense map and its map at each weight (dense scores computed once)
    dense_maps, maps = zip(
        *(
            engine.index.heatmaps_at_region_weights(
                q.page_id,
                query,
                q.question,
                params.rag.lexical_weight,
                params.rag.lexical_scope,
                params.rag.region_term_weights,
                weights,
            )
            for q, query in zip(usable, queries)
        )
    )
    boxes = [q.box for q in usable]
    table: list[dict] = []
    for j, weight in enumerate(weights):
        _, rows = tune_region_params(
            [m[j] for m in maps],
            boxes,
            params.regions,
            params.evaluate.iou_hit,
            blocks=blocks,
            text_scores=text_scores,
        )
        table += [{**row, "lexical_weight": weight} for row in rows]
    best = best_row(table)  # ties: the first weight
    dense, dense_best = tune_dense_settings(params, list(dense_maps), boxes, blocks)
    chosen = params.regions.model_copy(
        update={k: best[k] for k in params.regions.model_dump() if k in best and k != "search"}
        | {"dense": dense}
    )
    by_rule = {
        rule: max(row["hit1"] for row in table if row["rule"] == rule)
        for rule in {r["rule"] for r in table}
    }
    by_weight = {
        str(w): max(row["hit1"] for row in table if row["lexical_weight"] == w) for w in weights
    }
    record = {
        "n_tuned": len(usable),
        "chosen": chosen.model_dump(),
        "tuned_gold_page_hit1": best["hit1"],
        "tuned_gold_page_miou": best["miou"],
        "best_gold_page_hit1_per_rule": by_rule,
        "best_gold_page_hit1_per_lexical_weight": by_weight,
        "dense_gold_page_hit1": dense_best["hit1"],
        "dense_gold_page_miou": dense_best["miou"],
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
        "val_gold_page_hit1_per_rule": record["best_gold_page_hit1_per_rule"],
        "val_gold_page_hit1_per_lexical_weight": record["best_gold_page_hit1_per_lexical_weight"],
        "val_dense_gold_page_hit1": record["dense_gold_page_hit1"],
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
    write_json_atomic(
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
        write_json_atomic(
            out_dir / "metrics.json", metrics
        )  # the gate and the registry find the evaluation run
    return metrics
