"""Score a trained reader checkpoint (last.ckpt of a reader_real.py run) on the real dev set.

Inference-time studies on one trained reader, paired per question (components/evaluation/paired.py):
  systems   regionops (the retriever's top-k regions) vs page_level (its top-k pages, same
            budget rule) vs oracle (clean contexts) vs the text-layer heuristic (top region);
  tokens    the same reader given refine / avgpool / random visual tokens (trained with refine),
            and with its visual tokens dropped (top_m = 0 at inference).

    PYTHONPATH=$PWD python scripts/experiments/reader_real_score.py \\
        --ckpt .regionops/checkpoints/reader-<key>/last.ckpt --model /work/main/data/model \\
        --dev-set /work/data/realdocs/dev --set train_contexts=injected --limit 0 --out reports/reader_real_full
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from reader_real import SPLITS, evidence_in, heuristic_scores, per_question

from components.config import load_params
from components.evaluation.answering import AnsweringBench
from components.evaluation.paired import paired_difference
from components.model.io import load_retriever, retriever_dir
from components.rag.engine import RagEngine
from components.reader.answerer import ReaderAnswerer
from components.reader.io import build_reader
from components.reader.real_pages import prepare_real_pages
from components.settings import configure_environment


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--dev-set", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--systems", default="regionops,page_level,oracle")
    ap.add_argument(
        "--modes",
        default="",
        help="visual-token modes to try besides refine, e.g. avgpool,random,none",
    )
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    params, settings = load_params(), configure_environment()
    updates = {}
    for item in args.set:
        key, _, value = item.partition("=")
        updates[key] = type(getattr(params.reader, key))(value)
    params = params.model_copy(update={"reader": params.reader.model_copy(update=updates)})
    retriever = load_retriever(retriever_dir(args.model))
    dev_corpus, dev_index = prepare_real_pages(
        params,
        args.dev_set,
        args.model,
        retriever.fingerprint,
        settings.home / "reader-eval-pages",
        for_training=False,
    )
    reader = build_reader(params.reader, params.model, dev_index.dim)
    state = torch.load(args.ckpt, map_location="cpu", weights_only=True)["state_dict"]
    missing, unexpected = reader.load_state_dict(
        {k.removeprefix("reader."): v for k, v in state.items()}, strict=False
    )
    if missing or unexpected:
        raise ValueError(
            f"{args.ckpt} does not fit the reader: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    reader.eval()
    ids = None
    if args.limit:
        answerable = sorted(q.id for q in dev_corpus.questions if q.answers)
        ids = set(random.Random(params.seed).sample(answerable, min(args.limit, len(answerable))))
    bench = AnsweringBench(
        params, dev_corpus, RagEngine(retriever, dev_index, params), SPLITS, question_ids=ids
    )
    answerer = ReaderAnswerer(reader, dev_index)
    scores, rows = {"heuristic": heuristic_scores(bench, dev_index)}, []
    rows.append({"system": "heuristic (top region)", "anls": float(scores["heuristic"].mean())})
    for system in args.systems.split(","):
        s, tokens = per_question(bench, answerer, system, "refine")
        scores[system] = s
        rows.append({"system": system, "mode": "refine", "anls": float(s.mean()), **tokens})
        print(json.dumps(rows[-1]), flush=True)
    for mode in [m for m in args.modes.split(",") if m]:
        if (
            mode == "none"
        ):  # the same contexts, their visual tokens not handed over (encode keeps top_m)
            blind = ReaderAnswerer(reader, dev_index)
            blind.p = params.reader.model_copy(update={"top_m": 0})
            s, tokens = per_question(bench, blind, "regionops", "refine")
        else:
            s, tokens = per_question(bench, answerer, "regionops", mode)
        scores[f"regionops:{mode}"] = s
        rows.append({"system": "regionops", "mode": mode, "anls": float(s.mean()), **tokens})
        print(json.dumps(rows[-1]), flush=True)
    comparisons = []
    for variant, reference in [
        ("regionops", "heuristic"),
        ("regionops", "page_level"),
        ("oracle", "regionops"),
        *(("regionops", f"regionops:{m}") for m in args.modes.split(",") if m),
    ]:
        if variant in scores and reference in scores:
            comparisons.append(
                {
                    "variant": variant,
                    "reference": reference,
                    **paired_difference(scores[variant][None], scores[reference][None]),
                }
            )
    by_kind: dict[str, dict[str, float]] = {}
    for name in ("regionops", "heuristic"):
        if name in scores:
            for kind in sorted({getattr(it.question, "type", None) or "?" for it in bench.items}):
                mask = np.array(
                    [(getattr(it.question, "type", None) or "?") == kind for it in bench.items]
                )
                by_kind.setdefault(kind, {"n": int(mask.sum())})[name] = float(
                    scores[name][mask].mean()
                )
    result = {
        "ckpt": str(args.ckpt),
        "dev_questions": len(bench.items),
        "limit": args.limit,
        "evidence_at_1": float(
            np.mean(
                [bool(it.regions) and evidence_in(it.regions[0], it.question) for it in bench.items]
            )
        ),
        "evidence_at_k": float(
            np.mean([any(evidence_in(r, it.question) for r in it.regions) for it in bench.items])
        ),
        "rows": rows,
        "comparisons": comparisons,
        "by_kind": by_kind,
        "reader_params": {k: v for k, v in params.flat().items() if k.startswith("reader.")},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / ".score.json.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out / "score.json")
    print(json.dumps({k: v for k, v in result.items() if k != "reader_params"}, indent=1))


if __name__ == "__main__":
    main()
