"""Several seeds' evaluations (``per_question.jsonl``, one per seed) as 3-seed means with paired
intervals: each system's mean per metric, and the paired differences of ``--system`` against
``--against`` systems.

Row s of every matrix is seed run s, column j the same question in every run (questions scored
in all runs; the rest are counted and left out). By default a reference system is read from the
same run as the variant (e.g. ``lexical_only``, which no seed changes); with
``--reference-runs`` it is read from the run of the same position in that list, which pairs two
trainings seed by seed (e.g. hybrid against global-only). The interval is
``components.evaluation.paired.paired_difference``'s two-level bootstrap (seeds, then
questions). E.g. ``python -m scripts.experiments.seed_runs_paired S13/per_question.jsonl
S14/per_question.jsonl S15/per_question.jsonl --system regionops --against lexical_only
bm25_blocks dense_blocks``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from components.evaluation.paired import paired_difference


def read_run(path: Path) -> dict[str, dict]:
    """question id -> that question's per-system scores."""
    rows = (json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip())
    return {r["id"]: r["scores"] for r in rows}


def matrix(runs: list[dict], ids: list[str], system: str, metric: str) -> np.ndarray:
    """[runs, questions] of one system's metric (NaN where a question has no such score)."""
    out = np.full((len(runs), len(ids)), np.nan)
    for s, run in enumerate(runs):
        for j, qid in enumerate(ids):
            value = run[qid].get(system, {}).get(metric)
            if value is not None:
                out[s, j] = float(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", type=Path, help="per_question.jsonl, one per seed")
    ap.add_argument(
        "--reference-runs", nargs="+", type=Path, help="the reference's runs, seed by seed"
    )
    ap.add_argument("--system", default="regionops")
    ap.add_argument("--reference-system", help="with --reference-runs: the system read there")
    ap.add_argument("--against", nargs="+", default=["lexical_only", "bm25_blocks", "dense_blocks"])
    ap.add_argument("--metrics", nargs="+", default=["page_r1", "region_hit1"])
    ap.add_argument(
        "--only-ids", type=Path, help="score only the question ids in this file (one per line)"
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    runs = [read_run(p) for p in args.runs]
    refs = [read_run(p) for p in args.reference_runs] if args.reference_runs else runs
    if len(refs) != len(runs):
        raise SystemExit(f"{len(runs)} runs but {len(refs)} reference runs: pair them seed by seed")
    common = set.intersection(*(set(r) for r in runs + refs))
    if args.only_ids:
        wanted = set(args.only_ids.read_text("utf-8").split())
        common &= wanted
        print(f"--only-ids: {len(wanted)} ids listed, {len(common)} scored in every run")
    ids = sorted(common)
    left_out = max(len(r) for r in runs + refs) - len(ids)
    systems = sorted(set.union(*(set(runs[0][q]) for q in ids))) if ids else []
    means = {
        name: {
            m: [round(float(np.nanmean(row)), 4) for row in matrix(runs, ids, name, m)]
            for m in args.metrics
        }
        for name in systems
    }
    pairs = []
    against = [args.reference_system or args.system] if args.reference_runs else args.against
    for other in against:
        for metric in args.metrics:
            v, r = matrix(runs, ids, args.system, metric), matrix(refs, ids, other, metric)
            both = ~(np.isnan(v).any(0) | np.isnan(r).any(0))
            d = paired_difference(v[:, both], r[:, both])
            label = f"{other} (reference runs)" if args.reference_runs else other
            pairs.append({"system": args.system, "against": label, "metric": metric, **d})
            print(
                f"{args.system} - {label} {metric}: {d['difference']:+.3f} "
                f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] over {d['seeds']} seeds x "
                f"{d['questions']} questions; per seed {[round(x, 3) for x in d['per_seed']]}"
            )
    for name, by_metric in means.items():
        cells = ", ".join(
            f"{m} {np.mean(vals):.3f} (seeds {vals})" for m, vals in by_metric.items()
        )
        print(f"{name}: {cells}")
    print(f"{len(ids)} questions in every run; {left_out} left out")
    if args.out:
        payload = {"runs": [str(p) for p in args.runs], "means": means, "paired": pairs}
        args.out.write_text(json.dumps(payload, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
