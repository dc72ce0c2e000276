"""One condition of a ``reader_real`` run paired with one of another run, over their common seeds.

``reader_real.py`` pairs conditions only within one run; a sweep continued in a second run (e.g.
ρ = 1/2 and 2/3 after ρ = 0 and the configured 1/3) is compared here. Both runs must have scored
the same dev questions in the same order (``question_ids``); the paired difference is
``components.evaluation.paired.paired_difference`` over seeds × questions. E.g.
``python -m scripts.experiments.reader_runs_paired RUN_A.json RUN_B.json
--variant main/regionops --reference rho=0.50/regionops``: the variant is looked up in RUN_A,
the reference in RUN_B (give the same file twice to pair within one run).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("variant_run", type=Path)
    ap.add_argument("reference_run", type=Path)
    ap.add_argument("--variant", required=True, help="CONDITION/SYSTEM, e.g. main/regionops")
    ap.add_argument("--reference", required=True, help="CONDITION/SYSTEM, e.g. rho=0.50/regionops")
    args = ap.parse_args()
    a = json.loads(args.variant_run.read_text("utf-8"))
    b = json.loads(args.reference_run.read_text("utf-8"))
    if a["question_ids"] != b["question_ids"]:
        raise SystemExit("the two runs scored different dev questions; they cannot be paired")
    va = scores_by_seed(a, *args.variant.split("/", 1))
    rb = scores_by_seed(b, *args.reference.split("/", 1))
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
