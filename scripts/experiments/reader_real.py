"""Reader on the real dev set: trained on real train pages + synthetic, scored with retrieved regions.

Studies (``--studies``, each reader trained from scratch per seed; retrieval on dev runs once):
  main    the configured reader: dev ANLS with the retriever's top-k regions (regionops), whole
          pages under the same budget rule (page_level), clean contexts (oracle), and the
          text-layer heuristic over the top region (what serves without a reader); tokens passed;
  tokens  visual tokens by refine vs avgpool vs random vs none (top_m = 0), retrieved regions;
  noise   rho in --rhos, on clean (oracle) and retrieved (regionops) contexts;
Paired intervals: components/evaluation/paired.py (seeds x questions bootstrap) against the
reference condition of each study. Writes reports/reader_real.json and reports/reader_real.md.

    PYTHONPATH=$PWD python scripts/experiments/reader_real.py --model MODEL \\
        --synthetic data/corpus --synthetic-index INDEX_OF_MODEL \\
        --train-set REALDOCS/train --dev-set REALDOCS/dev --regions-from real_regions.json \\
        --studies main,noise --rhos 0 --seeds 13,14,15 --steps 150 --limit 0

The dev set is only scored (its cache is reader-eval-pages/, which training never reads).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np

from components.config import load_params
from components.data.corpus import load_corpus
from components.evaluation import metrics as M
from components.evaluation.answering import AnsweringBench
from components.evaluation.paired import paired_difference
from components.index.region_index import RegionIndex
from components.model.io import load_retriever, retriever_dir
from components.rag.answer import answer_from_region
from components.rag.engine import RagEngine
from components.reader.answerer import ReaderAnswerer
from components.reader.real_pages import prepare_real_pages
from components.reader.train import train_reader
from components.settings import configure_environment

SPLITS = ("train", "val", "test")  # imported documents are hash-split; the dev set is scored whole


def per_question(
    bench: AnsweringBench, answerer, system: str, mode: str
) -> tuple[np.ndarray, dict]:
    """ANLS per bench item (0 for an item the system did not answer) and the mean tokens passed."""
    scores = np.zeros(len(bench.items))
    answered = bench.answers(answerer, system, mode)
    for i, a in answered:
        scores[i] = M.anls(a.answer, bench.items[i].question.answers)
    tokens = {
        "text_tokens": float(np.mean([a.text_tokens for _, a in answered])) if answered else None,
        "visual_tokens": float(np.mean([a.visual_tokens for _, a in answered]))
        if answered
        else None,
    }
    return scores, tokens


def heuristic_scores(bench: AnsweringBench, index) -> np.ndarray:
    """The text-layer heuristic over each question's top retrieved region (the served fallback)."""
    out = np.zeros(len(bench.items))
    for i, it in enumerate(bench.items):
        if it.regions:
            r = it.regions[0]
            out[i] = M.anls(
                answer_from_region(it.text, index.meta(r.page_id).words, r.box), it.question.answers
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--synthetic", type=Path, required=True)
    ap.add_argument("--synthetic-index", type=Path, required=True)
    ap.add_argument("--train-set", type=Path, required=True)
    ap.add_argument("--dev-set", type=Path, required=True)
    ap.add_argument("--studies", default="main")
    ap.add_argument("--seeds", default="13")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--rhos", default="0,0.3333,0.5,0.6667")
    ap.add_argument(
        "--limit", type=int, default=0, help="score a seeded subset of this many dev questions"
    )
    ap.add_argument(
        "--set", action="append", default=[], help="reader param override, e.g. contexts=3"
    )
    ap.add_argument(
        "--params-set",
        action="append",
        default=[],
        help="any params.yaml override, e.g. index.candidates=128 (to retrieve as an earlier run did)",
    )
    ap.add_argument("--out", type=Path, default=Path("reports"))
    ap.add_argument(
        "--regions-from",
        type=Path,
        help="region settings chosen on the real train set (`regionops tune-regions --out`)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    params, settings = load_params(overrides=args.params_set), configure_environment()
    updates = {"max_steps": args.steps} if args.steps else {}
    for item in args.set:
        key, _, value = item.partition("=")
        updates[key] = (
            type(getattr(params.reader, key))(value)
            if getattr(params.reader, key) is not None
            else value
        )
    params = params.model_copy(update={"reader": params.reader.model_copy(update=updates)})
    if args.regions_from:
        from components.config import RegionParams
        from components.registry.model_source import _chosen_in

        chosen = _chosen_in(args.regions_from)
        if chosen is None:
            raise SystemExit(f"--regions-from {args.regions_from}: no region settings in it")
        params = params.model_copy(update={"regions": RegionParams(**chosen)})
    retriever = load_retriever(retriever_dir(args.model))
    syn_index = RegionIndex.load(args.synthetic_index, expected_fingerprint=retriever.fingerprint)
    syn_corpus = load_corpus(args.synthetic)
    real = prepare_real_pages(
        params, args.train_set, args.model, retriever.fingerprint, settings.home / "reader-pages"
    )
    dev_corpus, dev_index = prepare_real_pages(
        params,
        args.dev_set,
        args.model,
        retriever.fingerprint,
        settings.home / "reader-eval-pages",
        for_training=False,
    )
    t0 = time.perf_counter()
    ids = None
    if args.limit:
        answerable = sorted(q.id for q in dev_corpus.questions if q.answers)
        ids = set(random.Random(params.seed).sample(answerable, min(args.limit, len(answerable))))
    bench = AnsweringBench(
        params, dev_corpus, RagEngine(retriever, dev_index, params), SPLITS, question_ids=ids
    )
    retrieval_seconds = time.perf_counter() - t0
    evidence_at_k = [
        float(any(evidence_in(r, it.question) for r in it.regions)) for it in bench.items
    ]
    evidence_at_1 = [
        float(bool(it.regions) and evidence_in(it.regions[0], it.question)) for it in bench.items
    ]
    heuristic = heuristic_scores(bench, dev_index)
    seeds = [int(s) for s in args.seeds.split(",")]
    studies = args.studies.split(",")
    rows, scores = [], {}

    def run(
        condition: str,
        seed: int,
        systems: tuple[str, ...],
        mode: str | None = None,
        **reader_updates,
    ):
        rp = params.reader.model_copy(update=reader_updates)
        p = params.model_copy(update={"seed": seed, "reader": rp})
        started = time.perf_counter()
        record, reader = train_reader(
            p,
            syn_corpus,
            args.model,
            None,
            None,
            settings,
            (retriever, syn_index),
            run_name=f"reader-real {condition} s{seed}",
            real_pages=real,
        )
        answerer = ReaderAnswerer(reader, dev_index)
        for system in systems:
            s, tokens = per_question(bench, answerer, system, mode or rp.visual_tokens)
            scores[(condition, system, seed)] = s
            rows.append(
                {
                    "condition": condition,
                    "system": system,
                    "seed": seed,
                    "n": len(s),
                    "anls": float(s.mean()),
                    **tokens,
                    "train_seconds": record["seconds"],
                    "steps": record["steps"],
                    "counts": record["counts"],
                    "wall_seconds": round(time.perf_counter() - started, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)

    def report(seeds_done: list[int]) -> None:
        comparisons = []

        def compare(variant: tuple[str, str], reference: tuple[str, str]):
            have = [
                s
                for s in seeds_done
                if (variant[0], variant[1], s) in scores
                and (reference[0], reference[1], s) in scores
            ]
            if have:
                v = np.stack([scores[(*variant, s)] for s in have])
                r = np.stack([scores[(*reference, s)] for s in have])
                comparisons.append(
                    {
                        "variant": "/".join(variant),
                        "reference": "/".join(reference),
                        **paired_difference(v, r),
                    }
                )

        if "main" in studies:
            compare(("main", "regionops"), ("main", "page_level"))
            for s in seeds_done:
                scores[("heuristic", "regionops", s)] = heuristic
            compare(("main", "regionops"), ("heuristic", "regionops"))
        if "tokens" in studies and "main" in studies:
            for mode in ("avgpool", "random", "none"):
                compare(("main", "regionops"), (f"tokens={mode}", "regionops"))
        if "noise" in studies:
            rhos = [float(r) for r in args.rhos.split(",")]
            for rho in rhos[1:]:
                for system in ("regionops", "oracle"):
                    compare((f"rho={rho:.2f}", system), (f"rho={rhos[0]:.2f}", system))
            if "main" in studies:  # the configured rho (main) against each swept one
                for rho in rhos:
                    for system in ("regionops", "oracle"):
                        compare(("main", system), (f"rho={rho:.2f}", system))
        result = {
            "dev_questions": len(bench.items),
            "limit": args.limit,
            "seeds": seeds_done,
            "retrieval_seconds": round(retrieval_seconds, 1),
            "evidence_at_1": float(np.mean(evidence_at_1)),
            "evidence_at_k": float(np.mean(evidence_at_k)),
            "dev_retrieved_rho": 1
            - float(
                np.mean(
                    [
                        np.mean([evidence_in(r, it.question) for r in it.regions])
                        for it in bench.items
                        if it.regions
                    ]
                )
            ),
            "heuristic_top1_anls": float(heuristic.mean()),
            "reader_params": {k: v for k, v in params.flat().items() if k.startswith("reader.")},
            "rows": rows,
            "comparisons": comparisons,
            "question_ids": [it.question.id for it in bench.items],
            "per_question": {
                f"{c}|{sy}|{se}": [round(float(x), 4) for x in v]
                for (c, sy, se), v in scores.items()
            },
        }
        args.out.mkdir(parents=True, exist_ok=True)
        name = "reader_real" + ("" if studies == ["main"] else "_" + "_".join(studies))
        tmp = args.out / f".{name}.json.tmp"
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, args.out / f"{name}.json")
        lines = [
            f"# Reader on real dev ({len(bench.items)} questions, seeds {seeds_done})",
            "",
            (
                f"evidence@1 {result['evidence_at_1']:.3f}, evidence@k {result['evidence_at_k']:.3f}, "
                f"measured rho of the top-k {result['dev_retrieved_rho']:.3f}, "
                f"heuristic (top region) ANLS {result['heuristic_top1_anls']:.4f}"
            ),
            "",
            "| condition | system | seed | ANLS | text tok | visual tok | steps | train s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['condition']} | {r['system']} | {r['seed']} | {r['anls']:.4f} | {r['text_tokens']:.1f} | "
                f"{r['visual_tokens']:.1f} | {r['steps']} | {r['train_seconds']} |"
            )
        lines += ["", "| variant | reference | diff | 95% CI | seeds |", "|---|---|---|---|---|"]
        for c in comparisons:
            ci = f"[{c['ci_low']:.4f}, {c['ci_high']:.4f}]" if c["ci_low"] is not None else ""
            lines.append(
                f"| {c['variant']} | {c['reference']} | {c['difference']:.4f} | {ci} | {c['seeds']} |"
            )
        (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))

    for seed in seeds:
        if "main" in studies:
            run("main", seed, ("regionops", "page_level", "oracle"))
        if "tokens" in studies:
            for mode in ("avgpool", "random"):
                run(f"tokens={mode}", seed, ("regionops",), visual_tokens=mode)
            run("tokens=none", seed, ("regionops",), top_m=0)
        if "noise" in studies:
            for rho in (float(r) for r in args.rhos.split(",")):
                run(f"rho={rho:.2f}", seed, ("oracle", "regionops"), noise_rho=rho)
        report(seeds[: seeds.index(seed) + 1])  # partial results survive a stop


def evidence_in(region, question) -> bool:
    from components.evaluation.answering import evidence_hit

    return bool(evidence_hit(region, question))


if __name__ == "__main__":
    main()
