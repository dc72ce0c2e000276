"""pq_residual's coding variants side by side on the same pages and questions (ADR 18, ADR 20).

- centroid_choice_ab (ADR 18): cells coded against their nearest page centroid vs the best of
  their 8 nearest (``index.pq_residual.centroid_choices``);
- coarse_range_ab (ADR 20): the 4-bit page centroids over the configured clipped range vs the
  full min-max range (``index.pq_residual.coarse_range``).
Each side is an index of the same pages answering the same questions over the dense channel
(lexical fusion off), as the ADRs measured: R@1 and region hit@1 as ratios to exact float32
exhaustive search (R@1 with its paired interval), reconstruction error and build seconds.

    python -m scripts.experiments.residual_coding_ab --pages 1000 --model data/model
"""

from __future__ import annotations

import numpy as np

from components.evaluation.metrics import iou
from components.evaluation.paired import paired_ratio
from components.regions.extract import extract_regions
from scripts.experiments.common import Bench, bench, build, emit, parser

CHOICE_AB_ALTERNATIVE = 8
CODING_AB_ERROR_PAGES = 500


def answers(b: Bench, index) -> tuple[list[bool], list[bool]]:
    """Per question: page R@1 and region hit@1 of dense search + region extraction."""
    r1, hit1 = [], []
    for q, vec in zip(b.questions, b.queries):
        hits = index.search(vec, 1)
        regions = (
            extract_regions(
                hits[0].heatmap,
                b.params.regions,
                hits[0].page_id,
                blocks=index.meta(hits[0].page_id).blocks,
            )
            if hits
            else []
        )
        top = hits[0].page_id if hits else None
        r1.append(top == q.page_id)
        hit1.append(
            bool(
                top == q.page_id
                and regions
                and iou(regions[0].box, q.box) >= b.params.evaluate.iou_hit
            )
        )
    return r1, hit1


def figures(b: Bench, update: dict) -> tuple[dict, list[bool]]:
    """One pq_residual coding: ratios to exact, reconstruction error, build seconds; and its R@1 hits."""
    index, build_s = build(b, "pq_residual", **update)
    r1, hit1 = answers(b, index)
    rows = list(range(min(len(b.cells), CODING_AB_ERROR_PAGES)))
    error = float(np.linalg.norm(index.decoded_cells(rows) - b.cells[rows], axis=-1).mean())
    return {
        "r1_ratio": float(np.mean(r1) / b.exact_r1.mean()) if b.exact_r1.any() else None,
        "hit1_ratio": float(np.mean(hit1) / b.exact_hit1.mean()) if b.exact_hit1.any() else None,
        "r1_paired": paired_ratio(r1, b.exact_r1, seed=b.params.seed),
        "reconstruction_error": round(error, 5),
        "build_s": round(build_s, 2),
    }, r1


def only_right(a: list, c: list) -> tuple[int, int]:
    a_, c_ = np.asarray(a, dtype=bool), np.asarray(c, dtype=bool)
    return int(np.sum(a_ & ~c_)), int(np.sum(c_ & ~a_))


def centroid_choice_ab(b: Bench) -> dict:
    nearest, near_r1 = figures(b, {"pq_residual.centroid_choices": 1})
    best_of, best_r1 = figures(b, {"pq_residual.centroid_choices": CHOICE_AB_ALTERNATIVE})
    best_only, nearest_only = only_right(best_r1, near_r1)
    return {
        "configured": b.params.index.pq_residual.centroid_choices,
        "choices": CHOICE_AB_ALTERNATIVE,
        "error_pages": min(len(b.cells), CODING_AB_ERROR_PAGES),
        "nearest": nearest,
        "best_of": best_of,
        "r1_only": {"best_of": best_only, "nearest": nearest_only},
    }


def coarse_range_ab(b: Bench) -> dict:
    p = b.params.index.pq_residual
    configured = {"range": p.coarse_range, "arg": p.coarse_range_arg}
    if p.coarse_range == "minmax":
        defaults = type(p)()
        other = {"range": defaults.coarse_range, "arg": defaults.coarse_range_arg}
    else:
        other = {"range": "minmax", "arg": 0.0}  # min-max takes no arg (ADR 20)
    sides = {}
    for name, side in (("configured", configured), ("other", other)):
        sides[name] = figures(
            b,
            {
                "pq_residual.coarse_range": side["range"],
                "pq_residual.coarse_range_arg": side["arg"],
            },
        )
    mine_only, other_only = only_right(sides["configured"][1], sides["other"][1])
    return {
        "configured": {**configured, **sides["configured"][0]},
        "other": {**other, **sides["other"][0]},
        "r1_only": {"configured": mine_only, "other": other_only},
        "error_pages": min(len(b.cells), CODING_AB_ERROR_PAGES),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    with bench(args) as b:
        emit(
            args,
            {
                "pages": len(b.metas),
                "queries": len(b.questions),
                "trained_model": b.trained,
                "exact_float32": {
                    "r1": float(b.exact_r1.mean()),
                    "hit1": float(b.exact_hit1.mean()),
                },
                "centroid_choice_ab": centroid_choice_ab(b),
                "coarse_range_ab": coarse_range_ab(b),
            },
        )


if __name__ == "__main__":
    main()
