"""Score the six evaluated systems (``components.evaluation.systems``) on a list of questions: per
question, per system (means and latency percentiles, all and text-only) and per question type."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tqdm.auto import tqdm

from components.config import Params
from components.data.corpus import Corpus
from components.evaluation import metrics as M
from components.evaluation.block_recall import block_recall
from components.evaluation.region_answer import RegionAnswerer
from components.evaluation.systems import SYSTEMS, SystemOutput, SystemRunner
from components.rag.engine import RagEngine

METRIC_KEYS = ("page_r1", "page_r5", "ndcg5", "mrr", "region_hit1", "region_miou", "anls", "em")


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
