"""The exact stage's cost per query, max_cell vs MaxSim (ADR 28): ``RegionIndex.heatmaps`` over
the candidate pages of a float16 index of random unit cells, one torch thread, median of runs.

    python -m scripts.experiments.maxsim_exact_stage_cost --pages 128 --tokens 20
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from components.config import IndexParams
from components.index.maxsim import TokenQuery
from components.index.region_index import PageMeta, RegionIndex


def _median_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pages", type=int, default=128, help="candidate pages scored exactly")
    ap.add_argument("--tokens", type=int, default=20, help="query word pieces")
    ap.add_argument("--grid", type=int, default=16)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cells = rng.standard_normal((args.pages, args.grid**2, args.dim)).astype(np.float32)
    cells /= np.linalg.norm(cells, axis=-1, keepdims=True)
    metas = [PageMeta(page_id=f"p{i}#0", doc=f"p{i}") for i in range(args.pages)]
    index = RegionIndex.build(metas, cells, IndexParams(storage="float16"), "bench")
    tokens = rng.standard_normal((args.tokens, args.dim)).astype(np.float32)
    tokens /= np.linalg.norm(tokens, axis=-1, keepdims=True)
    positions = np.arange(args.pages)
    result = {
        **vars(args),
        "max_cell_ms": _median_ms(lambda: index.heatmaps(positions, tokens.mean(0)), args.runs),
    }
    for rule in ("mean", "vote"):
        query = TokenQuery(tokens, rule)
        result[f"maxsim_{rule}_ms"] = _median_ms(
            lambda q=query: index.heatmaps(positions, q), args.runs
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
