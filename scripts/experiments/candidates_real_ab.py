"""How many candidate pages the exact stage needs on real pages (``index.candidates``, ADR 29).

Two parts, one served engine per size, every candidate count served by the same engine:

1. **Accuracy at the real size.** The real dev pages as they are (no copies): every question
   with a gold page through the served path (MaxSim exact stage, fused lexical channel, region
   settings of ``--regions-from``), at each candidate count; page R@1, region hit@1 (IoU >=
   ``evaluate.iou_hit``) and the share of questions whose top region (page, box) equals the one
   at the configured count.
2. **Latency at ``--pages``** (the real pages repeated under new ids, as ``make bench`` does;
   float16, ``--threads``): question -> regions p50/p95 at each count, the counts taken in turn
   question by question (rotating which goes first), and the share of top regions (page with its
   copy suffix dropped, box) equal to the configured count's.

``python -m scripts.experiments.candidates_real_ab --model M --docs DEV/docs --questions
DEV/questions.jsonl --work .regionops/realdev --regions-from REGIONS.json --counts 128 96 64 32``;
on a synthetic corpus's val split: ``--corpus data/corpus --split val --work .regionops/synval``
(its region settings: ``--regions-from`` the training run's metrics, or params.yaml's).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from components.bench.corpus import spread
from components.bench.real import replicated
from components.bench.served import answer_timed, latency_percentiles, served_engine
from components.boxes import region_hit
from components.config import RegionParams, load_params
from components.index.region_index import PageMeta
from components.model.encode import torch_threads
from components.registry.model_source import region_settings_from
from components.settings import configure_environment
from scripts.experiments.real_latency_profile import encoded_folder


def with_candidates(engine, params, count: int):
    engine.params = params.model_copy(
        update={"index": params.index.model_copy(update={"candidates": count})}
    )
    return engine


def top_region(engine, question: str) -> tuple[str, tuple] | None:
    hits = engine.search_vector(engine.encode(question), question=question)
    regions = engine.regions_for(hits, engine.params.rag.k, question)
    return (regions[0].page_id, tuple(regions[0].box)) if regions else None


def original(top):
    return None if top is None else (top[0].split("~")[0], top[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--docs", type=Path, help="a real folder (with --questions)")
    ap.add_argument("--questions", type=Path)
    ap.add_argument("--corpus", type=Path, help="instead: an existing corpus (e.g. data/corpus)")
    ap.add_argument("--split", help="with --corpus: only this split's questions (e.g. val)")
    ap.add_argument("--work", required=True, type=Path, help="cache: imported corpus, cells")
    ap.add_argument("--regions-from", type=Path)
    ap.add_argument("--counts", type=int, nargs="+", default=[128, 96, 64, 32])
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--n", type=int, default=200, help="questions timed (spread)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    configure_environment()
    params = load_params(Path("params.yaml"))
    if args.regions_from is not None:
        params = params.model_copy(
            update={"regions": RegionParams(**region_settings_from(args.regions_from))}
        )
    reference = params.index.candidates
    counts = [reference] + [c for c in args.counts if c != reference]
    model, corpus, cells = encoded_folder(
        args.model, params, args.work, args.docs, args.questions, args.corpus
    )
    metas = [PageMeta.from_page(p) for p in corpus.pages]
    questions = [
        q
        for q in corpus.questions
        if q.question and q.page_id and (args.split is None or q.split == args.split)
    ]
    iou_hit = params.evaluate.iou_hit
    out: dict = {"questions": len(questions), "real_pages": len(metas), "counts": counts}

    engine, _ = served_engine(params, model, metas, cells, "float16")
    accuracy: dict[int, dict] = {}
    tops: dict[int, list] = {}
    with torch_threads(args.threads):
        for count in counts:
            with_candidates(engine, params, count)
            tops[count] = [top_region(engine, q.question) for q in questions]
    for count in counts:
        r1 = [t is not None and t[0] == q.page_id for t, q in zip(tops[count], questions)]
        hit = [
            region_hit(*(t or (None, None)), q.page_id, q.box, iou_hit) if q.box else None
            for t, q in zip(tops[count], questions)
        ]
        boxed = [h for h in hit if h is not None]
        accuracy[count] = {
            "page_r1": round(float(np.mean(r1)), 4),
            "region_hit1": round(float(np.mean(boxed)), 4),
            "same_top_region": round(
                float(np.mean([a == b for a, b in zip(tops[count], tops[reference])])), 4
            ),
        }
    out["real_size"] = accuracy
    del engine

    metas_n, cells_n = replicated(metas, cells, args.pages)
    engine, _ = served_engine(params, model, metas_n, cells_n, "float16")
    texts = [q.question for q in spread(questions, args.n)]
    ms: dict[int, list[float]] = {c: [] for c in counts}
    same: dict[int, list[bool]] = {c: [] for c in counts}
    load_start = os.getloadavg()
    with torch_threads(args.threads):
        answer_timed(with_candidates(engine, params, reference), texts[0])  # warm-up
        for i, text in enumerate(texts):
            order = counts[i % len(counts) :] + counts[: i % len(counts)]
            found = {}
            for count in order:
                engine._tokens.clear()  # each count encodes the question itself
                t, found[count] = answer_timed(with_candidates(engine, params, count), text)
                ms[count].append(t)
            for count in counts:
                same[count].append(original(found[count]) == original(found[reference]))
    out["scaled"] = {
        "pages": len(metas_n),
        "threads": args.threads,
        "questions": len(texts),
        **{
            str(c): {
                **latency_percentiles(ms[c]),
                "same_top_region": round(float(np.mean(same[c])), 4),
            }
            for c in counts
        },
        "loadavg": {"start": load_start, "end": os.getloadavg()},
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", "utf-8")


if __name__ == "__main__":
    main()
