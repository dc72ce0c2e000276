"""Where question -> regions time goes on real pages (ADR 29), stage by stage, and a profile.

Imports a folder of real documents through ``regionops import``'s path (cached under ``--work``,
with the encoded cells), replicates the pages to ``--pages`` as ``make bench`` does, builds the
float16 served engine with the region settings of ``--regions-from``, and times every stage of
the served path for each question under ``--threads`` torch threads:

  encode        the question through the query encoder (MiniLM in the pretrained space)
  candidates    the faiss candidate stage (index.candidates pages)
  bm25_pages    the lexical channel's BM25 candidate pages (rag.lexical_candidates)
  dense_maps    exact heatmaps of the candidates (stored float16 cells . query)
  lexical_maps  the lexical channel's heatmaps of the candidates (the fused ranking)
  rank_pages    page scores and their order
  region_maps   the page-local re-weighting of the hits' maps (rag.region_term_weights: page)
  block_scores  BM25+ of each hit's layout blocks (regions.rule: text_blocks)
  extract       region extraction and ranking

``total`` is the served path end to end (``answer_timed``: encode + search_vector + regions_for),
timed separately, with the process's CPU milliseconds (``total_cpu``: every thread's, so at
two threads it includes their waits; it moves less with other jobs than the wall time). With ``--profile FILE`` the end-to-end path of every question also runs under
pyinstrument (the ``profile`` extra in pyproject.toml) and its text report goes to FILE.
Run from the repository root, e.g.
``python -m scripts.experiments.real_latency_profile --model /work/model_run1
--docs /work/data/realdocs/dev/docs --questions /work/data/rd4/dev/questions.jsonl
--work .regionops/realdev --regions-from /work/exp/regions_real_train.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from components.bench.corpus import encode_all, spread
from components.bench.real import replicated
from components.bench.served import answer_timed, latency_percentiles, served_engine
from components.config import RegionParams, load_params
from components.data.corpus import load_corpus
from components.data.importer import import_documents
from components.index.lexical import tokenize
from components.index.pages import PageHit
from components.index.parallel_encode import effective_workers
from components.index.region_index import PageMeta
from components.model.encode import torch_threads
from components.model.io import load_retriever, retriever_dir
from components.regions.extract import extract_regions, rank_regions
from components.registry.model_source import region_settings_from
from components.settings import configure_environment

STAGES = (
    "encode",
    "candidates",
    "bm25_pages",
    "dense_maps",
    "lexical_maps",
    "rank_pages",
    "regions",
)


def untrimmed_regions(engine, hits, question: str) -> list:
    """The region step before ADR 29: every hit's region map, rank-bm25's ``get_batch_scores``
    per page for its blocks' BM25+ (``regions.rule: text_blocks``), every page's regions ranked."""
    index, params = engine.index, engine.params
    maps = engine.region_maps(hits, question)
    text_blocks = params.regions.rule == "text_blocks"
    terms = tokenize(question)
    postings, offsets = index.lexical._blocks_bm25()
    by_page = {}
    for pid, heat in maps.items():
        pos = index.position(pid)
        n = len(index.meta(pid).blocks)
        scores = None
        if text_blocks and n and terms and postings is not None:
            bm25 = postings.bm25
            raw = np.asarray(
                bm25.get_batch_scores(terms, list(range(offsets[pos], offsets[pos] + n)))
            )
            floor = sum(float(bm25.idf.get(t, 0.0)) * bm25.delta for t in terms)
            scores = np.maximum(raw - floor, 0.0)
        elif text_blocks:
            scores = np.zeros(n)
        by_page[pid] = extract_regions(
            heat, params.regions, pid, blocks=index.meta(pid).blocks, text_scores=scores
        )
    return rank_regions(by_page, params.rag.k)


def staged(engine, question: str) -> tuple[dict[str, float], list, list, float]:
    """Milliseconds of each stage of the served path for one question (search_vector taken
    apart, then ``regions_for``), the served regions, the untrimmed step's regions and its
    milliseconds (the two region steps run back to back, in alternating order)."""
    index, params = engine.index, engine.params
    rag, c = params.rag, params.index.candidates
    out: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        out[name] = (now - t) * 1e3
        t = now

    engine._tokens.clear()  # the end-to-end run just encoded this question: encode it afresh
    t = time.perf_counter()
    query = engine.encode(question)
    lap("encode")
    positions = index.candidate_pages(query, c)
    lap("candidates")
    sparse = index.lexical.top_pages(question, rag.lexical_candidates)
    positions = np.concatenate([positions, sparse[~np.isin(sparse, positions)]])
    lap("bm25_pages")
    maps = index.heatmaps(positions, query)
    lap("dense_maps")
    maps = maps + rag.lexical_weight * index.lexical.heatmaps(
        question, positions, rag.lexical_scope
    )
    lap("lexical_maps")
    scores = maps.reshape(len(positions), -1).max(1)
    order = np.argsort(-scores, kind="stable")[:c]
    hits = [PageHit(index.metas[positions[i]].page_id, float(scores[i]), maps[i]) for i in order]
    lap("rank_pages")
    flip = bool(staged.calls % 2)
    staged.calls += 1
    if flip:
        t0 = time.perf_counter()
        old = untrimmed_regions(engine, hits, question)
        old_ms = (time.perf_counter() - t0) * 1e3
        t = time.perf_counter()
    regions = engine.regions_for(hits, rag.k, question)
    lap("regions")
    if not flip:
        t0 = time.perf_counter()
        old = untrimmed_regions(engine, hits, question)
        old_ms = (time.perf_counter() - t0) * 1e3
    return out, regions, old, old_ms


staged.calls = 0


def same_regions(a: list, b: list) -> bool:
    return [(r.page_id, r.box, r.score) for r in a] == [(r.page_id, r.box, r.score) for r in b]


def real_cells(model, corpus, params, work: Path, export: Path) -> np.ndarray:
    """The corpus's pages encoded through the index build's path, cached by model fingerprint."""
    cache = work / f"cells-{model.fingerprint[:16]}.npy"
    if cache.is_file():
        return np.load(cache)
    workers = effective_workers(len(corpus.pages), params.index.encode_workers)
    cells = encode_all(model, corpus, corpus.pages, export, workers, params.index.encode_threads)
    np.save(cache, cells)
    return cells


def encoded_folder(
    model_dir: Path,
    params,
    work: Path,
    docs: Path | None = None,
    questions: Path | None = None,
    corpus_dir: Path | None = None,
):
    """(retriever, corpus, cells) of a real folder (``docs`` + ``questions``, imported into
    ``work/corpus`` once) or of an existing corpus (``corpus_dir``), its cells cached in ``work``."""
    if (corpus_dir is None) == (docs is None or questions is None):
        raise SystemExit("give --docs and --questions, or --corpus")
    work.mkdir(parents=True, exist_ok=True)
    if corpus_dir is None:
        corpus_dir = work / "corpus"
        if not (corpus_dir / "pages.jsonl").is_file():
            import_documents(docs, questions, corpus_dir, params, collection="eval")
    corpus = load_corpus(corpus_dir)
    model = load_retriever(retriever_dir(model_dir))
    return model, corpus, real_cells(model, corpus, params, work, retriever_dir(model_dir))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, type=Path, help="training export (with retriever/)")
    ap.add_argument("--docs", required=True, type=Path)
    ap.add_argument("--questions", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path, help="cache: imported corpus, cells")
    ap.add_argument("--regions-from", type=Path, help="region settings (metrics.json / JSON)")
    ap.add_argument("--pages", type=int, default=1000, help="pages the real ones replicate to")
    ap.add_argument("--n", type=int, default=100, help="questions timed (spread)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--storage", default="float16")
    ap.add_argument("--profile", type=Path, help="pyinstrument text report of the served path")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--set", action="append", default=None, help="params override key=value")
    args = ap.parse_args()
    configure_environment()
    params = load_params(Path("params.yaml"), args.set)
    if args.regions_from is not None:
        params = params.model_copy(
            update={"regions": RegionParams(**region_settings_from(args.regions_from))}
        )
    model, corpus, cells = encoded_folder(args.model, params, args.work, args.docs, args.questions)
    metas, cells = replicated([PageMeta.from_page(p) for p in corpus.pages], cells, args.pages)
    engine, build_s = served_engine(params, model, metas, cells, args.storage)
    texts = [q.question for q in spread([q for q in corpus.questions if q.question], args.n)]
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    total: list[float] = []
    total_cpu: list[float] = []  # the process's CPU time (every thread's; spinning included)
    untrimmed: list[float] = []
    differ: list[str] = []
    load_start = os.getloadavg()
    with torch_threads(args.threads):
        answer_timed(engine, texts[0])  # warm-up: lazy BM25 and torch state
        staged(engine, texts[0])
        for text in texts:
            cpu0 = time.process_time()
            total.append(answer_timed(engine, text)[0])
            total_cpu.append((time.process_time() - cpu0) * 1e3)
            times, regions, old, old_ms = staged(engine, text)
            for name, ms in times.items():
                stages[name].append(ms)
            untrimmed.append(old_ms)
            if not same_regions(regions, old):
                differ.append(text)
        if args.profile is not None:
            try:
                from pyinstrument import Profiler
            except ImportError as err:
                raise SystemExit(
                    "--profile needs pyinstrument: pip install -e '.[profile]'"
                ) from err

            profiler = Profiler(interval=0.0005)
            with profiler:
                for text in texts:
                    answer_timed(engine, text)
            args.profile.parent.mkdir(parents=True, exist_ok=True)
            args.profile.write_text(profiler.output_text(unicode=False, show_all=False))
    figures = {
        "pages": len(metas),
        "real_pages": len(corpus.pages),
        "questions": len(texts),
        "threads": args.threads,
        "storage": args.storage,
        "regions": params.regions.model_dump(exclude={"search", "tune"}),
        "build_s": round(build_s, 2),
        "total": latency_percentiles(total),
        "total_cpu": latency_percentiles(total_cpu),
        "stages_p50_ms": {s: latency_percentiles(v)["p50_ms"] for s, v in stages.items()},
        "stages_mean_ms": {s: round(float(np.mean(v)), 3) for s, v in stages.items()},
        "regions_untrimmed": latency_percentiles(untrimmed),
        "regions_over_untrimmed_p50": round(
            float(np.median(stages["regions"])) / float(np.median(untrimmed)), 4
        ),
        "top_regions_identical": len(texts) - len(differ),
        "top_regions_differ": differ,
        "loadavg": {"start": load_start, "end": os.getloadavg()},
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
