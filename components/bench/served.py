"""One corpus size of ``make bench``: every storage mode's served engine and ``lexical_only`` answer
the same questions; accuracy (paired against float16) and latency per system."""

from __future__ import annotations

import time

import numpy as np

from components.bench.corpus import bench_questions, spread
from components.bench.targets import (
    DEFAULT_LATENCY_QUESTIONS,
    LATENCY_THREADS,
    REFERENCE_MODE,
    STORAGE_MODES,
)
from components.config import Params
from components.evaluation.lexical_only import LexicalOnly
from components.evaluation.metrics import percentile, region_hit
from components.evaluation.paired import paired_ratio
from components.index.lexical import LexicalChannel
from components.index.region_index import PageMeta, RegionIndex
from components.rag.engine import RagEngine


def served_engine(
    params: Params, model, metas: list[PageMeta], cells: np.ndarray, storage: str
) -> tuple[RagEngine, float]:
    """The served engine over an index of ``metas`` in ``storage`` mode, and its build seconds."""
    update = {"storage": storage}
    if params.index.faiss != "flat":  # the stored-centroid stage is a flat scan (ADR 12)
        update["pq_residual.candidates"] = "separate"
    index_params = params.index.with_updates(update)
    t0 = time.perf_counter()
    index = RegionIndex.build(
        metas, cells, index_params, model.fingerprint, model.grid, seed=params.seed
    )
    return RagEngine(
        model, index, params.model_copy(update={"index": index_params})
    ), time.perf_counter() - t0


def regions_timed(
    engine: RagEngine, question: str, vector: np.ndarray
) -> tuple[float, tuple | None]:
    """Milliseconds of the served path after encoding (fused search, region extraction and ranking)
    for an encoded question, and the top region's (page, box)."""
    t0 = time.perf_counter()
    hits = engine.search_vector(vector, question=question)
    regions = engine.regions_for(hits, engine.params.rag.k, question)
    ms = (time.perf_counter() - t0) * 1e3
    return ms, ((regions[0].page_id, tuple(regions[0].box)) if regions else None)


def answer_timed(engine: RagEngine, question: str) -> tuple[float, tuple | None]:
    """Milliseconds from the question text to its ranked regions (the served path without the
    answer text: encoding, fused search, extraction), and the top region's (page, box)."""
    t0 = time.perf_counter()
    vector = engine.encode(question)
    _, top = regions_timed(engine, question, vector)
    return (time.perf_counter() - t0) * 1e3, top


def lexical_only(metas: list[PageMeta], grid: int, params: Params) -> LexicalOnly:
    """``lexical_only`` (components/evaluation/lexical_only.py) over the pages' text layers and blocks."""
    channel = LexicalChannel.from_metas(metas, grid)
    return LexicalOnly(channel, [m.page_id for m in metas], [m.blocks for m in metas], params)


def lexical_timed(lexical: LexicalOnly, question: str) -> tuple[float, tuple | None]:
    """Milliseconds from the question text to lexical_only's top region, and its (page, box)."""
    t0 = time.perf_counter()
    result = lexical.search(question)
    return (time.perf_counter() - t0) * 1e3, (
        (result.top_page, result.top_box) if result.top_page else None
    )


def _encode_ms(model, texts: list[str], threads: int) -> list[float]:
    """Milliseconds to encode each question on its own, as a served question is."""
    from components.model.encode import encode_queries, torch_threads

    out = []
    with torch_threads(threads):
        encode_queries(model, texts[:1])  # warm-up: the first call builds the frozen graph
        for text in texts:
            t0 = time.perf_counter()
            encode_queries(model, [text])
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def latency_percentiles(ms: list[float]) -> dict:
    return {
        "p50_ms": round(float(percentile(ms, 50) or 0.0), 3),
        "p95_ms": round(float(percentile(ms, 95) or 0.0), 3),
    }


def _scored(
    answer, questions: list, iou_hit: float, threads: int, encode_ms: dict[int, float] | None
) -> dict:
    """``answer(i, question) -> (ms, top)`` over every question under ``threads`` torch threads:
    per-question page R@1 and region hit@1 hits and latency percentiles. With ``encode_ms``
    (question position -> its own encoding), latency is that encoding plus ``answer``'s time on
    those questions, and ``search_*`` is ``answer``'s time alone on every question."""
    from components.model.encode import torch_threads

    ms, r1, hit1 = [], [], []
    with torch_threads(threads):
        if questions:
            answer(
                0, questions[0]
            )  # warm-up: the first call builds lazy state (BM25, torch blocks)
        for i, q in enumerate(questions):
            t, top = answer(i, q)
            ms.append(t)
            page, box = top if top else (None, None)
            r1.append(page == q.page_id)
            hit1.append(bool(region_hit(page, box, q.page_id, q.box, iou_hit)))
    out = {"page_r1_hits": r1, "region_hit1_hits": hit1}
    if encode_ms is None:
        return {**out, **latency_percentiles(ms)}
    search = latency_percentiles(ms)
    return {
        **out,
        **latency_percentiles([encode_ms[i] + ms[i] for i in encode_ms]),
        "latency_questions": len(encode_ms),
        "search_p50_ms": search["p50_ms"],
        "search_p95_ms": search["p95_ms"],
    }


def _summary(scored: dict, reference: dict | None, seed: int) -> dict:
    """Absolute metrics of one system and, against ``reference`` (float16), their paired ratios."""
    out = {
        "page_r1": float(np.mean(scored["page_r1_hits"])) if scored["page_r1_hits"] else None,
        "region_hit1": float(np.mean(scored["region_hit1_hits"]))
        if scored["region_hit1_hits"]
        else None,
        **{k: v for k, v in scored.items() if not k.endswith("_hits")},
    }
    if reference is not None:
        for key in ("page_r1", "region_hit1"):
            out[f"{key}_paired"] = paired_ratio(
                scored[f"{key}_hits"], reference[f"{key}_hits"], seed=seed
            )
    return out


def bench_size(
    params: Params,
    model,
    corpus,
    cells: np.ndarray,
    n_pages: int,
    max_queries: int,
    threads: int = LATENCY_THREADS,
    latency_questions: int = DEFAULT_LATENCY_QUESTIONS,
) -> dict:
    """Every storage mode's served engine and ``lexical_only`` on the leading ``n_pages`` pages.

    Questions are encoded once (the served encoder, batched) and every mode answers the same
    vectors; ``latency_questions`` of them, spread, are also encoded one by one and timed, and
    their latency is that encoding plus each mode's answering time."""
    from components.model.encode import encode_queries

    pages = corpus.pages[:n_pages]
    metas = [PageMeta.from_page(p) for p in pages]
    questions, n_available = bench_questions(corpus, {p.id for p in pages}, max_queries)
    vectors = encode_queries(model, [q.question for q in questions])
    timed = spread(list(range(len(questions))), latency_questions)
    encode_ms = dict(zip(timed, _encode_ms(model, [questions[i].question for i in timed], threads)))
    iou_hit, seed = params.evaluate.iou_hit, params.seed
    scored: dict[str, dict] = {}
    modes: dict[str, dict] = {}
    for mode in STORAGE_MODES:  # float16 first: the others are rated against it
        engine, build_s = served_engine(params, model, metas, cells[:n_pages], mode)
        scored[mode] = _scored(
            lambda i, q, e=engine: regions_timed(e, q.question, vectors[i]),
            questions,
            iou_hit,
            threads,
            encode_ms,
        )
        stats = engine.index.stats()
        modes[mode] = {
            "bytes_per_page": stats["bytes_per_page"]["vectors_total"],
            "bytes_breakdown": stats["bytes_per_page"],
            "candidate_stage": stats["candidate_vectors"],
            "build_s": round(build_s, 2),
            **_summary(
                scored[mode], scored[REFERENCE_MODE] if mode != REFERENCE_MODE else None, seed
            ),
        }
        del engine
    lexical = lexical_only(metas, model.grid, params)
    lexical_scored = _scored(
        lambda i, q: lexical_timed(lexical, q.question), questions, iou_hit, threads, None
    )
    r = params.rag
    return {
        "pages": len(pages),
        "queries": len(questions),
        "questions_available": n_available,
        "query_encode_p50_ms": latency_percentiles(list(encode_ms.values()))["p50_ms"],
        "served": {
            "lexical_weight": r.lexical_weight,
            "lexical_candidates": r.lexical_candidates,
            "lexical_scope": r.lexical_scope,
            "region_term_weights": r.region_term_weights,
            "snap": params.regions.snap,
            "candidates": params.index.candidates,
            "k": r.k,
            "threads": threads,
            "latency_questions": len(encode_ms),
        },
        "modes": modes,
        "lexical_only": _summary(lexical_scored, scored[REFERENCE_MODE], seed),
    }
