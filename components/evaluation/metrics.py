"""Retrieval, localisation and answer metrics (docs/design.md §7).

Per-question functions return a float, or None when the gold field the metric needs is
missing; ``MetricAccumulator`` averages only the defined values and counts them, so a
question without a box lowers ``n_with_box`` instead of being scored as a miss.
"""

from __future__ import annotations

import math
import re
import string
from collections import defaultdict
from collections.abc import Iterable, Sequence

from rapidfuzz.distance import Levenshtein

ANLS_THRESHOLD = 0.5


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


# ----------------------------------------------------------------------------- regions
def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def region_hit(
    top_page: str | None, top_box: Sequence[float] | None, gold_page: str, gold_box: Sequence[float],
    threshold: float,
) -> float:
    """1 when the top-ranked region is on the gold page and overlaps the gold box with IoU >= threshold."""
    if top_page is None or top_box is None or top_page != gold_page:
        return 0.0
    return float(iou(top_box, gold_box) >= threshold)


# ----------------------------------------------------------------------------- answers
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalise_answer(text: str) -> str:
    """SQuAD-style: lowercase, drop punctuation and articles, collapse whitespace."""
    text = _ARTICLES.sub(" ", str(text).lower().translate(_PUNCT))
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float | None:
    if not answers:
        return None
    pred = normalise_answer(prediction)
    return float(any(pred == normalise_answer(a) for a in answers))


def anls(prediction: str, answers: Sequence[str], threshold: float = ANLS_THRESHOLD) -> float | None:
    """DocVQA ANLS for one question: max over gold answers of 1 - NL if NL < threshold, else 0.

    Strings are compared lowercased with surrounding/multiple whitespace collapsed, as in the
    DocVQA evaluation script; NL is the Levenshtein distance over the longer length.
    """
    if not answers:
        return None
    pred = " ".join(str(prediction).lower().split())
    best = 0.0
    for gold in answers:
        g = " ".join(str(gold).lower().split())
        nl = Levenshtein.normalized_distance(pred, g)
        best = max(best, 1.0 - nl if nl < threshold else 0.0)
    return best


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
