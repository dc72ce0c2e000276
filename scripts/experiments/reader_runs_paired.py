"""One condition of ``reader_real`` runs paired with another condition, over their common seeds.

``reader_real.py`` pairs conditions only within one run; a sweep continued in a second run (e.g.
ρ = 1/2 and 2/3 after ρ = 0 and the configured 1/3), or a study's later seeds run apart, is
compared here. Every run must have scored the same dev questions in the same order
(``question_ids``); each condition's seeds are gathered across the runs (a seed found twice is an
error); the paired difference is ``components.evaluation.paired.paired_difference`` over seeds ×
questions. E.g. ``python -m scripts.experiments.reader_runs_paired RUN_A.json RUN_B.json
--variant main/regionops --reference rho=0.50/regionops``, or with the token study's seeds in two
runs: ``… MAIN.json TOKENS13.json TOKENS14.json --variant main/regionops --reference
tokens=none/regionops``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from components.evaluation.paired import paired_difference


def scores_by_seed(run: dict, condition: str, system: str) -> dict[int, np.ndarray]:
    out = {}
    for key, values in run["per_question"].items():
        c, s, seed = key.split("|")
        if (c, s) == (condition, system):
            out[int(seed)] = np.asarray(values, dtype=float)
    return out


def gathered(runs: list[dict], condition: str, system: str) -> dict[int, np.ndarray]:
    """The condition's scores per seed across ``runs``; a seed scored in two runs is an error."""
    out: dict[int, np.ndarray] = {}
    for run in runs:
        for seed, values in scores_by_seed(run, condition, system).items():
            if seed in out:
                raise SystemExit(f"{condition}/{system} seed {seed} is in more than one run")
            out[seed] = values
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", type=Path, nargs="+", help="reader_real JSON files")
    ap.add_argument("--variant", required=True, help="CONDITION/SYSTEM, e.g. main/regionops")
    ap.add_argument("--reference", required=True, help="CONDITION/SYSTEM, e.g. rho=0.50/regionops")
    args = ap.parse_args()
    runs = [json.loads(path.read_text("utf-8")) for path in dict.fromkeys(args.runs)]
    if any(run["question_ids"] != runs[0]["question_ids"] for run in runs):
        raise SystemExit("the runs scored different dev questions; they cannot be paired")
    va = gathered(runs, *args.variant.split("/", 1))
    rb = gathered(runs, *args.reference.split("/", 1))
    seeds = sorted(set(va) & set(rb))
    if not seeds:
        raise SystemExit(f"no common seed: variant has {sorted(va)}, reference has {sorted(rb)}")
    d = paired_difference(np.stack([va[s] for s in seeds]), np.stack([rb[s] for s in seeds]))
    print(
        json.dumps(
            {"variant": args.variant, "reference": args.reference, "seed_list": seeds, **d},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
