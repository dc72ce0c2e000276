"""The candidate stage measured against exhaustive search, and pq_residual's stage scans side by side.

- candidate recall (ADR 7, ADR 12): how often the exhaustive float32 best page is among the C pages
  of each storage mode's stage (C = 16...128 for float16's; the configured C for every mode);
- stage_scan_ab (ADR 15): pq_residual's stored-centroid stage scanned exactly vs by fast scan;
- shards_ab (ADR 16): that fast scan on one shard vs ``pq_residual.fast_scan_threads`` shards;
- lists_ab (ADR 17): every stored code vs the inverted lists.
Scans alternate question by question on the same index, so load changes hit both alike.

    python -m scripts.experiments.candidate_stage_ab --pages 10000 --model data/model
"""

from __future__ import annotations

import time

import numpy as np

from components.bench import STORAGE_MODES
from components.index.region_index import FAST_SCAN_FIRST_FETCH, FAST_SCAN_OVERFETCH, RegionIndex
from components.index.storage_modes import PqResidualStorage
from scripts.experiments.common import ab_sample, bench, build, emit, p50, parser

CANDIDATE_SWEEP = (16, 32, 64, 128)


def candidate_recall(
    index: RegionIndex, queries: np.ndarray, exact_best: np.ndarray, cs
) -> dict[str, float]:
    return {
        str(c): float(
            np.mean(
                [
                    int(b) in set(index.candidate_pages(v, c).tolist())
                    for b, v in zip(exact_best, queries)
                ]
            )
        )
        for c in sorted(cs)
    }


def stage_scan_ab(index: RegionIndex, queries: np.ndarray, candidates: int) -> dict | None:
    configured = index.params.pq_residual.fast_scan
    if not index.set_fast_scan(True):
        index.set_fast_scan(configured)
        return None
    lists_on = index.set_stage_lists(False)  # ADR 15's A/B: every code, exactly vs by fast scan
    sample = ab_sample(queries)
    ms: dict[str, list[float]] = {"exact": [], "fast": []}
    same = 0
    for q in sample:
        got = {}
        for name, times in ms.items():
            index.set_fast_scan(name == "fast")
            t0 = time.perf_counter()
            got[name] = index.candidate_pages(q, candidates)
            times.append((time.perf_counter() - t0) * 1e3)
        same += int(np.array_equal(np.sort(got["exact"]), np.sort(got["fast"])))
    index.set_fast_scan(configured)
    index.set_stage_lists(lists_on)
    medians = {name: p50(v) for name, v in ms.items()}
    return {
        "queries": len(sample),
        "codes": int(index.stage.faiss_index.ntotal),
        "p50_ms": medians,
        "speedup": round(medians["exact"] / medians["fast"], 2) if medians["fast"] else None,
        "same_candidates": round(same / len(sample), 4),
    }


def shards_ab(index: RegionIndex, queries: np.ndarray, candidates: int) -> dict | None:
    from components.index.fast_scan_shards import FastScanShards

    threads = index.params.pq_residual.fast_scan_threads
    if not isinstance(index.storage_mode, PqResidualStorage) or threads < 2:
        return None
    codes = index.storage_mode.flat_coarse()
    codec = index.storage_mode.codec
    stages = {
        "one_shard": FastScanShards(codes, codec.fast_scan_stage, 1),
        "shards": FastScanShards(codes, codec.fast_scan_stage, threads),
    }
    if not all(st.available for st in stages.values()):
        return None
    fetch = min(
        len(codes), FAST_SCAN_OVERFETCH * FAST_SCAN_FIRST_FETCH * candidates
    )  # the stage's first scan
    ms: dict[str, list[float]] = {name: [] for name in stages}
    same = 0
    sample = ab_sample(queries)
    for q in sample:
        scores = {}
        for name, stage in stages.items():
            t0 = time.perf_counter()
            scores[name] = stage.search(q, fetch)[0]
            ms[name].append((time.perf_counter() - t0) * 1e3)
        same += int(np.array_equal(scores["one_shard"], scores["shards"]))
    medians = {name: p50(v) for name, v in ms.items()}
    return {
        "queries": len(sample),
        "codes": len(codes),
        "k": fetch,
        "shards": threads,
        "p50_ms": medians,
        "speedup": round(medians["one_shard"] / medians["shards"], 2)
        if medians["shards"]
        else None,
        "same_scores": round(same / len(sample), 4),
    }


def lists_ab(
    index: RegionIndex, queries: np.ndarray, exact_best: np.ndarray, candidates: int
) -> dict | None:
    if not index.set_stage_lists(True):
        return None
    picks = (
        np.linspace(0, len(queries) - 1, min(len(queries), len(ab_sample(queries))))
        .round()
        .astype(int)
    )
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
    medians = {name: p50(v) for name, v in ms.items()}
    stage = index.stats()["stage_lists"]
    return {
        "queries": len(picks),
        "lists": stage["lists"],
        "nprobe": stage["nprobe"],
        "p50_ms": medians,
        "speedup": round(medians["all_codes"] / medians["lists"], 2) if medians["lists"] else None,
        "candidate_recall": {name: round(n / len(picks), 4) for name, n in found.items()},
        "same_candidates": round(same / len(picks), 4),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    with bench(args) as b:
        c = b.params.index.candidates
        out: dict = {
            "pages": len(b.metas),
            "queries": len(b.questions),
            "candidates": c,
            "trained_model": b.trained,
            "exact_float32_r1": float(b.exact_r1.mean()) if len(b.exact_r1) else None,
            "modes": {},
        }
        for mode in STORAGE_MODES:
            index, _ = build(b, mode)
            sweep = {*CANDIDATE_SWEEP, c} if mode == "float16" else {c}
            out["modes"][mode] = {
                "candidate_stage": index.stats()["candidate_vectors"],
                "candidate_recall_by_c": candidate_recall(index, b.queries, b.exact_best, sweep),
            }
            if mode == "pq_residual":
                out["modes"][mode].update(
                    stage_scan_ab=stage_scan_ab(index, b.queries, c),
                    shards_ab=shards_ab(index, b.queries, c),
                    lists_ab=lists_ab(index, b.queries, b.exact_best, c),
                )
            del index
        emit(args, out)


if __name__ == "__main__":
    main()
