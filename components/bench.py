"""``make bench``: the served system's accuracy, index size and latency per storage mode, in one run.

One synthetic corpus of the largest size is generated and encoded once (through the index build's
path); each smaller size is its leading pages (whole document families, so near-duplicate
distractors stay together; the questions' wording follows splits assigned over the whole corpus,
ADR 18). At each size every storage mode's index answers the same questions through ``RagEngine``
exactly as served: dense and lexical channels fused (``rag.*`` in params.yaml), regions extracted
and snapped to layout blocks (``regions.*``). ``lexical_only`` (BM25+ and its block map, no learned
model) answers them too. A compressed mode is compared with float16 on the same questions (paired
bootstrap interval), so machine noise and question sampling cancel out.

With a real corpus, question -> regions latency is also measured on its pages replicated to
``real_pages``, alternating question by question with as many synthetic pages, so both figures
carry the same machine load. ``targets`` sets the figures against the issues' bars. The one-off
A/B experiments behind ADRs 7-20 are scripts in scripts/experiments/.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from components.bench_corpus import (
    bench_questions,
    encode_all,
    export_dir,
    load_retriever_or_fresh,
    spread,
    synthetic_corpus,
)
from components.bench_report import render_markdown
from components.config import Params
from components.data.corpus import load_corpus
from components.evaluation.lexical_only import LexicalOnly
from components.evaluation.metrics import percentile, region_hit
from components.evaluation.paired import paired_ratio
from components.index.lexical import LexicalChannel
from components.index.parallel_encode import effective_workers
from components.index.region_index import PageMeta, RegionIndex
from components.rag.engine import RagEngine

STORAGE_MODES = ("float16", "pq", "binary", "pq_residual")
COMPRESSED_MODES = ("pq", "binary", "pq_residual")
REFERENCE_MODE = "float16"  # the served default: compressed modes are rated against it
COMPRESSED_DEFAULT = "pq_residual"  # the compressed mode under the size bar (ADR 11, ADR 20)
# The issues' bars. They are checked, never tuned: a miss is reported as a miss.
TARGET_P50_MS = 20.0  # issue 6: synthetic pages, worst storage mode
TARGET_REAL_P50_MS = 30.0  # issue 25: real pages, float16, LATENCY_THREADS threads
TARGET_BYTES_PER_PAGE = 8 * 1024
TARGET_R1_RATIO = 0.97  # of float16's fused page R@1, on the same questions
TARGET_ENCODE_PAGES_PER_S = 20.0
# torch intra-op threads while answering questions: a served process on the 2-core machine (the
# issue 25 bar is set at this count).
LATENCY_THREADS = 2
# Questions per size (every question of the size's pages up to this many, spread over them);
# 500 left ratios ±0.05 noisy between runs (ADR 11, ADR 12).
DEFAULT_MAX_QUERIES = 5000
# Real pages are replicated to at least this many for their latency figure (issue 25).
DEFAULT_REAL_PAGES = 1000
# Questions timed from their text (each encoded on its own) per size and per side of the real-page
# comparison; accuracy uses every question.
DEFAULT_LATENCY_QUESTIONS = 200


def served_engine(params: Params, model, metas: list[PageMeta], cells: np.ndarray,
                  storage: str) -> tuple[RagEngine, float]:
    """The served engine over an index of ``metas`` in ``storage`` mode, and its build seconds."""
    update = {"storage": storage}
    if params.index.faiss != "flat":  # the stored-centroid stage is a flat scan (ADR 12)
        update["pq_residual.candidates"] = "separate"
    index_params = params.index.with_updates(update)
    t0 = time.perf_counter()
    index = RegionIndex.build(metas, cells, index_params, model.fingerprint, model.grid, seed=params.seed)
    return RagEngine(model, index, params.model_copy(update={"index": index_params})), time.perf_counter() - t0


def regions_timed(engine: RagEngine, question: str, vector: np.ndarray) -> tuple[float, tuple | None]:
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
    channel = LexicalChannel([m.words for m in metas], grid, [m.blocks for m in metas])
    return LexicalOnly(channel, [m.page_id for m in metas], [m.blocks for m in metas], params)


def lexical_timed(lexical: LexicalOnly, question: str) -> tuple[float, tuple | None]:
    """Milliseconds from the question text to lexical_only's top region, and its (page, box)."""
    t0 = time.perf_counter()
    result = lexical.search(question)
    return (time.perf_counter() - t0) * 1e3, ((result.top_page, result.top_box) if result.top_page else None)


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


def _latency(ms: list[float]) -> dict:
    return {"p50_ms": round(float(percentile(ms, 50) or 0.0), 3), "p95_ms": round(float(percentile(ms, 95) or 0.0), 3)}


def _scored(answer, questions: list, iou_hit: float, threads: int, encode_ms: dict[int, float] | None) -> dict:
    """``answer(i, question) -> (ms, top)`` over every question under ``threads`` torch threads:
    per-question page R@1 and region hit@1 hits and latency percentiles. With ``encode_ms``
    (question position -> its own encoding), latency is that encoding plus ``answer``'s time on
    those questions, and ``search_*`` is ``answer``'s time alone on every question."""
    from components.model.encode import torch_threads

    ms, r1, hit1 = [], [], []
    with torch_threads(threads):
        if questions:
            answer(0, questions[0])  # warm-up: the first call builds lazy state (BM25, torch blocks)
        for i, q in enumerate(questions):
            t, top = answer(i, q)
            ms.append(t)
            page, box = top if top else (None, None)
            r1.append(page == q.page_id)
            hit1.append(bool(region_hit(page, box, q.page_id, q.box, iou_hit)))
    out = {"page_r1_hits": r1, "region_hit1_hits": hit1}
    if encode_ms is None:
        return {**out, **_latency(ms)}
    search = _latency(ms)
    return {**out, **_latency([encode_ms[i] + ms[i] for i in encode_ms]), "latency_questions": len(encode_ms),
            "search_p50_ms": search["p50_ms"], "search_p95_ms": search["p95_ms"]}


def _summary(scored: dict, reference: dict | None, seed: int) -> dict:
    """Absolute metrics of one system and, against ``reference`` (float16), their paired ratios."""
    out = {"page_r1": float(np.mean(scored["page_r1_hits"])) if scored["page_r1_hits"] else None,
           "region_hit1": float(np.mean(scored["region_hit1_hits"])) if scored["region_hit1_hits"] else None,
           **{k: v for k, v in scored.items() if not k.endswith("_hits")}}
    if reference is not None:
        for key in ("page_r1", "region_hit1"):
            out[f"{key}_paired"] = paired_ratio(scored[f"{key}_hits"], reference[f"{key}_hits"], seed=seed)
    return out


def bench_size(params: Params, model, corpus, cells: np.ndarray, n_pages: int, max_queries: int,
               threads: int = LATENCY_THREADS, latency_questions: int = DEFAULT_LATENCY_QUESTIONS) -> dict:
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
        scored[mode] = _scored(lambda i, q, e=engine: regions_timed(e, q.question, vectors[i]),
                               questions, iou_hit, threads, encode_ms)
        stats = engine.index.stats()
        modes[mode] = {
            "bytes_per_page": stats["bytes_per_page"]["vectors_total"],
            "bytes_breakdown": stats["bytes_per_page"],
            "candidate_stage": stats["candidate_vectors"],
            "build_s": round(build_s, 2),
            **_summary(scored[mode], scored[REFERENCE_MODE] if mode != REFERENCE_MODE else None, seed),
        }
        del engine
    lexical = lexical_only(metas, model.grid, params)
    lexical_scored = _scored(lambda i, q: lexical_timed(lexical, q.question), questions, iou_hit, threads, None)
    r = params.rag
    return {
        "pages": len(pages), "queries": len(questions), "questions_available": n_available,
        "query_encode_p50_ms": _latency(list(encode_ms.values()))["p50_ms"],
        "served": {"lexical_weight": r.lexical_weight, "lexical_candidates": r.lexical_candidates,
                   "lexical_scope": r.lexical_scope, "region_term_weights": r.region_term_weights,
                   "snap": params.regions.snap, "candidates": params.index.candidates, "k": r.k,
                   "threads": threads, "latency_questions": len(encode_ms)},
        "modes": modes,
        "lexical_only": _summary(lexical_scored, scored[REFERENCE_MODE], seed),
    }


def replicated(metas: list[PageMeta], cells: np.ndarray, n_pages: int) -> tuple[list[PageMeta], np.ndarray]:
    """The pages repeated under new ids (copy k of page p is ``p~k``, in document ``doc~k``) to
    ``n_pages`` (all of them at least once): a real-page index of the size latency is measured at."""
    copies = max(1, -(-n_pages // max(len(metas), 1)))
    n = max(n_pages, len(metas))
    out = [m if k == 0 else dataclasses.replace(m, page_id=f"{m.page_id}~{k}", doc=f"{m.doc}~{k}")
           for k in range(copies) for m in metas][:n]
    return out, np.concatenate([cells] * copies)[:n]


def real_corpus_dir(real_docs: Path, real_questions: Path | None, params: Params, scratch: Path) -> tuple[Path, dict | None]:
    """A corpus folder of the real pages: ``real_docs`` itself when it is one (it has pages.jsonl),
    else its PDFs/images and ``real_questions`` imported into ``scratch`` through ``regionops
    import``'s path (bad documents and questions quarantined with a reason, counted here)."""
    from components.data.importer import import_documents

    if (Path(real_docs) / "pages.jsonl").exists():
        return Path(real_docs), None
    if real_questions is None:
        raise ValueError(f"{real_docs} is a folder of documents, not a corpus: its questions JSONL is needed too")
    report = import_documents(Path(real_docs), Path(real_questions), scratch, params, collection="bench-real")
    return scratch, {"pages": report["pages"], "questions": report["questions"]["accepted"],
                     "quarantined_documents": report["documents"]["quarantined"],
                     "quarantined_questions": report["questions"]["quarantined"]}


def real_latency(params: Params, model, export: Path, real_corpus: Path, n_pages: int,
                 synthetic: tuple[list, np.ndarray, list], threads: int = LATENCY_THREADS,
                 latency_questions: int = DEFAULT_LATENCY_QUESTIONS) -> dict:
    """Question -> regions on the real corpus's pages replicated to ``n_pages`` and on as many
    synthetic pages, float16 and COMPRESSED_DEFAULT, one question of each side in turn (the side
    going first alternates) so load changes hit both alike."""
    from components.model.encode import torch_threads

    corpus = load_corpus(real_corpus)
    real_questions = [q for q in corpus.questions if q.question and not q.query_image and corpus.has_page(q.page_id)]
    if not corpus.pages or not real_questions:
        raise ValueError(f"{real_corpus}: real-page latency needs pages and text questions on them "
                         f"(found {len(corpus.pages)} pages, {len(real_questions)} questions)")
    workers = effective_workers(len(corpus.pages), params.index.encode_workers)
    t0 = time.perf_counter()
    real_cells = encode_all(model, corpus, corpus.pages, export, workers, params.index.encode_threads)
    encode_s = time.perf_counter() - t0
    real_metas, real_cells = replicated([PageMeta.from_page(p) for p in corpus.pages], real_cells, n_pages)
    syn_pages, syn_cells, syn_questions = synthetic
    n = min(latency_questions, max(1, len(real_questions)), len(syn_questions))
    sides = {"real": spread(real_questions, n), "synthetic": spread(syn_questions, n)}
    n = min(len(v) for v in sides.values())
    out = {"real_pages": len(corpus.pages), "real_questions": len(real_questions), "pages": len(real_metas),
           "synthetic_pages": len(syn_pages), "questions": n, "threads": threads,
           "real_encode_pages_per_s": round(len(corpus.pages) / encode_s, 2), "modes": {}}
    for mode in (REFERENCE_MODE, COMPRESSED_DEFAULT):
        engines = {"real": served_engine(params, model, real_metas, real_cells, mode)[0],
                   "synthetic": served_engine(params, model, syn_pages, syn_cells, mode)[0]}
        ms: dict[str, list[float]] = {side: [] for side in engines}
        with torch_threads(threads):
            for side, engine in engines.items():
                answer_timed(engine, sides[side][0].question)  # warm-up
            for i in range(n):
                for side in (("real", "synthetic") if i % 2 == 0 else ("synthetic", "real")):
                    ms[side].append(answer_timed(engines[side], sides[side][i].question)[0])
        out["modes"][mode] = {side: _latency(v) for side, v in ms.items()}
        del engines
    return out


def targets(index: dict, encode: dict, real: dict | None) -> dict:
    """The issues' bars against the largest size's figures; ``met`` is computed, never asserted."""
    modes = index["modes"]
    small = {m: modes[m] for m in COMPRESSED_MODES if m in modes and modes[m]["bytes_per_page"] <= TARGET_BYTES_PER_PAGE}

    def ratio(m: str) -> float:
        return modes[m]["page_r1_paired"]["ratio"] or 0.0

    best = max(small, key=ratio) if small else None
    paired = modes[best]["page_r1_paired"] if best else {}
    worst = max((m["p50_ms"] for m in modes.values()), default=None)
    real_p50 = real["modes"][REFERENCE_MODE]["real"]["p50_ms"] if real else None
    # The real-page bar is set at LATENCY_THREADS threads on >= 1k pages: another run does not decide it.
    real_decides = real_p50 is not None and real["threads"] == LATENCY_THREADS and real["pages"] >= DEFAULT_REAL_PAGES
    return {
        "pages": index["pages"],
        "p50_ms": {"bar": TARGET_P50_MS, "worst_mode_value": worst, "met": worst is not None and worst <= TARGET_P50_MS},
        "real_p50_ms": {"bar": TARGET_REAL_P50_MS, "mode": REFERENCE_MODE, "bar_threads": LATENCY_THREADS,
                        "threads": real["threads"] if real else None, "pages": real["pages"] if real else None,
                        "value": real_p50, "met": (real_p50 <= TARGET_REAL_P50_MS) if real_decides else None},
        "compressed": {"bar_bytes_per_page": TARGET_BYTES_PER_PAGE, "bar_r1_ratio": TARGET_R1_RATIO,
                       "reference": REFERENCE_MODE, "best_mode": best,
                       "bytes_per_page": modes[best]["bytes_per_page"] if best else None,
                       "r1_ratio": paired.get("ratio"),
                       "r1_ratio_ci": [paired.get("ci_low"), paired.get("ci_high")] if best else None,
                       "queries": index["queries"], "met": bool(best and ratio(best) >= TARGET_R1_RATIO)},
        "encode": {"bar_pages_per_s": TARGET_ENCODE_PAGES_PER_S, "value": encode["pages_per_s"],
                   "met": encode["pages_per_s"] >= TARGET_ENCODE_PAGES_PER_S},
    }


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_benchmark(params: Params, pages: int | Sequence[int], out_dir: Path, model_dir: Path | None = None,
                  max_queries: int = DEFAULT_MAX_QUERIES, real_docs: Path | None = None,
                  real_questions: Path | None = None, real_pages: int = DEFAULT_REAL_PAGES,
                  threads: int = LATENCY_THREADS, latency_questions: int = DEFAULT_LATENCY_QUESTIONS) -> dict:
    """Measure every size in ``pages`` from one generated, encoded corpus (and, with ``real_docs``,
    latency on its pages replicated to ``real_pages``; see ``real_corpus_dir``), answering under
    ``threads`` torch threads and timing ``latency_questions`` questions from their text; write
    bench.json and bench.md."""
    sizes = sorted({int(n) for n in ([pages] if isinstance(pages, int) else pages)})
    if not sizes or min(sizes[0], real_pages, threads, latency_questions) < 1:
        raise ValueError(f"bench sizes and counts must be positive, got pages={sizes}, real_pages={real_pages}, "
                         f"threads={threads}, latency_questions={latency_questions}")
    if real_docs is not None and not Path(real_docs).is_dir():
        raise NotADirectoryError(f"real pages: {real_docs} is not a folder")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    with (tempfile.TemporaryDirectory(prefix="regionops-bench-") as tmp,
          tempfile.TemporaryDirectory(prefix="regionops-bench-model-") as model_tmp,
          tempfile.TemporaryDirectory(prefix="regionops-bench-real-") as real_tmp):
        real_corpus, imported = (real_corpus_dir(real_docs, real_questions, params, Path(real_tmp))
                                 if real_docs is not None else (None, None))
        corpus, gen = synthetic_corpus(params, max(sizes[-1], real_pages if real_docs else 0), Path(tmp))
        model, trained = load_retriever_or_fresh(params, model_dir)
        export = export_dir(model, model_dir if trained else None, Path(model_tmp))
        enc_threads = params.index.encode_threads
        workers = effective_workers(len(corpus.pages), params.index.encode_workers)
        start = time.perf_counter()
        cells = encode_all(model, corpus, corpus.pages, export, workers, enc_threads)
        encode = {"pages_per_s": round(len(corpus.pages) / (time.perf_counter() - start), 2),
                  "pages": len(corpus.pages), "trained_model": trained, "threads": enc_threads, "workers": workers}
        by_size = {str(min(n, len(corpus.pages))): bench_size(params, model, corpus, cells, n, max_queries,
                                                              threads, latency_questions)
                   for n in sizes}
        real = None
        if real_corpus is not None:
            syn = corpus.pages[:real_pages]
            syn_questions, _ = bench_questions(corpus, {p.id for p in syn}, latency_questions)
            real = real_latency(params, model, export, real_corpus, real_pages,
                                ([PageMeta.from_page(p) for p in syn], cells[: len(syn)], syn_questions),
                                threads, latency_questions)
            real.update(source=str(real_docs), imported=imported)
    index = by_size[max(by_size, key=int)]
    report = {
        "index": index, "sizes": by_size, "encode": encode, "real_latency": real,
        "generate": {"pages_per_s": gen.get("pages_per_s"), "pages": gen.get("pages")},
        "targets": targets(index, encode, real),
        # 1/5/15-minute load averages: other work on the machine slows every figure alike.
        "machine": {"cpus": os.cpu_count(), "loadavg_start": [round(v, 2) for v in load_before],
                    "loadavg_end": [round(v, 2) for v in os.getloadavg()]},
    }
    _write_atomic(out_dir / "bench.json", json.dumps(report, indent=2))
    _write_atomic(out_dir / "bench.md", render_markdown(report))
    return report
