"""The answerer choice measured on real pages: the reader against the text layer on held-out real documents.

``registry.answerer: auto`` (ADR 10) serves the reader only where it answers better than the
top region's text layer. On the synthetic test split the two are close and the heuristic often
wins, while on real PDFs the heuristic scores near zero (ADR 24). With a real question set
configured (``reader.real_train_dir``, built by ``scripts/real_docs.py``), the evaluation also
scores both answerers on that set's ``val`` documents, and the gate decides on those real pages.

Why ``val`` is held out: the reader trains on the set's other documents (split by document),
and exports its last step, so ``val`` chooses nothing about it. The retriever and the region
settings are the ones that serve; the pages come from the reader's own cache (same key, so
nothing is imported or indexed again).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from components.config import Params
from components.evaluation import metrics as M

log = logging.getLogger(__name__)
SPLIT = "val"


def score_real_answering(
    params: Params,
    serving_params: Params,
    home: Path,
    model_dir: Path,
    retriever,
    reader,
) -> dict:
    """Reader and text-layer ANLS on the real set's ``val`` questions, or why it was not measured.

    ``params`` keys the real-pages cache as the reader's training did (the pipeline's params);
    ``serving_params`` retrieve (the region settings the evaluation chose). Returns
    ``{"measured": True, "set", "split", "n_questions", "reader_anls", "text_anls", ...}``
    or ``{"measured": False, "reason": ...}``.
    """
    from components.evaluation.answering import AnsweringBench
    from components.rag.answer import answer_from_region
    from components.rag.engine import RagEngine
    from components.reader.answerer import ReaderAnswerer
    from components.reader.real_pages import prepare_real_pages, resolve_set_dir

    if not params.reader.real_train_dir:
        return {"measured": False, "reason": "reader.real_train_dir is empty"}
    set_dir = resolve_set_dir(params.reader.real_train_dir, home)
    if not (set_dir / "questions.jsonl").is_file() or not (set_dir / "docs").is_dir():
        return {
            "measured": False,
            "reason": f"no real question set at {set_dir} (scripts/real_docs.py builds it)",
        }
    corpus, index = prepare_real_pages(
        params, set_dir, model_dir, retriever.fingerprint, Path(home) / "reader-pages"
    )
    run_params = serving_params.model_copy(update={"reader": reader.params})  # k and m as trained
    engine = RagEngine(retriever, index, run_params)
    bench = AnsweringBench(run_params, corpus, engine, SPLIT)
    if not bench.items:
        return {"measured": False, "reason": f"{set_dir} has no {SPLIT} questions with answers"}
    reader_scores = np.zeros(len(bench.items))  # 0 for a question the reader was given nothing for
    for i, answered in bench.answers(
        ReaderAnswerer(reader, index), "regionops", reader.params.visual_tokens
    ):
        reader_scores[i] = M.anls(answered.answer, bench.items[i].question.answers)
    text_scores = np.zeros(len(bench.items))
    for i, item in enumerate(bench.items):
        if item.regions:  # the served fallback: the heuristic over the top region
            top = item.regions[0]
            text = answer_from_region(item.text, index.meta(top.page_id).words, top.box)
            text_scores[i] = M.anls(text, item.question.answers)
    record = {
        "measured": True,
        "set": str(set_dir),
        "split": SPLIT,
        "n_questions": len(bench.items),
        "reader_anls": round(float(reader_scores.mean()), 6),
        "text_anls": round(float(text_scores.mean()), 6),
        "regions_rule": serving_params.regions.rule,
    }
    log.info(
        "real %s answering (%d questions): reader ANLS %.3f, text layer %.3f",
        SPLIT,
        record["n_questions"],
        record["reader_anls"],
        record["text_anls"],
    )
    return record
