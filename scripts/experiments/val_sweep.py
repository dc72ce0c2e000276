"""Sweep one training parameter and choose on val (ADR 23): train once per value, read each run's
val figures for its exported weights from ``train_run.json``, pick the best ``val/fused``
(page R@1 + region hit@1 of dense + lexical as served, over the val split). Never the real dev set.

Run from the repository root, e.g.
``python -m scripts.experiments.val_sweep --key train.lambda_local --values 0.01,0.03,0.1,0.3
--out runs/sweep_lambda [--set train.max_steps=150 ...]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

FIGURES = ("val/fused", "val/fused_page_r1", "val/fused_region_hit1", "val/page_r1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--key", required=True, help="parameter to sweep, e.g. train.lambda_local")
    ap.add_argument("--values", required=True, help="comma-separated values")
    ap.add_argument(
        "--out", required=True, type=Path, help="one training export per value goes here"
    )
    ap.add_argument(
        "--set", action="append", default=[], dest="overrides", help="extra --set for every run"
    )
    args = ap.parse_args()
    rows = []
    for value in args.values.split(","):
        run_dir = args.out / f"{args.key.split('.')[-1]}={value}"
        if not (run_dir / "train_run.json").is_file():
            cmd = [
                sys.executable,
                "-m",
                "components.cli",
                "train",
                "--out",
                str(run_dir),
                "--set",
                f"{args.key}={value}",
                *[a for o in args.overrides for a in ("--set", o)],
            ]
            print(" ".join(cmd), file=sys.stderr, flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        run = json.loads((run_dir / "train_run.json").read_text())
        rows.append(
            {
                "value": value,
                "exported_step": run["exported_step"],
                **{k: run["final"].get(k) for k in FIGURES},
            }
        )
    best = max(rows, key=lambda r: r["val/fused"] if r["val/fused"] is not None else -1)
    result = {"key": args.key, "overrides": args.overrides, "rows": rows, "chosen": best["value"]}
    (args.out / "sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
