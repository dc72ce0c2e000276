"""``make bench``: generator, encoder and index figures measured side by side in one run.

One synthetic corpus of the largest size is generated and encoded once; each smaller size is
its leading pages (whole document families, so near-duplicate distractors stay together). Their
questions are not those of a corpus generated at the smaller size: splits, and with them the
questions' phrasing templates, are assigned over the whole corpus (ADR 18).
Every figure is measured here, on this run's corpus; ratios compare storage modes against
exact float32 exhaustive search on the same queries of the same size, so machine noise cancels
out. The index is measured on the dense channel alone (lexical fusion off) because that is the
part the storage mode changes. ``targets`` compares the largest size with the issue's bars.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from components.config import Params
from components.data.corpus import load_corpus
from components.evaluation.metrics import iou, percentile
from components.evaluation.paired import paired_ratio
from components.index.parallel_encode import effective_workers
from components.index.region_index import FAST_SCAN_FIRST_FETCH, FAST_SCAN_OVERFETCH, PageMeta, RegionIndex
from components.regions.extract import extract_regions

STORAGE_MODES = ("float16", "pq", "binary", "pq_residual")
COMPRESSED_MODES = ("pq", "binary", "pq_residual")
# The issue's bars (issue 6). They are checked, never tuned: a miss is reported as a miss.
TARGET_P50_MS = 20.0
TARGET_BYTES_PER_PAGE = 8 * 1024
TARGET_R1_RATIO = 0.97
TARGET_ENCODE_PAGES_PER_S = 20.0
# Candidate-stage sizes whose recall against exhaustive search is recorded next to the configured C.
CANDIDATE_SWEEP = (16, 32, 64, 128)
# Encoder thread settings compared side by side on the same leading pages (ADR 11).
THREADS_AB_PAGES = 64
THREADS_AB_ROUNDS = 2
# Questions timed through both stage scans of pq_residual (exact SQ4 vs fast scan; ADR 15).
STAGE_AB_QUERIES = 300
# Questions encoded both by MiniLM's eager forward and its frozen graph (ADR 15).
QUERY_AB_QUESTIONS = 300
# One process against index.encode_workers processes on the same leading pages (ADR 15).
WORKERS_AB_PAGES = 256
# Questions per size for the accuracy ratios: every question of the size's pages up to this many
# (spread over the pages). 500 left the ratios ±0.05 noisy between runs (ADR 11, ADR 12).
DEFAULT_MAX_QUERIES = 5000
# pq_residual's cells coded against the nearest page centroid vs the best of this many nearest,
# side by side (ADR 18). Such side-by-side codings (ADR 18, ADR 20) compare their reconstruction
# error on the cells of the first CODING_AB_ERROR_PAGES pages.
CHOICE_AB_ALTERNATIVE = 8
CODING_AB_ERROR_PAGES = 500


def _retriever(params: Params, model_dir: Path | None):
    """The trained retriever when there is one; otherwise a freshly initialised one (flagged)."""
    from components.index.build import retriever_dir
    from components.model.io import load_retriever
    from components.model.retriever import build_retriever

    if model_dir is not None and (retriever_dir(model_dir) / "config.json").exists():
        return load_retriever(retriever_dir(model_dir)), True
    model = build_retriever(params.model)
    model.eval()
    return model, False


def _exact(cells: np.ndarray, queries: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Exhaustive float32 reference: best page and its heatmap per query (pages in chunks to bound memory)."""
    n, c, d = cells.shape
    best_score = np.full(len(queries), -np.inf, dtype=np.float32)
    best = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, n, chunk):
        block = cells[start : start + chunk].astype(np.float32)
        page_scores = (block.reshape(-1, d) @ queries.T).reshape(len(block), c, -1).max(1).T  # [Q, chunk]
        top = page_scores.argmax(-1)
        score = page_scores[np.arange(len(queries)), top]
        better = score > best_score
        best_score[better], best[better] = score[better], top[better] + start
    heat = np.einsum("qpd,qd->qp", cells[best].astype(np.float32), queries)
    return best, heat


def _spread(items: list, n: int) -> list:
    """Up to ``n`` items evenly spaced over the list (questions are stored page by page)."""
    if len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def _stage_scan_ab(index: RegionIndex, queries: np.ndarray, candidates: int) -> dict | None:
    """The stored-centroid stage scanned exactly and by fast scan (ADR 15), alternating per question
    on the same index: milliseconds of ``candidate_pages`` and how often both return the same pages."""
    configured = index.params.residual_fast_scan
    if not index.set_fast_scan(True):
        index.set_fast_scan(configured)
        return None
    lists_on = index.set_stage_lists(False)  # this A/B is ADR 15's: every code, exactly vs by fast scan
    sample = _spread(list(queries), STAGE_AB_QUERIES)
    ms = {"exact": [], "fast": []}
    same = 0
    for q in sample:
        got = {}
        for name in ("exact", "fast"):
            index.set_fast_scan(name == "fast")
            t0 = time.perf_counter()
            got[name] = index.candidate_pages(q, candidates)
            ms[name].append((time.perf_counter() - t0) * 1e3)
        same += int(np.array_equal(np.sort(got["exact"]), np.sort(got["fast"])))
    index.set_fast_scan(configured)
    index.set_stage_lists(lists_on)
    p50 = {name: round(float(percentile(v, 50)), 3) for name, v in ms.items()}
    return {"queries": len(sample), "codes": int(index.candidates_index.ntotal), "p50_ms": p50,
            "speedup": round(p50["exact"] / p50["fast"], 2) if p50["fast"] else None,
            "same_candidates": round(same / len(sample), 4)}


def _lists_ab(index: RegionIndex, queries: np.ndarray, exact_best: np.ndarray, candidates: int) -> dict | None:
    """pq_residual's stored stage scanning every code (ADR 16's shards) against its inverted lists
    (ADR 17), alternating per question on the same index: ``candidate_pages`` milliseconds, how often
    the exhaustive float32 best page is among the candidates, and how often both give the same pages."""
    if not index.set_stage_lists(True):
        return None
    picks = np.linspace(0, len(queries) - 1, min(len(queries), STAGE_AB_QUERIES)).round().astype(int)
    ms: dict[str, list[float]] = {"all_codes": [], "lists": []}
    found = {name: 0 for name in ms}
    same = 0
    for i in picks:
        got = {}
        for name, times in ms.items():
            index.set_stage_lists(name == "lists")
            t0 = time.perf_counter()
            got[name] = index.candidate_pages(queries[i], candidates)
            times.append((time.perf_counter() - t0) * 1e3)
            found[name] += int(int(exact_best[i]) in set(got[name].tolist()))
        same += int(np.array_equal(np.sort(got["all_codes"]), np.sort(got["lists"])))
    index.set_stage_lists(True)
    p50 = {name: round(float(percentile(v, 50)), 3) for name, v in ms.items()}
    stage = index.stats()["stage_lists"]
    return {"queries": len(picks), "lists": stage["lists"], "nprobe": stage["nprobe"], "p50_ms": p50,
            "speedup": round(p50["all_codes"] / p50["lists"], 2) if p50["lists"] else None,
            "candidate_recall": {name: round(n / len(picks), 4) for name, n in found.items()},
            "same_candidates": round(same / len(picks), 4)}


def _shards_ab(index: RegionIndex, queries: np.ndarray, candidates: int) -> dict | None:
    """pq_residual's fast-scan stage on one shard (one thread) against ``residual_fast_scan_threads``
    shards on parallel threads (ADR 16), alternating per question over the index's own codes: raw scan
    milliseconds and how often both return the same scores."""
    from components.index.fast_scan_shards import FastScanShards

    threads = index.params.residual_fast_scan_threads
    if index.residual is None or index.coarse is None or threads < 2:
        return None
    codes = index.coarse.reshape(-1, index.coarse.shape[-1])
    stages = {"one_shard": FastScanShards(codes, index.residual.fast_scan_stage, 1),
              "shards": FastScanShards(codes, index.residual.fast_scan_stage, threads)}
    if not all(st.available for st in stages.values()):
        return None
    fetch = min(len(codes), FAST_SCAN_OVERFETCH * FAST_SCAN_FIRST_FETCH * candidates)  # the stage's first scan
    ms: dict[str, list[float]] = {name: [] for name in stages}
    same = 0
    sample = _spread(list(queries), STAGE_AB_QUERIES)
    for q in sample:
        scores = {}
        for name, stage in stages.items():
            t0 = time.perf_counter()
            scores[name] = stage.search(q, fetch)[0]
            ms[name].append((time.perf_counter() - t0) * 1e3)
        same += int(np.array_equal(scores["one_shard"], scores["shards"]))
    p50 = {name: round(float(percentile(v, 50)), 3) for name, v in ms.items()}
    return {"queries": len(sample), "codes": len(codes), "k": fetch, "shards": threads, "p50_ms": p50,
            "speedup": round(p50["one_shard"] / p50["shards"], 2) if p50["shards"] else None,
            "same_scores": round(same / len(sample), 4)}


def _heatmap_ab(index: RegionIndex, queries: np.ndarray, candidates: int) -> dict | None:
    """The candidates' cell scores computed as before ADR 16 and as now, alternating per question on
    the same pages: float16 widened by numpy vs in cached blocks by torch; binary unpacked to signs vs
    per-byte tables; pq_residual's centroid scores decoded vs from the integer codes."""
    from components.index.float16_scores import float16_scores
    from components.index.region_index import binary_scores

    mode = index.params.storage
    if mode == "float16":
        arms = {"before": lambda rows, q: index.cells[rows].astype(np.float32) @ q,
                "after": lambda rows, q: float16_scores(index.cells[rows], q)}
    elif mode == "binary":
        arms = {"before": lambda rows, q: (np.unpackbits(index.cells[rows], axis=-1, count=index.dim)
                                           .astype(np.float32) * 2.0 - 1.0) @ q / np.sqrt(index.dim),
                "after": lambda rows, q: binary_scores(index.cells[rows], q)}
    elif mode == "pq_residual":
        arms = {"before": lambda rows, q: index.residual._decode_coarse(index.coarse[rows]) @ q,
                "after": lambda rows, q: index.residual.coarse_scores(index.coarse[rows], q)}
    else:
        return None
    ms: dict[str, list[float]] = {"before": [], "after": []}
    diff = 0.0
    sample = _spread(list(queries), STAGE_AB_QUERIES)
    for q in sample:
        rows = index.candidate_pages(q, candidates)
        out = {}
        for name, arm in arms.items():
            t0 = time.perf_counter()
            out[name] = arm(rows, q)
            ms[name].append((time.perf_counter() - t0) * 1e3)
        diff = max(diff, float(np.abs(out["before"] - out["after"]).max()))
    p50 = {name: round(float(percentile(v, 50)), 3) for name, v in ms.items()}
    return {"queries": len(sample), "part": "centroid scores" if mode == "pq_residual" else "cell scores",
            "p50_ms": p50, "speedup": round(p50["before"] / p50["after"], 2) if p50["after"] else None,
            "max_abs_diff": diff}


def _answer_questions(index: RegionIndex, questions: list, queries: np.ndarray,
                      params: Params) -> tuple[list[float], list[bool], list[bool]]:
    """Each question through search and region extraction: (milliseconds, page R@1 hit, region hit@1), per question."""
    search_ms, r1, hit1 = [], [], []  # r1 / hit1: per question, paired with the exact reference
    for q, vec in zip(questions, queries):
        t0 = time.perf_counter()
        hits = index.search(vec, 1)
        regions = (extract_regions(hits[0].heatmap, params.regions, hits[0].page_id,
                                   blocks=index.meta(hits[0].page_id).blocks) if hits else [])
        search_ms.append((time.perf_counter() - t0) * 1e3)
        top = hits[0].page_id if hits else None
        r1.append(top == q.page_id)
        hit1.append(bool(top == q.page_id and regions and iou(regions[0].box, q.box) >= params.evaluate.iou_hit))
    return search_ms, r1, hit1


def _reconstruction_error(index: RegionIndex, cells: np.ndarray) -> float:
    """Mean ‖decoded cell − cell‖ over the first CODING_AB_ERROR_PAGES pages."""
    rows = list(range(min(len(cells), CODING_AB_ERROR_PAGES)))
    return round(float(np.linalg.norm(index.decoded_cells(rows) - cells[rows], axis=-1).mean()), 5)


def _rebuilt_with(index: RegionIndex, metas: list, cells: np.ndarray, params: Params, questions: list,
                  queries: np.ndarray, update: dict) -> tuple:
    """A second index of the same pages with ``update`` applied to its params, answering the same
    questions: (index, per-question R@1 hits, hit@1 hits, build seconds)."""
    t0 = time.perf_counter()
    second = RegionIndex.build(metas, cells, index.params.model_copy(update=update), index.fingerprint,
                               index.grid, seed=params.seed)
    build_s = time.perf_counter() - t0
    _, r1, hit1 = _answer_questions(second, questions, queries, params)
    return second, r1, hit1, build_s


def _coding_figures(index: RegionIndex, r1: list, hit1: list, exact_hits: tuple, cells: np.ndarray,
                    build_s: float, seed: int) -> dict:
    """One coding's R@1 and hit@1 ratios to exact (R@1 with its paired interval), error and build time."""
    exact_r1, exact_hit1 = (np.asarray(h, dtype=bool) for h in exact_hits)
    return {
        "r1_ratio": float(np.mean(r1) / exact_r1.mean()) if exact_r1.any() else None,
        "hit1_ratio": float(np.mean(hit1) / exact_hit1.mean()) if exact_hit1.any() else None,
        "r1_paired": paired_ratio(r1, exact_r1, seed=seed),
        "reconstruction_error": _reconstruction_error(index, cells),
        "build_s": round(build_s, 2),
    }


def _only_right(a: list, b: list) -> tuple[int, int]:
    """Questions only ``a`` gets right (page R@1), and only ``b``."""
    a_, b_ = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    return int(np.sum(a_ & ~b_)), int(np.sum(b_ & ~a_))


def _centroid_choice_ab(index: RegionIndex, metas: list, cells: np.ndarray, params: Params, questions: list,
                        queries: np.ndarray, hits: tuple, exact_hits: tuple, build_s: float) -> dict:
    """pq_residual's cells coded against their nearest centroid against the best of their nearest
    CHOICE_AB_ALTERNATIVE (ADR 18): the configured index and a second one built with the other
    ``residual_centroid_choices`` on the same pages, answering the same questions. R@1 and hit@1
    ratios to exact with paired intervals, reconstruction error and build seconds of each."""
    configured = index.params.residual_centroid_choices
    other = 1 if configured > 1 else CHOICE_AB_ALTERNATIVE
    second, r1, hit1, second_build_s = _rebuilt_with(index, metas, cells, params, questions, queries,
                                                     {"residual_centroid_choices": other})
    runs = {configured: (index, *hits, build_s), other: (second, r1, hit1, second_build_s)}
    out = {"configured": configured, "choices": max(runs),
           "error_pages": min(len(cells), CODING_AB_ERROR_PAGES)}
    for name, choices in (("nearest", 1), ("best_of", max(runs))):
        out[name] = _coding_figures(*runs[choices][:3], exact_hits, cells, runs[choices][3], params.seed)
    best_only, nearest_only = _only_right(runs[max(runs)][1], runs[1][1])
    out["r1_only"] = {"best_of": best_only, "nearest": nearest_only}
    del second
    return out


def _coarse_range_ab(index: RegionIndex, metas: list, cells: np.ndarray, params: Params, questions: list,
                     queries: np.ndarray, hits: tuple, exact_hits: tuple, build_s: float) -> dict:
    """pq_residual's 4-bit page centroids over the configured clipped range against the full min-max
    range (ADR 20; or, when min-max is configured, against the default clipped range): a second index
    of the same pages answering the same questions. Ratios, reconstruction error and build time of each."""
    p = index.params
    configured = {"range": p.residual_coarse_range, "arg": p.residual_coarse_range_arg}
    if p.residual_coarse_range == "minmax":
        defaults = type(p)()
        other = {"range": defaults.residual_coarse_range, "arg": defaults.residual_coarse_range_arg}
    else:
        other = {"range": "minmax", "arg": 0.0}  # min-max takes no arg (ADR 20)
    second, r1, hit1, second_build_s = _rebuilt_with(
        index, metas, cells, params, questions, queries,
        {"residual_coarse_range": other["range"], "residual_coarse_range_arg": other["arg"]})
    configured_only, other_only = _only_right(hits[0], r1)
    out = {
        "configured": {**configured, **_coding_figures(index, *hits, exact_hits, cells, build_s, params.seed)},
        "other": {**other, **_coding_figures(second, r1, hit1, exact_hits, cells, second_build_s, params.seed)},
        "r1_only": {"configured": configured_only, "other": other_only},
        "error_pages": min(len(cells), CODING_AB_ERROR_PAGES),
    }
    del second
    return out


def _query_encode_ab(model, texts: list[str]) -> dict:
    """Encoding one question with MiniLM's eager forward vs its TorchScript-frozen graph (ADR 15),
    alternating per question, and the largest difference between the two query vectors."""
    from components.model.encode import encode_queries
    from components.model.frozen_text import eager_only

    sample = _spread(texts, QUERY_AB_QUESTIONS)
    ms: dict[str, list[float]] = {"eager": [], "traced": []}
    diff = 0.0
    for text in sample:
        out = {}
        for name in ("eager", "traced"):
            t0 = time.perf_counter()
            if name == "eager":
                with eager_only():
                    out[name] = encode_queries(model, [text])
            else:
                out[name] = encode_queries(model, [text])
            ms[name].append((time.perf_counter() - t0) * 1e3)
        diff = max(diff, float(np.abs(out["eager"] - out["traced"]).max()))
    p50 = {name: round(float(percentile(v, 50)), 3) for name, v in ms.items()}
    return {"questions": len(sample), "p50_ms": p50, "speedup": round(p50["eager"] / p50["traced"], 2),
            "max_abs_vector_diff": diff}


def _query_encode_ms(model, texts: list[str]) -> np.ndarray:
    """Milliseconds to encode each question on its own, as a served query is (added to its search time)."""
    from components.model.encode import encode_queries

    encode_queries(model, texts[:1])  # warm-up: the first call builds lazy state
    out = np.zeros(len(texts))
    for i, text in enumerate(texts):
        t0 = time.perf_counter()
        encode_queries(model, [text])
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def _bench_size(params: Params, model, corpus, cells: np.ndarray, n_pages: int, max_queries: int) -> dict:
    from components.model.encode import encode_queries

    pages = corpus.pages[:n_pages]
    cells = cells[:n_pages]
    ids = [p.id for p in pages]
    in_subset = set(ids)
    available = [q for q in corpus.questions if q.page_id in in_subset and q.box and not q.query_image]
    n_available = len(available)
    questions = _spread(available, max_queries)
    queries = encode_queries(model, [q.question for q in questions])
    encode_ms = _query_encode_ms(model, [q.question for q in questions])
    query_ab = _query_encode_ab(model, [q.question for q in questions]) if questions else None
    metas = [PageMeta.from_page(p) for p in pages]
    exact_best, exact_heat = _exact(cells, queries)
    exact_r1_hits = np.array([ids[b] == q.page_id for b, q in zip(exact_best, questions)], dtype=bool)
    exact_hit1_hits = np.array([
        ids[b] == q.page_id
        and _top_region_iou(h, params, q.box, metas[b].blocks) >= params.evaluate.iou_hit
        for b, h, q in zip(exact_best, exact_heat, questions)
    ], dtype=bool)
    exact_r1 = float(exact_r1_hits.mean()) if questions else 0.0
    exact_hit1 = float(exact_hit1_hits.mean()) if questions else 0.0

    modes: dict[str, dict] = {}
    candidate_recall, sweep = None, {}
    for mode in STORAGE_MODES:
        update = {"storage": mode}
        if params.index.faiss != "flat":  # the stored-centroid stage is a flat scan (ADR 12)
            update["residual_candidates"] = "separate"
        index_params = params.index.model_copy(update=update)
        t0 = time.perf_counter()
        index = RegionIndex.build(metas, cells, index_params, model.fingerprint, model.grid, seed=params.seed)
        build_s = time.perf_counter() - t0
        search_ms, r1, hit1 = _answer_questions(index, questions, queries, params)
        # Candidate recall: is the exhaustive float32 best page among the faiss stage's C pages?
        # The C sweep only once (float16), the configured C for every mode (its stage may differ).
        sweep_cs = {*CANDIDATE_SWEEP, params.index.candidates} if mode == "float16" else {params.index.candidates}
        recalls = {
            c: float(np.mean([int(b) in set(index.candidate_pages(v, c).tolist()) for b, v in zip(exact_best, queries)]))
            for c in sorted(sweep_cs)
        } if questions else {}
        if mode == "float16":
            candidate_recall = recalls.get(params.index.candidates)
            sweep = {str(c): r for c, r in recalls.items()}
        total_ms = list(encode_ms + np.asarray(search_ms))  # question -> ranked regions, per question
        stats = index.stats()
        scan_ab = _stage_scan_ab(index, queries, params.index.candidates) if mode == "pq_residual" else None
        shards_ab = _shards_ab(index, queries, params.index.candidates) if mode == "pq_residual" else None
        lists_ab = (_lists_ab(index, queries, exact_best, params.index.candidates)
                    if mode == "pq_residual" else None)
        heatmap_ab = _heatmap_ab(index, queries, params.index.candidates)
        choice_ab = (_centroid_choice_ab(index, metas, cells, params, questions, queries, (r1, hit1),
                                         (exact_r1_hits, exact_hit1_hits), build_s)
                     if mode == "pq_residual" else None)
        range_ab = (_coarse_range_ab(index, metas, cells, params, questions, queries, (r1, hit1),
                                     (exact_r1_hits, exact_hit1_hits), build_s)
                    if mode == "pq_residual" else None)
        modes[mode] = {
            "bytes_per_page": stats["bytes_per_page"]["vectors_total"],
            "cells_bytes_per_page": stats["bytes_per_page"]["cells"],
            "bytes_breakdown": stats["bytes_per_page"],
            "build_s": round(build_s, 2),
            # question -> ranked regions: the question's own encoding plus its search and extraction
            "p50_ms": round(float(percentile(total_ms, 50) or 0.0), 3),
            "p95_ms": round(float(percentile(total_ms, 95) or 0.0), 3),
            "search_p50_ms": round(percentile(search_ms, 50) or 0.0, 3),
            "search_p95_ms": round(percentile(search_ms, 95) or 0.0, 3),
            "r1": float(np.mean(r1)) if r1 else None,
            "hit1": float(np.mean(hit1)) if hit1 else None,
            "r1_ratio": float(np.mean(r1) / exact_r1) if exact_r1 else None,
            "hit1_ratio": float(np.mean(hit1) / exact_hit1) if exact_hit1 else None,
            "candidate_recall": recalls.get(params.index.candidates),
            "candidate_stage": stats["candidate_vectors"],  # "stored": pq_residual's own centroids (ADR 12)
            **({"stage_scan_ab": scan_ab} if scan_ab else {}),
            **({"shards_ab": shards_ab} if shards_ab else {}),
            **({"lists_ab": lists_ab} if lists_ab else {}),
            **({"heatmap_ab": heatmap_ab} if heatmap_ab else {}),
            **({"centroid_choice_ab": choice_ab} if choice_ab else {}),  # ADR 18
            **({"coarse_range_ab": range_ab} if range_ab else {}),  # ADR 20
            # Paired bootstrap interval of each ratio and the questions where mode and exact disagree.
            "r1_paired": paired_ratio(r1, exact_r1_hits, seed=params.seed),
            "hit1_paired": paired_ratio(hit1, exact_hit1_hits, seed=params.seed),
        }
        del index
    return {
        "pages": len(ids), "queries": len(questions), "questions_available": n_available,
        "query_encode_p50_ms": round(float(percentile(list(encode_ms), 50) or 0.0), 3),
        "query_encode_ab": query_ab,
        "faiss": params.index.faiss,
        "candidate_vectors": params.index.candidate_vectors, "candidates": params.index.candidates,
        "candidate_recall": candidate_recall, "candidate_recall_by_c": sweep,
        "exact_float32": {"r1": exact_r1, "hit1": exact_hit1}, "modes": modes,
    }


def _targets(index: dict, encode: dict) -> dict:
    """The issue's bars against the largest size's figures; ``met`` is computed, never asserted."""
    modes = index["modes"]
    compressed = {
        m: modes[m] for m in COMPRESSED_MODES
        if m in modes and modes[m]["bytes_per_page"] <= TARGET_BYTES_PER_PAGE
    }
    best = max(compressed, key=lambda m: compressed[m]["r1_ratio"] or 0.0) if compressed else None
    p50 = max(m["p50_ms"] for m in modes.values()) if modes else None
    return {
        "pages": index["pages"],
        "p50_ms": {"bar": TARGET_P50_MS, "worst_mode_value": p50,
                   "met": p50 is not None and p50 <= TARGET_P50_MS},
        "compressed": {"bar_bytes_per_page": TARGET_BYTES_PER_PAGE, "bar_r1_ratio": TARGET_R1_RATIO,
                       "best_mode": best,
                       "bytes_per_page": modes[best]["bytes_per_page"] if best else None,
                       "r1_ratio": modes[best]["r1_ratio"] if best else None,
                       "r1_ratio_ci": ([modes[best]["r1_paired"]["ci_low"], modes[best]["r1_paired"]["ci_high"]]
                                       if best and "r1_paired" in modes[best] else None),
                       "queries": index["queries"],
                       "met": bool(best and (modes[best]["r1_ratio"] or 0.0) >= TARGET_R1_RATIO)},
        "encode": {"bar_pages_per_s": TARGET_ENCODE_PAGES_PER_S, "value": encode["pages_per_s"],
                   "met": encode["pages_per_s"] >= TARGET_ENCODE_PAGES_PER_S},
    }


def run_benchmark(params: Params, pages: int | Sequence[int], out_dir: Path, model_dir: Path | None = None,
                  max_queries: int = DEFAULT_MAX_QUERIES) -> dict:
    """Measure every size in ``pages`` from one generated, encoded corpus; write bench.json and bench.md."""
    from components.data.synthetic import generate_corpus

    sizes = sorted({int(n) for n in ([pages] if isinstance(pages, int) else pages)})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"bench page counts must be positive, got {list(sizes)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_doc = (1 + params.data.max_pages_per_doc) / 2
    bench_params = params.model_copy(deep=True)
    bench_params.data.n_docs = max(1, round(sizes[-1] / per_doc))
    load_before = os.getloadavg()
    with (tempfile.TemporaryDirectory(prefix="regionops-bench-") as tmp,
          tempfile.TemporaryDirectory(prefix="regionops-bench-model-") as model_tmp):
        gen = generate_corpus(bench_params, Path(tmp))
        corpus = load_corpus(Path(tmp))
        model, trained = _retriever(params, model_dir)
        export = _export_dir(model, model_dir if trained else None, Path(model_tmp))

        threads = params.index.encode_threads
        threads_ab = _encode_threads_ab(model, corpus, corpus.pages[:THREADS_AB_PAGES], threads)
        workers_ab = _encode_workers_ab(model, corpus, corpus.pages[:WORKERS_AB_PAGES], export,
                                        params.index.encode_workers, threads)
        workers = effective_workers(len(corpus.pages), params.index.encode_workers)
        start = time.perf_counter()
        cells = _encode_all(model, corpus, corpus.pages, export, workers, threads)
        encode_s = time.perf_counter() - start
        encode = {"pages_per_s": round(len(corpus.pages) / encode_s, 2), "pages": len(corpus.pages),
                  "trained_model": trained, "threads": threads, "workers": workers,
                  "threads_ab": threads_ab, "workers_ab": workers_ab}
        by_size = {str(min(n, len(corpus.pages))): _bench_size(params, model, corpus, cells, n, max_queries)
                   for n in sizes}

    index = by_size[max(by_size, key=int)]
    report = {
        "index": index,
        "sizes": by_size,
        "encode": encode,
        "generate": {"pages_per_s": gen.get("pages_per_s"), "pages": gen.get("pages")},
        "targets": _targets(index, encode),
        # 1/5/15-minute load averages: other work on the machine slows every figure alike.
        "machine": {"cpus": os.cpu_count(), "loadavg_start": [round(v, 2) for v in load_before],
                    "loadavg_end": [round(v, 2) for v in os.getloadavg()]},
    }
    tmp_json = out_dir / ".bench.json.tmp"
    tmp_json.write_text(json.dumps(report, indent=2))
    os.replace(tmp_json, out_dir / "bench.json")
    tmp_md = out_dir / ".bench.md.tmp"
    tmp_md.write_text(render_markdown(report))
    os.replace(tmp_md, out_dir / "bench.md")
    return report


def _export_dir(model, model_dir: Path | None, scratch: Path) -> Path:
    """An exported retriever folder worker processes can load: the trained one, or ``model`` saved to ``scratch``."""
    from components.index.build import retriever_dir
    from components.model.io import save_retriever

    if model_dir is not None:
        return retriever_dir(model_dir)
    save_retriever(model, scratch)
    return scratch


def _encode_all(model, corpus, pages: list, export: Path, workers: int, threads: int,
                progress: bool = True) -> np.ndarray:
    """The index build's encoding path (components/index/build.py): ``workers`` processes, or this one."""
    from components.index.parallel_encode import encode_pages_in_processes
    from components.model.encode import encode_pages

    if workers > 1:
        return encode_pages_in_processes(corpus, pages, export, workers, threads, progress=progress)
    return encode_pages(model, corpus, pages, progress=progress, threads=threads)


def _encode_workers_ab(model, corpus, pages: list, export: Path, workers: int, threads: int) -> dict | None:
    """Pages/s of one process against ``workers`` processes (each on ``threads`` threads) on the same
    pages, in ABBA order so that a load change on the shared machine hits both alike. Worker start-up
    (process spawn, model load) is inside the parallel figure, as it is in an index build."""
    n = effective_workers(len(pages), workers)
    if n < 2:
        return None
    seconds = {"serial": 0.0, "parallel": 0.0}
    outputs = {}
    for name in ("serial", "parallel", "parallel", "serial"):
        start = time.perf_counter()
        outputs[name] = _encode_all(model, corpus, pages, export, 1 if name == "serial" else n, threads, progress=False)
        seconds[name] += time.perf_counter() - start
    rate = {name: round(2 * len(pages) / s, 2) for name, s in seconds.items()}
    return {"pages": len(pages), "rounds": 2, "workers": n, "threads": threads, "pages_per_s": rate,
            "speedup": round(rate["parallel"] / rate["serial"], 2),
            "max_abs_feature_diff": float(np.abs(outputs["serial"] - outputs["parallel"]).max())}


def _encode_threads_ab(model, corpus, pages: list, threads: int) -> dict:
    """Encoder pages/s with torch's default thread count ("before") and ``threads`` ("after") on the
    same pages, in alternating rounds so that load changes on the shared machine hit both alike."""
    import torch

    from components.model.encode import encode_pages

    # "default": the process's intra-op thread count, which torch sets to one per core.
    settings = {"default": torch.get_num_threads(), "configured": threads}
    seconds = {name: 0.0 for name in settings}
    outputs = {}
    for _ in range(THREADS_AB_ROUNDS):
        for name, n in settings.items():
            start = time.perf_counter()
            outputs[name] = encode_pages(model, corpus, pages, progress=False, threads=n)
            seconds[name] += time.perf_counter() - start
    rate = {name: round(len(pages) * THREADS_AB_ROUNDS / s, 2) for name, s in seconds.items()}
    return {
        "pages": len(pages), "rounds": THREADS_AB_ROUNDS,
        "threads": settings, "pages_per_s": rate,
        "speedup": round(rate["configured"] / rate["default"], 2),
        # Threads must not change the features (the index fingerprint covers the weights only).
        "max_abs_feature_diff": float(np.abs(outputs["default"] - outputs["configured"]).max()),
    }


def _top_region_iou(heatmap_flat: np.ndarray, params: Params, box, blocks) -> float:
    grid = int(round(len(heatmap_flat) ** 0.5))
    regions = extract_regions(heatmap_flat.reshape(grid, grid), params.regions, blocks=blocks)
    return iou(regions[0].box, box) if regions else 0.0


def _with_ci(ratio: float | None, paired: dict | None) -> str:
    if ratio is None:
        return "n/a"
    if not paired or paired.get("ci_low") is None:
        return f"{ratio:.3f}"
    return f"{ratio:.3f} [{paired['ci_low']:.3f}, {paired['ci_high']:.3f}]"


def _disagree(paired: dict | None) -> str:
    return f"+{paired['variant_only']}/−{paired['reference_only']}" if paired else "n/a"


def render_markdown(report: dict) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    sizes = report.get("sizes") or {str(report["index"]["pages"]): report["index"]}
    lines = [
        "# regionops benchmark", "",
        f"- generator: {report['generate']['pages_per_s']} pages/s; encoder: {report['encode']['pages_per_s']} "
        f"pages/s over {report['encode'].get('pages')} pages (trained model: {report['encode']['trained_model']})",
    ]
    ab = report["encode"].get("threads_ab")
    if ab:
        lines.append(f"- encoder threads side by side ({ab['pages']} pages × {ab['rounds']} alternating rounds): "
                     f"{ab['threads']['default']} threads {ab['pages_per_s']['default']} pages/s, "
                     f"{ab['threads']['configured']} thread(s) {ab['pages_per_s']['configured']} pages/s "
                     f"(×{ab['speedup']}; max feature difference {ab['max_abs_feature_diff']:.1e})")
    wab = report["encode"].get("workers_ab")
    if wab:
        lines.append(f"- encoder processes side by side ({wab['pages']} pages, ABBA): 1 process "
                     f"{wab['pages_per_s']['serial']} pages/s, {wab['workers']} processes "
                     f"{wab['pages_per_s']['parallel']} pages/s (×{wab['speedup']}; max feature difference "
                     f"{wab['max_abs_feature_diff']:.1e}); the full encode used {report['encode'].get('workers', 1)}")
    if "machine" in report:
        m = report["machine"]
        lines.append(f"- machine: {m['cpus']} CPUs, load average at start {m['loadavg_start']}, at end {m['loadavg_end']}")
    for size, idx in sizes.items():
        lines += [
            "", f"## {size} pages", "",
            f"- queries: {idx['queries']} (of {idx.get('questions_available', idx['queries'])} with a gold box); candidate stage: {idx['faiss']} over {idx['candidate_vectors']} "
            f"(C={idx['candidates']}); candidate recall vs exhaustive: {fmt(idx['candidate_recall'])} "
            f"(by C: {', '.join(f'{c}: {fmt(r)}' for c, r in idx['candidate_recall_by_c'].items())})",
            f"- exact float32 exhaustive: R@1 {idx['exact_float32']['r1']:.3f}, region hit@1 {idx['exact_float32']['hit1']:.3f}",
            (f"- latency = the question's own encoding (p50 {idx.get('query_encode_p50_ms', 'n/a')} ms) + search + "
             "region extraction; the search columns leave the encoding out"),
            *([f"- query encoding side by side ({qa['questions']} questions alternating): eager MiniLM p50 "
               f"{qa['p50_ms']['eager']} ms, frozen graph {qa['p50_ms']['traced']} ms (×{qa['speedup']}; max vector "
               f"difference {qa['max_abs_vector_diff']:.1e})"] if (qa := idx.get("query_encode_ab")) else []),
            "- ratio intervals: paired bootstrap over questions (95 %); +/− = questions only the mode / only exact gets right",
            "", ("| storage | vector bytes/page | p50 ms | p95 ms | search p50 ms | search p95 ms | R@1 ratio [95 % CI] "
                 "| R@1 +/− | hit@1 ratio [95 % CI] | hit@1 +/− | candidate recall |"),
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for mode, m in idx["modes"].items():
            lines.append(f"| {mode} | {m['bytes_per_page']} | {m['p50_ms']} | {m['p95_ms']} | "
                         f"{m.get('search_p50_ms', 'n/a')} | {m.get('search_p95_ms', 'n/a')} | "
                         f"{_with_ci(m['r1_ratio'], m.get('r1_paired'))} | {_disagree(m.get('r1_paired'))} | "
                         f"{_with_ci(m['hit1_ratio'], m.get('hit1_paired'))} | {_disagree(m.get('hit1_paired'))} | "
                         f"{fmt(m.get('candidate_recall'))} ({m.get('candidate_stage', idx['candidate_vectors'])}) |")
        residual = idx["modes"].get("pq_residual", {})
        ab = residual.get("stage_scan_ab")
        if ab:
            lines += ["", (f"pq_residual stage over {ab['codes']} stored centroid codes, C = {idx['candidates']}, "
                           f"{ab['queries']} questions alternating: exact SQ4 scan p50 {ab['p50_ms']['exact']} ms, "
                           f"fast scan + exact re-rank p50 {ab['p50_ms']['fast']} ms (×{ab['speedup']}); "
                           f"same candidate pages on {ab['same_candidates']:.1%} of questions")]
        sh = residual.get("shards_ab")
        if sh:
            lines += ["", (f"pq_residual fast scan, k = {sh['k']}, {sh['queries']} questions alternating: one shard "
                           f"p50 {sh['p50_ms']['one_shard']} ms, {sh['shards']} shards on parallel threads "
                           f"{sh['p50_ms']['shards']} ms (×{sh['speedup']}); same scores on {sh['same_scores']:.1%}")]
        la = residual.get("lists_ab")
        if la:
            rec = la["candidate_recall"]
            lines += ["", (f"pq_residual stage, {la['queries']} questions alternating: every code p50 "
                           f"{la['p50_ms']['all_codes']} ms (candidate recall {rec['all_codes']}), {la['lists']} "
                           f"inverted lists probing {la['nprobe']} p50 {la['p50_ms']['lists']} ms (×{la['speedup']}, "
                           f"candidate recall {rec['lists']}); same candidate pages on {la['same_candidates']:.1%}")]
        ca = residual.get("centroid_choice_ab")
        if ca:
            near, best = ca["nearest"], ca["best_of"]
            lines += ["", (f"pq_residual cells coded against the nearest centroid vs the best of the "
                           f"{ca['choices']} nearest, same pages and questions: R@1 ratio "
                           f"{_with_ci(near['r1_ratio'], near['r1_paired'])} vs "
                           f"{_with_ci(best['r1_ratio'], best['r1_paired'])} (questions only one gets right: "
                           f"nearest {ca['r1_only']['nearest']}, best of {ca['choices']} {ca['r1_only']['best_of']}); "
                           f"hit@1 ratio {fmt(near['hit1_ratio'])} vs {fmt(best['hit1_ratio'])}; reconstruction "
                           f"error ({ca['error_pages']} pages) {near['reconstruction_error']} vs "
                           f"{best['reconstruction_error']}; build {near['build_s']} s vs {best['build_s']} s")]
        ra = residual.get("coarse_range_ab")
        if ra:
            mine, other = ra["configured"], ra["other"]

            def named(side: dict) -> str:
                return side["range"] + (f" {side['arg']}" if side["range"] != "minmax" else "")

            lines += ["", (f"pq_residual page centroids, level range {named(mine)} (configured) vs {named(other)}, "
                           f"same pages and questions: R@1 ratio {_with_ci(mine['r1_ratio'], mine['r1_paired'])} vs "
                           f"{_with_ci(other['r1_ratio'], other['r1_paired'])} (questions only one gets right: "
                           f"{ra['r1_only']['configured']} vs {ra['r1_only']['other']}); hit@1 ratio "
                           f"{fmt(mine['hit1_ratio'])} vs {fmt(other['hit1_ratio'])}; reconstruction error "
                           f"({ra['error_pages']} pages) {mine['reconstruction_error']} vs "
                           f"{other['reconstruction_error']}")]
        heat = {mode: m["heatmap_ab"] for mode, m in idx["modes"].items() if m.get("heatmap_ab")}
        if heat:
            lines += ["", "Candidate scores before and after ADR 16, same pages, alternating per question:", "",
                      "| storage | part | before p50 ms | after p50 ms | speedup | max difference |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {mode} | {h['part']} | {h['p50_ms']['before']} | {h['p50_ms']['after']} | ×{h['speedup']} "
                      f"| {h['max_abs_diff']:.1e} |" for mode, h in heat.items()]
    if "targets" in report:
        t = report["targets"]
        c = t["compressed"]
        lines += [
            "", f"## Targets at {t['pages']} pages", "",
            "| target | bar | measured | met |", "|---|---|---|---|",
            f"| p50 query latency, question → regions (worst mode) | ≤ {t['p50_ms']['bar']} ms | {t['p50_ms']['worst_mode_value']} ms | {t['p50_ms']['met']} |",
            f"| compressed index ({c['best_mode']}) | ≤ {c['bar_bytes_per_page']} B/page at R@1 ratio ≥ {c['bar_r1_ratio']} "
            f"| {c['bytes_per_page']} B/page, R@1 ratio {fmt(c['r1_ratio'])}"
            f"{' [' + fmt(c['r1_ratio_ci'][0]) + ', ' + fmt(c['r1_ratio_ci'][1]) + ']' if c.get('r1_ratio_ci') else ''}"
            f" on {c.get('queries', 'n/a')} questions | {c['met']} |",
            f"| encoding | ≥ {t['encode']['bar_pages_per_s']} pages/s | {t['encode']['value']} pages/s | {t['encode']['met']} |",
        ]
    return "\n".join(lines) + "\n"
