"""One question encoded by MiniLM's eager forward against its TorchScript-frozen graph (ADR 15),
alternating question by question, with the largest difference between the two query vectors.

    python -m scripts.experiments.query_encode_ab --pages 1000 --model data/model
"""

from __future__ import annotations

import time

import numpy as np

from scripts.experiments.common import ab_sample, bench, emit, p50, parser


def query_encode_ab(model, texts: list[str]) -> dict:
    from components.model.encode import encode_queries
    from components.model.frozen_text import eager_only

    encode_queries(model, texts[:1])  # warm-up: the first call builds the frozen graph
    ms: dict[str, list[float]] = {"eager": [], "traced": []}
    diff = 0.0
    for text in texts:
        out = {}
        for name, times in ms.items():
            t0 = time.perf_counter()
            if name == "eager":
                with eager_only():
                    out[name] = encode_queries(model, [text])
            else:
                out[name] = encode_queries(model, [text])
            times.append((time.perf_counter() - t0) * 1e3)
        diff = max(diff, float(np.abs(out["eager"] - out["traced"]).max()))
    medians = {name: p50(v) for name, v in ms.items()}
    return {
        "questions": len(texts),
        "p50_ms": medians,
        "speedup": round(medians["eager"] / medians["traced"], 2),
        "max_abs_vector_diff": diff,
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    with bench(args, encode=False) as b:
        emit(
            args,
            {
                "trained_model": b.trained,
                "query_encode_ab": query_encode_ab(
                    b.model, [q.question for q in ab_sample(b.questions)]
                ),
            },
        )


if __name__ == "__main__":
    main()
