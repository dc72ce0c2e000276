"""How many questions' served output (top page and top box) differ between evaluations.

The paired intervals of ``seed_runs_paired`` count hits; this counts outputs, so "training does
not move the fused decision" is a figure: ``python -m scripts.experiments.output_changes
REFERENCE/per_question.jsonl RUN/per_question.jsonl… [--systems regionops regionops_dense]``
prints, per run and system, the questions (scored in both) whose top page or top box differs
from the reference's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def outputs(path: Path, system: str) -> dict[str, tuple]:
    out = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            o = record["outputs"][system]
            out[record["id"]] = (o["page"], tuple(o["box"] or ()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("reference", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--systems", nargs="+", default=["regionops", "regionops_dense"])
    args = ap.parse_args()
    for run in args.runs:
        counts = {}
        for system in args.systems:
            ref, new = outputs(args.reference, system), outputs(run, system)
            common = ref.keys() & new.keys()
            counts[system] = f"{sum(ref[q] != new[q] for q in common)} of {len(common)}"
        print(json.dumps({"run": str(run), "differ": counts}))


if __name__ == "__main__":
    main()
