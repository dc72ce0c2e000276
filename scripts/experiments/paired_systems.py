"""Paired differences between systems of one evaluation (``per_question.jsonl``), with intervals.

For each metric, the questions on which both systems have a score; the paired question
bootstrap of ``components.evaluation.paired.paired_difference`` (one seed). E.g.
``python -m scripts.experiments.paired_systems OUT/per_question.jsonl --system regionops
--against lexical_only bm25_blocks dense_blocks``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from components.evaluation.paired import paired_difference


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("per_question", type=Path)
    ap.add_argument("--system", default="regionops")
    ap.add_argument("--against", nargs="+", default=["lexical_only", "bm25_blocks", "dense_blocks"])
    ap.add_argument("--metrics", nargs="+", default=["page_r1", "region_hit1"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.per_question.read_text("utf-8").splitlines()]
    table = []
    for other in args.against:
        for metric in args.metrics:
            pairs = [
                (r["scores"][args.system][metric], r["scores"][other][metric])
                for r in rows
                if r["scores"][args.system].get(metric) is not None
                and r["scores"][other].get(metric) is not None
            ]
            v, ref = np.array([[p[0] for p in pairs]]), np.array([[p[1] for p in pairs]])
            d = paired_difference(v, ref)
            table.append({"system": args.system, "against": other, "metric": metric, **d})
            print(
                f"{args.system} - {other} {metric}: {d['difference']:+.3f} "
                f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] over {d['questions']} questions"
            )
    if args.out:
        args.out.write_text(json.dumps(table, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
