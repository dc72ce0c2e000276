"""The page-ranking fusion weight (``rag.lexical_weight``) swept on real pages (issue 26, ADR 33).

One served engine over a real folder (or a synthetic corpus's split: ``--corpus data/corpus
--split val``), imported and encoded once, cached under ``--work``; every
question with a gold page goes through the served path (MaxSim exact stage, the lexical channel
fused at the swept weight, the region settings of ``--regions-from``) at each weight. Per weight:
page R@1, region hit@1 (IoU >= ``evaluate.iou_hit``), and the paired difference against
``--reference`` (two-level bootstrap, ``components.evaluation.paired``). The weight a tuner would
choose here (best page R@1, ties by region hit@1, then the smaller weight) is named ``chosen``:
choose on the real *train* folder, then read that weight's row of the dev run.

``python -m scripts.experiments.fusion_weight_real --model M --docs TRAIN/docs --questions
TRAIN/questions.jsonl --work W --regions-from REGIONS.json --weights 0.25 0.5 1 2 --out T.json``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from components.bench.served import served_engine
from components.boxes import region_hit
from components.config import RegionParams, load_params
from components.evaluation.paired import paired_difference
from components.index.region_index import PageMeta
from components.model.encode import torch_threads
from components.registry.model_source import region_settings_from
from components.settings import configure_environment
from scripts.experiments.candidates_real_ab import top_region
from scripts.experiments.real_latency_profile import encoded_folder


def at_weight(engine, params, weight: float):
    engine.params = params.model_copy(
        update={"rag": params.rag.model_copy(update={"lexical_weight": weight})}
    )
    return engine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path, help="training export (with retriever/)")
    ap.add_argument("--docs", type=Path, help="a real folder (with --questions)")
    ap.add_argument("--questions", type=Path)
    ap.add_argument("--corpus", type=Path, help="instead: an existing corpus (e.g. data/corpus)")
    ap.add_argument("--split", help="with --corpus: only this split's questions (e.g. val)")
    ap.add_argument("--work", required=True, type=Path, help="cache: imported corpus, cells")
    ap.add_argument("--regions-from", type=Path, help="region settings (metrics.json / JSON)")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    ap.add_argument("--reference", type=float, default=None, help="default: rag.lexical_weight")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    configure_environment()
    params = load_params(Path("params.yaml"))
    if args.regions_from is not None:
        params = params.model_copy(
            update={"regions": RegionParams(**region_settings_from(args.regions_from))}
        )
    reference = params.rag.lexical_weight if args.reference is None else args.reference
    weights = sorted(set(args.weights) | {reference})
    model, corpus, cells = encoded_folder(
        args.model, params, args.work, args.docs, args.questions, args.corpus
    )
    metas = [PageMeta.from_page(p) for p in corpus.pages]
    questions = [
        q
        for q in corpus.questions
        if q.question
        and q.page_id
        and not q.query_image
        and (args.split is None or q.split == args.split)
    ]
    engine, _ = served_engine(params, model, metas, cells, params.index.storage)
    iou_hit = params.evaluate.iou_hit
    page: dict[float, np.ndarray] = {}
    region: dict[float, np.ndarray] = {}
    boxed = np.array([bool(q.box) for q in questions])
    with torch_threads(args.threads):
        for w in weights:
            tops = [
                top_region(at_weight(engine, params, w), q.question) or (None, None)
                for q in questions
            ]
            page[w] = np.array([t[0] == q.page_id for t, q in zip(tops, questions)], float)
            region[w] = np.array(
                [
                    region_hit(t[0], t[1], q.page_id, q.box, iou_hit) if q.box else 0.0
                    for t, q in zip(tops, questions)
                ]
            )
            print(f"weight {w}: page R@1 {page[w].mean():.4f} region hit@1 "
                  f"{region[w][boxed].mean():.4f}", flush=True)  # fmt: skip
    chosen = max(weights, key=lambda w: (page[w].mean(), region[w][boxed].mean(), -w))
    rows = {}
    for w in weights:
        rows[str(w)] = {
            "page_r1": round(float(page[w].mean()), 4),
            "region_hit1": round(float(region[w][boxed].mean()), 4),
            "page_r1_vs_reference": paired_difference(page[w], page[reference]),
            "region_hit1_vs_reference": paired_difference(
                region[w][boxed], region[reference][boxed]
            ),
        }
    out = {
        "docs": str(args.docs or f"{args.corpus} ({args.split or 'all'} split)"),
        "questions": len(questions),
        "boxed": int(boxed.sum()),
        "regions_from": str(args.regions_from),
        "model": str(args.model),
        "reference": reference,
        "chosen": chosen,
        "weights": rows,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", "utf-8")


if __name__ == "__main__":
    main()
