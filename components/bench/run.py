"""``run_benchmark``: generate and encode the corpus once, measure every size (and real pages),
write bench.json and bench.md."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from components.bench.corpus import (
    bench_questions,
    encode_all,
    export_dir,
    load_retriever_or_fresh,
    synthetic_corpus,
)
from components.bench.real import real_corpus_dir, real_latency
from components.bench.report import render_markdown
from components.bench.served import bench_size
from components.bench.targets import (
    DEFAULT_LATENCY_QUESTIONS,
    DEFAULT_MAX_QUERIES,
    DEFAULT_REAL_PAGES,
    LATENCY_THREADS,
    targets,
)
from components.config import Params
from components.index.parallel_encode import effective_workers
from components.index.region_index import PageMeta


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_benchmark(
    params: Params,
    pages: int | Sequence[int],
    out_dir: Path,
    model_dir: Path | None = None,
    max_queries: int = DEFAULT_MAX_QUERIES,
    real_docs: Path | None = None,
    real_questions: Path | None = None,
    real_pages: int = DEFAULT_REAL_PAGES,
    threads: int = LATENCY_THREADS,
    latency_questions: int = DEFAULT_LATENCY_QUESTIONS,
) -> dict:
    """Measure every size in ``pages`` from one generated, encoded corpus (and, with ``real_docs``,
    latency on its pages replicated to ``real_pages``; see ``real_corpus_dir``), answering under
    ``threads`` torch threads and timing ``latency_questions`` questions from their text; write
    bench.json and bench.md."""
    sizes = sorted({int(n) for n in ([pages] if isinstance(pages, int) else pages)})
    if not sizes or min(sizes[0], real_pages, threads, latency_questions) < 1:
        raise ValueError(
            f"bench sizes and counts must be positive, got pages={sizes}, real_pages={real_pages}, "
            f"threads={threads}, latency_questions={latency_questions}"
        )
    if real_docs is not None and not Path(real_docs).is_dir():
        raise NotADirectoryError(f"real pages: {real_docs} is not a folder")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="regionops-bench-") as tmp,
        tempfile.TemporaryDirectory(prefix="regionops-bench-model-") as model_tmp,
        tempfile.TemporaryDirectory(prefix="regionops-bench-real-") as real_tmp,
    ):
        real_corpus, imported = (
            real_corpus_dir(real_docs, real_questions, params, Path(real_tmp))
            if real_docs is not None
            else (None, None)
        )
        corpus, gen = synthetic_corpus(
            params, max(sizes[-1], real_pages if real_docs else 0), Path(tmp)
        )
        model, trained = load_retriever_or_fresh(params, model_dir)
        export = export_dir(model, model_dir if trained else None, Path(model_tmp))
        enc_threads = params.index.encode_threads
        workers = effective_workers(len(corpus.pages), params.index.encode_workers)
        start = time.perf_counter()
        cells = encode_all(model, corpus, corpus.pages, export, workers, enc_threads)
        encode = {
            "pages_per_s": round(len(corpus.pages) / (time.perf_counter() - start), 2),
            "pages": len(corpus.pages),
            "trained_model": trained,
            "threads": enc_threads,
            "workers": workers,
        }
        by_size = {
            str(min(n, len(corpus.pages))): bench_size(
                params, model, corpus, cells, n, max_queries, threads, latency_questions
            )
            for n in sizes
        }
        real = None
        if real_corpus is not None:
            syn = corpus.pages[:real_pages]
            syn_questions, _ = bench_questions(corpus, {p.id for p in syn}, latency_questions)
            real = real_latency(
                params,
                model,
                export,
                real_corpus,
                real_pages,
                ([PageMeta.from_page(p) for p in syn], cells[: len(syn)], syn_questions),
                threads,
                latency_questions,
            )
            real.update(source=str(real_docs), imported=imported)
    index = by_size[max(by_size, key=int)]
    report = {
        "index": index,
        "sizes": by_size,
        "encode": encode,
        "real_latency": real,
        "generate": {"pages_per_s": gen.get("pages_per_s"), "pages": gen.get("pages")},
        "targets": targets(index, encode, real),
        # 1/5/15-minute load averages: other work on the machine slows every figure alike.
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_start": [round(v, 2) for v in load_before],
            "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        },
    }
    _write_atomic(out_dir / "bench.json", json.dumps(report, indent=2))
    _write_atomic(out_dir / "bench.md", render_markdown(report))
    return report
