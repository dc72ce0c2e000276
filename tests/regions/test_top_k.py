"""``top_regions``: the k best regions of every page, reading only pages that can hold one (ADR 29)."""

from __future__ import annotations

import numpy as np
import pytest

from components.regions.extract import Region, rank_regions
from components.regions.top_k import top_regions


def _region(page: int, score: float) -> Region:
    return Region(f"p{page}", (0.0, 0.0, 1.0, 1.0), score, 1, np.ones((2, 2), dtype=bool))


def _pages(rng, n: int, descending: bool) -> tuple[list[float], list[list[Region]]]:
    """Random pages: each a peak and up to 3 regions scoring at most the peak (one at the peak)."""
    peaks = rng.normal(size=n)
    if descending:
        peaks = np.sort(peaks)[::-1]
    pages = []
    for i, peak in enumerate(peaks):
        n_regions = int(rng.integers(0, 4))
        scores = [peak] + list(peak - rng.exponential(0.5, size=max(n_regions - 1, 0)))
        pages.append([_region(i, float(s)) for s in scores[:n_regions]])
    return [float(p) for p in peaks], pages


def _key(regions: list[Region]) -> list[tuple]:
    return [(r.page_id, r.score) for r in regions]


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("k", [1, 3, 5, 40])
def test_top_regions_equal_ranking_every_page_and_read_fewer_pages(descending, k):
    rng = np.random.default_rng(k + 10 * descending)
    read_counts = []
    for _ in range(50):
        peaks, pages = _pages(rng, 30, descending)
        calls = []

        def regions_of(idx, pages=pages, calls=calls):
            calls.append(list(idx))
            return [pages[i] for i in idx]

        regions, read = top_regions(peaks, regions_of, k, chunk=4)
        assert _key(regions) == _key(rank_regions(pages, k))
        assert [i for c in calls for i in c] == read == list(range(len(read)))
        assert all(len(c) <= 4 for c in calls)
        read_counts.append(len(read))
    if descending and k <= 5:
        assert np.mean(read_counts) < 15  # pages best first: a few chunks settle the top k


def test_ties_with_a_later_page_keep_page_order_as_ranking_every_page_does():
    pages = [[_region(0, 1.0), _region(0, 0.5)], [_region(1, 0.5)], [_region(2, 0.5)]]
    regions, read = top_regions([1.0, 0.5, 0.5], lambda idx: [pages[i] for i in idx], 2, chunk=1)
    assert _key(regions) == _key(rank_regions(pages, 2)) == [("p0", 1.0), ("p0", 0.5)]
    # the later pages tie the 2nd score (read: their bound is widened by BOUND_SLACK); the ranking
    # keeps page order among equal scores, so they stay out as they do ranking every page
    assert read == [0, 1, 2]


def test_a_region_at_its_page_peak_plus_float32_rounding_is_still_found():
    """A page's map peak is its ranking peak shifted back in float32: a few ulps above is possible."""
    peak = np.float32(0.7)
    above = float(np.nextafter(np.nextafter(peak, np.float32(1)), np.float32(1)))
    pages = [[_region(0, float(peak))], [_region(1, above)]]
    regions, read = top_regions(
        [float(peak), float(peak)], lambda idx: [pages[i] for i in idx], 1, chunk=1
    )
    assert read == [0, 1] and regions[0].page_id == "p1"


def test_k_none_reads_every_page_and_bad_arguments_are_refused():
    pages = [[_region(0, 1.0)], [], [_region(2, 0.2)]]
    regions, read = top_regions([1.0, 0.9, 0.2], lambda idx: [pages[i] for i in idx], None, 2)
    assert read == [0, 1, 2] and _key(regions) == [("p0", 1.0), ("p2", 0.2)]
    assert top_regions([1.0], lambda idx: [pages[i] for i in idx], 0, 1) == ([], [])
    with pytest.raises(ValueError, match="chunk"):
        top_regions([1.0], lambda idx: [pages[i] for i in idx], 1, 0)
    with pytest.raises(ValueError, match="lists"):
        top_regions([1.0, 0.5], lambda idx: [], 1, 2)
