"""``make bench``: generator, encoder and index figures measured side by side in one run.

Every figure is measured here, on this run's corpus; ratios compare storage modes against
exact float32 exhaustive search on the same queries, so machine noise cancels out. The
index is measured on the dense channel alone (lexical fusion off) because that is the
part the storage mode changes.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from components.config import Params
from components.data.corpus import load_corpus
from components.evaluation.metrics import iou, percentile
from components.index.region_index import PageMeta, RegionIndex
from components.regions.extract import extract_regions

STORAGE_MODES = ("float16", "pq", "binary")


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


def _exact(cells: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exhaustive float32 reference: best page and its heatmap per query."""
    heat = np.einsum("npd,qd->qnp", cells, queries)  # [Q, N, G*G]
    page_scores = heat.max(-1)
    best = page_scores.argmax(-1)
    return best, heat[np.arange(len(queries)), best]


def run_benchmark(params: Params, pages: int, out_dir: Path, model_dir: Path | None = None,
                  max_queries: int = 200) -> dict:
    from components.data.synthetic import generate_corpus
    from components.model.encode import encode_pages, encode_queries

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_doc = (1 + params.data.max_pages_per_doc) / 2
    bench_params = params.model_copy(deep=True)
    bench_params.data.n_docs = max(1, round(pages / per_doc))
    with tempfile.TemporaryDirectory(prefix="regionops-bench-") as tmp:
        gen = generate_corpus(bench_params, Path(tmp))
        corpus = load_corpus(Path(tmp))
        model, trained = _retriever(params, model_dir)

        start = time.perf_counter()
        cells = encode_pages(model, corpus, corpus.pages, progress=True)
        encode_s = time.perf_counter() - start

        questions = [q for q in corpus.questions if q.page_id and q.box and not q.query_image][:max_queries]
        queries = encode_queries(model, [q.question for q in questions])
        gold_pages = [q.page_id for q in questions]
        ids = [p.id for p in corpus.pages]
        metas = [PageMeta.from_page(p) for p in corpus.pages]
        exact_best, exact_heat = _exact(cells.astype(np.float32), queries)
        exact_r1 = np.mean([ids[b] == g for b, g in zip(exact_best, gold_pages)])
        exact_hit1 = np.mean([
            ids[b] == q.page_id
            and _top_region_iou(h, params, q.box, metas[b].blocks) >= params.evaluate.iou_hit
            for b, h, q in zip(exact_best, exact_heat, questions)
        ])

        modes: dict[str, dict] = {}
        candidate_recall = None
        for mode in STORAGE_MODES:
            index_params = params.index.model_copy(update={"storage": mode})
            index = RegionIndex.build(metas, cells, index_params, model.fingerprint, model.grid, seed=params.seed)
            latencies, r1, hit1, in_candidates = [], [], [], []
            for qi, (q, vec) in enumerate(zip(questions, queries)):
                t0 = time.perf_counter()
                hits = index.search(vec, 1)
                regions = (extract_regions(hits[0].heatmap, params.regions, hits[0].page_id,
                                           blocks=index.meta(hits[0].page_id).blocks) if hits else [])
                latencies.append((time.perf_counter() - t0) * 1e3)
                top = hits[0].page_id if hits else None
                r1.append(top == q.page_id)
                hit1.append(bool(top == q.page_id and regions and iou(regions[0].box, q.box) >= params.evaluate.iou_hit))
                if mode == "float16":
                    cand = index.candidate_pages(vec, params.index.candidates)
                    in_candidates.append(int(exact_best[qi]) in set(cand.tolist()))
            if mode == "float16":
                candidate_recall = float(np.mean(in_candidates)) if in_candidates else None
            stats = index.stats()
            modes[mode] = {
                "bytes_per_page": stats["bytes_per_page"]["vectors_total"],
                "cells_bytes_per_page": stats["bytes_per_page"]["cells"],
                "p50_ms": round(percentile(latencies, 50) or 0.0, 3),
                "p95_ms": round(percentile(latencies, 95) or 0.0, 3),
                "r1": float(np.mean(r1)) if r1 else None,
                "hit1": float(np.mean(hit1)) if hit1 else None,
                "r1_ratio": float(np.mean(r1) / exact_r1) if exact_r1 else None,
                "hit1_ratio": float(np.mean(hit1) / exact_hit1) if exact_hit1 else None,
            }

    report = {
        "index": {
            "pages": len(ids), "queries": len(questions), "faiss": params.index.faiss,
            "candidates": params.index.candidates, "candidate_recall": candidate_recall,
            "exact_float32": {"r1": float(exact_r1), "hit1": float(exact_hit1)}, "modes": modes,
        },
        "encode": {"pages_per_s": round(len(ids) / encode_s, 2), "trained_model": trained},
        "generate": {"pages_per_s": gen.get("pages_per_s"), "pages": gen.get("pages")},
    }
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2))
    (out_dir / "bench.md").write_text(render_markdown(report))
    return report


def _top_region_iou(heatmap_flat: np.ndarray, params: Params, box, blocks) -> float:
    grid = int(round(len(heatmap_flat) ** 0.5))
    regions = extract_regions(heatmap_flat.reshape(grid, grid), params.regions, blocks=blocks)
    return iou(regions[0].box, box) if regions else 0.0


def render_markdown(report: dict) -> str:
    idx = report["index"]
    lines = [
        "# regionops benchmark", "",
        f"- pages: {idx['pages']}, queries: {idx['queries']}, candidate stage: {idx['faiss']} "
        f"(C={idx['candidates']}), candidate recall vs exhaustive: {idx['candidate_recall']}",
        f"- generator: {report['generate']['pages_per_s']} pages/s; encoder: {report['encode']['pages_per_s']} "
        f"pages/s (trained model: {report['encode']['trained_model']})",
        f"- exact float32 exhaustive: R@1 {idx['exact_float32']['r1']:.3f}, region hit@1 {idx['exact_float32']['hit1']:.3f}",
        "", "| storage | vector bytes/page | p50 ms | p95 ms | R@1 ratio | hit@1 ratio |", "|---|---|---|---|---|---|",
    ]
    for mode, m in idx["modes"].items():
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(f"| {mode} | {m['bytes_per_page']} | {m['p50_ms']} | {m['p95_ms']} | "
                     f"{fmt(m['r1_ratio'])} | {fmt(m['hit1_ratio'])} |")
    return "\n".join(lines) + "\n"
