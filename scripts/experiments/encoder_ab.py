"""Page encoding side by side on the same pages (ADR 11, ADR 15).

- threads: torch's default intra-op thread count against ``index.encode_threads``, in alternating
  rounds (ADR 11: one thread beat two on the loaded 2-core machine);
- workers: one process against ``index.encode_workers`` processes, in ABBA order; worker start-up
  (spawn, model load) is inside the parallel figure, as it is in an index build (ADR 15).
Both report the largest feature difference (settings must not change the features).

    python -m scripts.experiments.encoder_ab --pages 256 --model data/model
"""

from __future__ import annotations

import time

import numpy as np

from components.bench.corpus import encode_all
from components.index.parallel_encode import effective_workers
from scripts.experiments.common import bench, emit, parser

THREADS_AB_PAGES = 64
THREADS_AB_ROUNDS = 2
WORKERS_AB_PAGES = 256


def threads_ab(model, corpus, pages: list, threads: int) -> dict:
    import torch

    from components.model.encode import encode_pages

    settings = {"default": torch.get_num_threads(), "configured": threads}  # default: one per core
    seconds = {name: 0.0 for name in settings}
    outputs = {}
    for _ in range(THREADS_AB_ROUNDS):
        for name, n in settings.items():
            start = time.perf_counter()
            outputs[name] = encode_pages(model, corpus, pages, progress=False, threads=n)
            seconds[name] += time.perf_counter() - start
    rate = {name: round(len(pages) * THREADS_AB_ROUNDS / s, 2) for name, s in seconds.items()}
    return {
        "pages": len(pages),
        "rounds": THREADS_AB_ROUNDS,
        "threads": settings,
        "pages_per_s": rate,
        "speedup": round(rate["configured"] / rate["default"], 2),
        "max_abs_feature_diff": float(np.abs(outputs["default"] - outputs["configured"]).max()),
    }


def workers_ab(model, corpus, pages: list, export, workers: int, threads: int) -> dict | None:
    n = effective_workers(len(pages), workers)
    if n < 2:
        return None
    seconds = {"serial": 0.0, "parallel": 0.0}
    outputs = {}
    for name in ("serial", "parallel", "parallel", "serial"):
        start = time.perf_counter()
        outputs[name] = encode_all(
            model, corpus, pages, export, 1 if name == "serial" else n, threads, progress=False
        )
        seconds[name] += time.perf_counter() - start
    rate = {name: round(2 * len(pages) / s, 2) for name, s in seconds.items()}
    return {
        "pages": len(pages),
        "rounds": 2,
        "workers": n,
        "threads": threads,
        "pages_per_s": rate,
        "speedup": round(rate["parallel"] / rate["serial"], 2),
        "max_abs_feature_diff": float(np.abs(outputs["serial"] - outputs["parallel"]).max()),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    with bench(args, encode=False) as b:
        pages, ix = b.corpus.pages, b.params.index
        emit(
            args,
            {
                "trained_model": b.trained,
                "threads_ab": threads_ab(
                    b.model, b.corpus, pages[:THREADS_AB_PAGES], ix.encode_threads
                ),
                "workers_ab": workers_ab(
                    b.model,
                    b.corpus,
                    pages[:WORKERS_AB_PAGES],
                    b.export,
                    ix.encode_workers,
                    ix.encode_threads,
                ),
            },
        )


if __name__ == "__main__":
    main()
