"""The k best regions over candidate pages, reading only the pages that can hold one (ADR 29).

Every region's score is at most its page map's peak: a heatmap component scores its cells' max
or mean, and a text block (``regions.rule: text_blocks``) the peak less its BM25+ shortfall. So
once k regions are found, a page whose peak is below the k-th score cannot place a region in the
top k, and neither can any page after it whose peak is lower still. Pages are read in chunks, in
the order given, and the reading stops when the best peak among the pages left is below the
current k-th score: the result is ``rank_regions`` over every page's regions, region for region
(ties keep page order there, so a later page tying the k-th score would not enter either).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from components.regions.extract import Region, rank_regions

# A page map's peak as the caller derives it (e.g. shifted back onto the ranking map's peak in
# float32) may differ from the bound given here by a few float32 ulps: the bound is widened by
# this much relative to its size, so rounding can never stop the reading early.
BOUND_SLACK = 1e-5


def top_regions(
    peaks: Sequence[float],
    regions_of: Callable[[list[int]], list[list[Region]]],
    k: int | None,
    chunk: int,
) -> tuple[list[Region], list[int]]:
    """The ``k`` best regions of pages ``0..len(peaks)-1`` (all of them, best first, when ``k`` is
    None), as ``rank_regions`` would rank every page's regions, and the pages that were read.

    ``peaks[i]`` bounds every region score of page i from above; ``regions_of(pages)`` returns
    the regions of those pages (a list per page, in their order); it is called with up to
    ``chunk`` pages at a time, in page order.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if k is not None and k <= 0:
        return [], []
    bounds = np.asarray(peaks, dtype=np.float64)
    bounds = bounds + BOUND_SLACK * np.maximum(1.0, np.abs(bounds))
    # The best bound among pages i.. (reading stops on it, whatever order the pages come in).
    rest = np.maximum.accumulate(bounds[::-1])[::-1] if len(bounds) else bounds
    read: list[int] = []
    groups: list[list[Region]] = []
    while len(read) < len(bounds):
        pages = list(range(len(read), min(len(read) + chunk, len(bounds))))
        found = regions_of(pages)
        if len(found) != len(pages):
            raise ValueError(f"regions_of returned {len(found)} lists for {len(pages)} pages")
        groups.extend(found)
        read.extend(pages)
        if k is None or len(read) == len(bounds):
            continue
        best = rank_regions(groups, k)
        if len(best) == k and best[-1].score >= rest[len(read)]:
            break
    return rank_regions(groups, k), read
