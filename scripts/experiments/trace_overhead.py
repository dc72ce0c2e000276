"""What MLflow tracing costs per question: RagEngine.answer with tracing on vs off, paired.

Usage:
  python scripts/experiments/trace_overhead.py --corpus data/corpus [--model data/model --index data/index]
      [--questions 60] [--pages 120]

Without --model/--index, an untrained retriever with params.yaml's architecture is built and
--pages pages of the corpus are indexed: the per-question work (encode, search, regions,
answer) is the same as a trained model's, which is all a latency ratio needs. Each question is
answered twice in a random order (on/off), after a warm-up; traces go to a throw-away sqlite
store with MLflow's default (async) trace logging, as a served model would log them.
Prints per-question latency medians and p95 (ms) and the on/off ratio of the medians, plus
the median of per-question ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--index", type=Path)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--pages", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import mlflow

    from components.config import load_params
    from components.data.corpus import Corpus, load_corpus
    from components.evaluation.metrics import percentile
    from components.rag.engine import RagEngine
    from components.settings import configure_environment

    configure_environment()
    params = load_params(args.params, [f"data.corpus_dir={args.corpus}"])
    corpus = load_corpus(args.corpus)
    workdir = Path(tempfile.mkdtemp(prefix="regionops-trace-bench-"))
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'traces.db'}")
    mlflow.set_experiment("trace-overhead")

    if args.model and args.index:
        engine = RagEngine.from_dirs(args.model, args.index, params)
        indexed = set(engine.index.page_ids)
    else:
        from components.index.build import build_index
        from components.model.io import save_retriever
        from components.model.retriever import build_retriever

        pages = sorted(corpus.pages, key=lambda p: p.id)[: args.pages]
        subset = Corpus(corpus.root, pages, corpus.questions)
        save_retriever(build_retriever(params.model), workdir / "model" / "retriever")
        build_index(params, subset, workdir / "model", workdir / "index")
        engine = RagEngine.from_dirs(workdir / "model", workdir / "index", params)
        indexed = {p.id for p in pages}
    off = RagEngine(engine.retriever, engine.index, params, tracing_on=False)
    on = RagEngine(engine.retriever, engine.index, params, tracing_on=True)
    on.reader = off.reader = engine.reader

    rng = random.Random(args.seed)
    questions = [q for q in corpus.questions if q.page_id in indexed and not q.query_image]
    questions = rng.sample(questions, min(args.questions, len(questions)))
    for q in questions[:5]:  # warm-up: first calls pay imports and allocations
        off.answer(q.question)
        on.answer(q.question)
    times: dict[str, list[float]] = {"off": [], "on": []}
    for q in questions:
        order = [("off", off), ("on", on)]
        rng.shuffle(order)
        for label, eng in order:
            t0 = time.perf_counter()
            eng.answer(q.question)
            times[label].append((time.perf_counter() - t0) * 1e3)
    mlflow.flush_trace_async_logging()
    report = {
        "questions": len(questions),
        "median_ms": {k: round(statistics.median(v), 2) for k, v in times.items()},
        "p95_ms": {k: round(percentile(v, 95), 2) for k, v in times.items()},
    }
    report["ratio_of_medians"] = round(report["median_ms"]["on"] / report["median_ms"]["off"], 3)
    report["median_per_question_ratio"] = round(
        statistics.median(a / b for a, b in zip(times["on"], times["off"])), 3
    )
    report["traces_logged"] = len(mlflow.search_traces(return_type="list", max_results=10_000))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
