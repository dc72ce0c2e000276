"""Which heatmap a maxsim model serves (ADR 28): page R@1 and region hit@1 of ``regionops_dense``
and ``regionops`` under max_cell and under MaxSim with each heatmap rule (``rag.maxsim_heatmap``).

Runs the served path (``RagEngine.answer_vector`` with ``evaluate``'s dense-only settings for
``regionops_dense``) over an index already built with the model (``regionops index build`` or an
``evaluate`` work folder), for the text questions whose gold page is indexed. Regions are ranked
over the top ``--pages`` pages (16; the top region sits on one of the first pages, as region scores
peak at page scores), which keeps 1710 questions × 6 systems within ~30 minutes on 2 loaded cores.
Choose the rule on TRAINING documents (never on dev), e.g.::

    python -m scripts.experiments.maxsim_heatmap_rule --model .regionops/models/run1_maxsim \\
        --index /work/exp/train-work/index --corpus /work/exp/train-work/corpus \\
        --regions-from /work/exp/regions_real_train.json --out .regionops/maxsim_heatmap_train.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from components.boxes import region_hit
from components.config import RegionParams, load_params
from components.data.corpus import load_corpus
from components.evaluation.systems import dense_only
from components.rag.engine import RagEngine

RULES = ("max_cell", "mean", "vote")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, type=Path, help="training export or retriever")
    ap.add_argument("--index", required=True, type=Path, help="index built with the model")
    ap.add_argument("--corpus", required=True, type=Path, help="the imported corpus (questions)")
    ap.add_argument("--regions-from", type=Path, help="a JSON with regions.chosen")
    ap.add_argument("--limit", type=int, default=0, help="first N questions only (0: all)")
    ap.add_argument("--pages", type=int, default=16, help="top pages whose regions are ranked")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)  # a shared 2-core machine: see components.model.encode.torch_threads
    params = load_params(Path("params.yaml"))
    if args.regions_from:
        chosen = json.loads(args.regions_from.read_text())["regions"]["chosen"]
        params = params.model_copy(update={"regions": RegionParams.model_validate(chosen)})
    engine = RagEngine.from_dirs(args.model, args.index, params)
    corpus = load_corpus(args.corpus)
    questions = [
        q
        for q in corpus.questions
        if q.page_id and not q.query_image and engine.index.has_page(q.page_id)
    ]
    questions = questions[: args.limit] if args.limit else questions
    iou, k = params.evaluate.iou_hit, params.evaluate.k
    engines: dict[str, RagEngine] = {}
    for rule in RULES:
        run = params.model_copy(
            update={"rag": params.rag.model_copy(update={"maxsim_heatmap": rule})}
        )
        engines[f"regionops/{rule}"] = RagEngine(engine.retriever, engine.index, run)
        engines[f"regionops_dense/{rule}"] = RagEngine(
            engine.retriever, engine.index, dense_only(run)
        )
    tokens: dict = {}  # one encoder pass per question for every maxsim engine
    for key, eng in engines.items():
        eng.page_score = "max_cell" if key.endswith("max_cell") else "maxsim"
        eng._tokens = tokens
    scores = {key: {"page_r1": [], "region_hit1": []} for key in engines}
    for i, q in enumerate(questions):
        tokens.clear()
        for key, eng in engines.items():
            vector = eng.text_query_vector(q.question)
            # The top region is on one of the first pages (region scores peak at page scores).
            hits = eng.search_vector(vector, k_pages=args.pages, question=q.question)
            result = eng.answer_vector(q.question, vector, k=k, hits=hits)
            scores[key]["page_r1"].append(float(result.page_id == q.page_id))
            if q.box:
                top = tuple(result.boxes[0]) if result.boxes else None
                scores[key]["region_hit1"].append(
                    region_hit(result.page_id, top, q.page_id, q.box, iou)
                )
        if (i + 1) % 200 == 0:
            print(
                i + 1,
                {key: round(float(np.mean(r["region_hit1"])), 3) for key, r in scores.items()},
            )
    out = {
        "model": str(args.model),
        "index": str(args.index),
        "questions": len(questions),
        "pages_ranked": args.pages,
        "with_box": sum(1 for q in questions if q.box),
        "regions": params.regions.model_dump(),
        "systems": {
            key: {m: float(np.mean(v)) for m, v in rows.items()} for key, rows in scores.items()
        },
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
