"""Shared set-up of the A/B experiments behind ADRs 7-20: the ``make bench`` corpus, encoded once.

Each experiment script generates the bench's synthetic corpus (components.bench), encodes it with
the trained retriever through the index build's path, and compares two settings on the same pages
and questions. Accuracy experiments compare against exact float32 exhaustive search over the dense
channel alone, as the ADRs measured them. Run from the repository root, e.g.
``python -m scripts.experiments.candidate_stage_ab --pages 1000 --model data/model``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.bench import DEFAULT_MAX_QUERIES
from components.bench.corpus import (
    bench_questions,
    encode_all,
    export_dir,
    load_retriever_or_fresh,
    spread,
    synthetic_corpus,
)
from components.config import Params, load_params
from components.evaluation.metrics import iou, percentile
from components.index.parallel_encode import effective_workers
from components.index.region_index import PageMeta, RegionIndex
from components.regions.extract import extract_regions
from components.settings import configure_environment

# Questions timed question by question in the latency A/Bs (ADR 15-17).
AB_QUERIES = 300


@dataclass
class Bench:
    """One size's pages, encoded, with its questions and their exact float32 answers."""

    params: Params
    model: object
    trained: bool
    corpus: object
    export: Path
    cells: np.ndarray  # [pages, G*G, dim] float32
    metas: list[PageMeta]
    questions: list
    queries: np.ndarray  # [questions, dim]
    exact_best: np.ndarray  # per question: position of the exhaustive float32 best page
    exact_r1: np.ndarray  # per question: that page is the gold page
    exact_hit1: np.ndarray  # per question: and its top region hits the gold box


def exact_stage_parser(
    description: str, repeats: int, threads: list[int]
) -> argparse.ArgumentParser:
    """The arguments of the exact-stage A/Bs on random float16 cells (ADR 29): pages stored,
    candidates scored, vector dims, cells a page, repeats and the thread counts tried."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--pages", type=int, default=1000)
    p.add_argument("--candidates", type=int, default=144)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--cells", type=int, default=256)
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--threads", type=int, nargs="+", default=threads)
    return p


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--pages", type=int, default=1000, help="synthetic pages (as `regionops bench --pages`)"
    )
    p.add_argument(
        "--model", type=Path, default=Path("data/model"), help="trained retriever (fresh if absent)"
    )
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument(
        "--queries", type=int, default=DEFAULT_MAX_QUERIES, help="questions (spread over the pages)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=None,
        help="override a parameter, e.g. index.candidates=64",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="JSON file for the figures (printed either way)"
    )
    return p


def exact(
    cells: np.ndarray, queries: np.ndarray, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Exhaustive float32 reference: best page and its heatmap per query (pages in chunks to bound memory)."""
    n, c, d = cells.shape
    best_score = np.full(len(queries), -np.inf, dtype=np.float32)
    best = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, n, chunk):
        block = cells[start : start + chunk].astype(np.float32)
        page_scores = (
            (block.reshape(-1, d) @ queries.T).reshape(len(block), c, -1).max(1).T
        )  # [Q, chunk]
        top = page_scores.argmax(-1)
        score = page_scores[np.arange(len(queries)), top]
        better = score > best_score
        best_score[better], best[better] = score[better], top[better] + start
    heat = np.einsum("qpd,qd->qp", cells[best].astype(np.float32), queries)
    return best, heat


def _top_region_iou(heatmap_flat: np.ndarray, params: Params, box, blocks) -> float:
    grid = round(len(heatmap_flat) ** 0.5)
    regions = extract_regions(heatmap_flat.reshape(grid, grid), params.regions, blocks=blocks)
    return iou(regions[0].box, box) if regions else 0.0


@contextmanager
def bench(args: argparse.Namespace, encode: bool = True) -> Iterator[Bench]:
    """The bench corpus of ``args.pages`` pages in a temp folder, encoded (unless ``encode`` is False)."""
    from components.model.encode import encode_queries

    configure_environment()
    params = load_params(args.params, args.set)
    with (
        tempfile.TemporaryDirectory(prefix="regionops-exp-") as tmp,
        tempfile.TemporaryDirectory(prefix="regionops-exp-model-") as model_tmp,
    ):
        corpus, _ = synthetic_corpus(params, args.pages, Path(tmp))
        model, trained = load_retriever_or_fresh(params, args.model)
        export = export_dir(model, args.model if trained else None, Path(model_tmp))
        pages = corpus.pages[: args.pages]
        metas = [PageMeta.from_page(p) for p in pages]
        questions, _ = bench_questions(corpus, {p.id for p in pages}, args.queries)
        empty = np.zeros((0,), dtype=bool)
        if not encode:
            yield Bench(
                params,
                model,
                trained,
                corpus,
                export,
                np.zeros((0,)),
                metas,
                questions,
                np.zeros((0,)),
                empty,
                empty,
                empty,
            )
            return
        workers = effective_workers(len(pages), params.index.encode_workers)
        cells = encode_all(model, corpus, pages, export, workers, params.index.encode_threads)
        queries = encode_queries(model, [q.question for q in questions])
        best, heat = exact(cells, queries)
        ids = [m.page_id for m in metas]
        r1 = np.array([ids[b] == q.page_id for b, q in zip(best, questions)], dtype=bool)
        hit1 = np.array(
            [
                ids[b] == q.page_id
                and _top_region_iou(h, params, q.box, metas[b].blocks) >= params.evaluate.iou_hit
                for b, h, q in zip(best, heat, questions)
            ],
            dtype=bool,
        )
        yield Bench(
            params, model, trained, corpus, export, cells, metas, questions, queries, best, r1, hit1
        )


def build(b: Bench, storage: str, **update) -> tuple[RegionIndex, float]:
    """An index of the bench's pages in ``storage`` mode with ``update`` applied to index params (``key`` or ``section.key``), and its build seconds."""
    if b.params.index.faiss != "flat":  # the stored-centroid stage is a flat scan (ADR 12)
        update.setdefault("pq_residual.candidates", "separate")
    t0 = time.perf_counter()
    index = RegionIndex.build(
        b.metas,
        b.cells,
        b.params.index.with_updates({"storage": storage, **update}),
        b.model.fingerprint,
        b.model.grid,
        seed=b.params.seed,
    )
    return index, time.perf_counter() - t0


def ab_sample(items) -> list:
    return spread(list(items), AB_QUERIES)


def p50(values: list[float]) -> float:
    return round(float(percentile(values, 50)), 3)


def emit(args: argparse.Namespace, figures: dict) -> None:
    """Print the figures as JSON, and write them to ``--out`` when given."""
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
