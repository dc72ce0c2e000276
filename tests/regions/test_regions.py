"""Region extraction on hand-made heatmaps: thresholds, components, boxes, scores, ranking, rasterisation."""

from __future__ import annotations

import numpy as np
import pytest

from components.config import RegionParams
from components.regions.extract import (
    box_to_cells,
    cells_to_box,
    extract_regions,
    rank_regions,
    threshold_mask,
)


def heat(grid: int = 8) -> np.ndarray:
    h = np.zeros((grid, grid), dtype=np.float32)
    h[1:3, 1:4] = 0.9  # region A: rows 1-2, cols 1-3
    h[2, 2] = 1.0
    h[6, 6] = 0.85  # region B: one cell
    h[6, 4] = 0.8  # two cells from B: joins it only with neighbour range 2
    return h


def test_box_to_cells_edges():
    # A box on exact cell edges covers exactly those cells, no float spill into neighbours.
    m = box_to_cells((0.25, 0.5, 0.5, 0.75), 4)
    assert m.sum() == 1 and m[2, 1]
    # A box slightly over an edge owns the next cell too.
    assert box_to_cells((0.25, 0.5, 0.51, 0.75), 4)[2, 1:3].all()
    # A tiny box inside one cell still gives one cell; a zero-area box too.
    assert box_to_cells((0.01, 0.01, 0.02, 0.02), 4).sum() == 1
    assert box_to_cells((0.5, 0.5, 0.5, 0.5), 4)[2, 2]
    # The full page covers the full grid; the bottom-right border maps to the last cell.
    assert box_to_cells((0, 0, 1, 1), 4).all()
    assert (
        box_to_cells((0.9, 0.9, 1.0, 1.0), 4).sum() == 1
        and box_to_cells((0.9, 0.9, 1.0, 1.0), 4)[3, 3]
    )
    with pytest.raises(ValueError):
        box_to_cells((0.5, 0.1, 0.2, 0.3), 4)


def test_cells_to_box_roundtrip_and_padding():
    m = np.zeros((8, 8), dtype=bool)
    m[1:3, 1:4] = True
    assert cells_to_box(m) == (1 / 8, 1 / 8, 4 / 8, 3 / 8)
    assert cells_to_box(m, padding=1) == (0.0, 0.0, 5 / 8, 4 / 8)
    assert (box_to_cells(cells_to_box(m), 8) == m).all()


def test_threshold_strategies():
    h = heat()
    assert threshold_mask(h, "absolute", 0.85).sum() == 7  # region A (6 cells) and B
    assert threshold_mask(h, "absolute", 0.95).sum() == 1  # the peak only
    assert (
        threshold_mask(h, "relative", 0.86).sum() == 6
    )  # >= 0.86 of the way from the minimum (0) to the peak
    assert threshold_mask(h - 1.0, "relative", 0.86).sum() == 6  # negative scores: same cells
    assert threshold_mask(h, "relative", 0.5).sum() == 8
    # Top quantile 0.9 of 64 cells: the 90th percentile lies between 0.8 and 0.85, so 7 cells pass.
    assert threshold_mask(h, "quantile", 0.9).sum() == 7
    with pytest.raises(ValueError):
        threshold_mask(h, "median", 0.5)


def test_extract_regions_components_boxes_and_ranking():
    params = RegionParams(
        threshold="absolute",
        threshold_value=0.5,
        neighbour_range=1,
        score="max",
        max_regions_per_page=5,
    )
    regions = extract_regions(heat(), params, page_id="p#0")
    assert [r.n_cells for r in regions] == [6, 1, 1]
    top = regions[0]
    assert top.page_id == "p#0" and top.score == pytest.approx(1.0)
    assert top.box == (1 / 8, 1 / 8, 4 / 8, 3 / 8)
    # Neighbour range 2 bridges the one-cell gap between B and its neighbour.
    wide = extract_regions(heat(), params.model_copy(update={"neighbour_range": 2}))
    assert [r.n_cells for r in wide] == [6, 2]
    assert wide[1].box == (4 / 8, 6 / 8, 7 / 8, 7 / 8)
    # Mean scoring and the per-page cap.
    mean = extract_regions(
        heat(), params.model_copy(update={"score": "mean", "max_regions_per_page": 1})
    )
    assert len(mean) == 1 and mean[0].score == pytest.approx((0.9 * 5 + 1.0) / 6)


def test_extract_regions_padding_clips_to_page():
    params = RegionParams(
        threshold="absolute",
        threshold_value=0.5,
        padding=2,
        max_regions_per_page=1,
        merge_overlapping=False,
    )
    (r,) = extract_regions(heat(), params)
    assert r.box == (0.0, 0.0, 6 / 8, 5 / 8)


def test_extract_regions_rejects_bad_heatmaps():
    with pytest.raises(ValueError):
        extract_regions(np.zeros((4, 5)), RegionParams())
    bad = np.zeros((4, 4))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        extract_regions(bad, RegionParams())


def test_page_below_an_absolute_threshold_still_yields_its_best_cell():
    h = np.full((4, 4), -0.2, dtype=np.float32)
    h[1, 2] = 0.1  # every score under the threshold; this one is the page's best
    regions = extract_regions(
        h, RegionParams(threshold="absolute", threshold_value=0.5, snap="none")
    )
    assert len(regions) == 1 and regions[0].n_cells == 1
    assert regions[0].score == pytest.approx(0.1) and regions[0].box == pytest.approx(
        (0.5, 0.25, 0.75, 0.5)
    )


def test_rank_regions_across_pages():
    params = RegionParams(threshold="absolute", threshold_value=0.5)
    low = extract_regions(heat() * 0.5 + 0.3, params, page_id="low#0")
    high = extract_regions(heat(), params, page_id="high#0")
    ranked = rank_regions({"low#0": low, "high#0": high})
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert ranked[0].page_id == "high#0"
    assert len(rank_regions([low, high], k=2)) == 2


def test_overlapping_boxes_merge():
    h = np.zeros((8, 8), dtype=np.float32)
    h[0, 0:6] = 0.9  # a bar along the top ...
    h[2:6, 3] = 0.7  # ... and a separate stem whose box lies inside the bar's column span
    h[2, 1] = 0.6  # and a cell under the bar, two rows apart
    base = RegionParams(threshold="absolute", threshold_value=0.5, max_regions_per_page=5)
    apart = extract_regions(h, base.model_copy(update={"merge_overlapping": False}))
    assert len(apart) == 3
    # Padding 1 makes the bar's box reach row 1 and overlap the others' padded boxes: one region.
    padded = extract_regions(h, base.model_copy(update={"padding": 1}))
    assert len(padded) == 1 and padded[0].n_cells == 6 + 4 + 1
    assert padded[0].box == (0.0, 0.0, 7 / 8, 7 / 8)
    # Without padding the boxes do not overlap (the bar is row 0 only): nothing merges.
    assert len(extract_regions(h, base)) == 3


@pytest.mark.parametrize("r", [1, 2, 3])
def test_neighbour_range_matches_chebyshev_linking(r):
    """Oracle: cells join when a chain of cells at most r apart (Chebyshev) links them."""
    from components.regions.extract import label_components

    rng = np.random.default_rng(r)
    for _ in range(20):
        mask = rng.random((10, 10)) < 0.12
        labels, n = label_components(mask, r)
        cells = list(zip(*np.nonzero(mask)))
        parent = list(range(len(cells)))

        def find(i, parent=parent):
            while parent[i] != i:
                i = parent[i]
            return i

        for i, a in enumerate(cells):
            for j, b in enumerate(cells[:i]):
                if max(abs(a[0] - b[0]), abs(a[1] - b[1])) <= r:
                    parent[find(i)] = find(j)
        assert n == len({find(i) for i in range(len(cells))})
        for i, a in enumerate(cells):
            for j, b in enumerate(cells[:i]):
                assert (labels[a] == labels[b]) == (find(i) == find(j))


def test_tune_region_params_picks_the_setting_that_hits():
    from components.evaluation.region_tuning import tune_region_params

    rng = np.random.default_rng(0)
    heatmaps, boxes = [], []
    for _ in range(6):
        h = rng.normal(0.0, 0.05, (8, 8)).astype(np.float32)
        r, c = rng.integers(0, 6, 2)
        h[r : r + 2, c : c + 3] += 0.6  # the evidence: a 2x3 block well above the noise
        heatmaps.append(h)
        boxes.append((c / 8, r / 8, (c + 3) / 8, (r + 2) / 8))
    chosen, table = tune_region_params(heatmaps, boxes, RegionParams())
    best = max(row["hit1"] for row in table)
    assert best == 1.0 and len(table) > 50
    hits = [extract_regions(h, chosen)[0] for h in heatmaps]
    assert all(cells_to_box(r.cells) == b for r, b in zip(hits, boxes))


# ---------------------------------------------------------------- snapping to layout blocks

# Two layout blocks on an 8x8 grid: a wide, short table row across cols 1-5 of row 2 (smaller
# than its cells vertically) and a paragraph lower down.
ROW = (0.14, 0.27, 0.70, 0.33)
PARAGRAPH = (0.10, 0.70, 0.90, 0.85)


def test_region_box_snaps_to_the_block_it_lights_up():
    h = heat()
    cells_only = extract_regions(h, RegionParams(snap="none"), blocks=[ROW, PARAGRAPH])
    snapped = extract_regions(h, RegionParams(snap="block"), blocks=[ROW, PARAGRAPH])
    assert cells_only[0].box == (1 / 8, 1 / 8, 4 / 8, 3 / 8)  # the whole cells of region A
    assert snapped[0].box == ROW  # A covers row 2 where the table row lies
    assert snapped[0].score == cells_only[0].score and snapped[0].n_cells == cells_only[0].n_cells


def test_snapping_keeps_the_cell_box_without_blocks_and_merges_regions_on_one_block():
    h = heat()
    params = RegionParams(snap="block", neighbour_range=1)
    assert extract_regions(h, params, blocks=[])[0].box == (1 / 8, 1 / 8, 4 / 8, 3 / 8)
    # One block under both regions: they become one region, scored by the better of the two.
    whole = (0.0, 0.0, 1.0, 1.0)
    regions = extract_regions(h, params, blocks=[whole])
    assert len(regions) == 1 and regions[0].box == whole and regions[0].score == pytest.approx(1.0)
    assert regions[0].n_cells == int((h >= 0.8).sum())


def test_snap_prefers_the_block_with_the_hotter_cells():
    h = np.zeros((8, 8), dtype=np.float32)
    h[2, 1:6] = 0.9  # a hot row: region spans cols 1-5 of row 2
    h[3, 1:6] = 0.5
    lower = (0.14, 0.39, 0.70, 0.45)  # lies in row 3: touched by the region's cells, but cooler
    params = RegionParams(snap="block", threshold="absolute", threshold_value=0.4)
    assert extract_regions(h, params, blocks=[lower, ROW])[0].box == ROW


def test_tune_region_params_chooses_snapping_when_blocks_match_gold():
    from components.evaluation.region_tuning import tune_region_params

    heatmaps = [heat(), heat()]
    chosen, table = tune_region_params(
        heatmaps, [ROW, ROW], RegionParams(), blocks=[[ROW, PARAGRAPH]] * 2
    )
    assert chosen.snap == "block"
    assert {row["snap"] for row in table} == {"none", "block"}
    best_none = max(r["hit1"] for r in table if r["snap"] == "none")
    assert best_none < 1.0 and max(r["hit1"] for r in table) == 1.0
