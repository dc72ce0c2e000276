"""Box geometry scores (IoU, the region hit) shared by the evaluation, the retriever's fused val
selection and region tuning, at the bottom of the import layers so none of them imports another."""

from __future__ import annotations

from collections.abc import Sequence


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def region_hit(
    top_page: str | None,
    top_box: Sequence[float] | None,
    gold_page: str,
    gold_box: Sequence[float],
    threshold: float,
) -> float:
    """1 when the top-ranked region is on the gold page and overlaps the gold box with IoU >= threshold."""
    if top_page is None or top_box is None or top_page != gold_page:
        return 0.0
    return float(iou(top_box, gold_box) >= threshold)
