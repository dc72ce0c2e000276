"""Retrieval, localisation and answer metrics (docs/design.md §7).

Per-question functions return a float, or None when the gold field the metric needs is
missing; ``MetricAccumulator`` averages only the defined values and counts them, so a
question without a box lowers ``n_with_box`` instead of being scored as a miss.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

# Answer and box scores live below every layer that needs them (components.text, components.boxes):
# re-exported here, the evaluation's one metrics namespace.
from components.boxes import iou, region_hit  # noqa: F401
from components.text import ANLS_THRESHOLD, anls, exact_match, normalise_answer  # noqa: F401


# ----------------------------------------------------------------------------- pages
def rank_of(ranked: Sequence[str], gold: str) -> int | None:
    """1-based rank of ``gold`` in ``ranked`` (None if absent)."""
    for i, pid in enumerate(ranked):
        if pid == gold:
            return i + 1
    return None


def recall_at_k(ranked: Sequence[str], gold: str, k: int) -> float:
    rank = rank_of(ranked, gold)
    return float(rank is not None and rank <= k)


def ndcg_at_k(ranked: Sequence[str], gold: str, k: int) -> float:
    """One relevant page: DCG = 1/log2(rank+1) within the top k; the ideal DCG is 1."""
    rank = rank_of(ranked, gold)
    return 1.0 / math.log2(rank + 1) if rank is not None and rank <= k else 0.0


def reciprocal_rank(ranked: Sequence[str], gold: str) -> float:
    rank = rank_of(ranked, gold)
    return 1.0 / rank if rank is not None else 0.0


# ----------------------------------------------------------------------------- aggregation
def percentile(values: Iterable[float], q: float) -> float | None:
    vals = sorted(values)
    if not vals:
        return None
    pos = (len(vals) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


class MetricAccumulator:
    """Means over the questions where each metric is defined, with the count per metric."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, name: str, value: float | None) -> None:
        if value is None:
            return
        self.sums[name] += float(value)
        self.counts[name] += 1

    def means(self) -> dict[str, float | None]:
        return {k: (self.sums[k] / self.counts[k] if self.counts[k] else None) for k in self.sums}
