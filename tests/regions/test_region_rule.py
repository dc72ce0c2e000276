"""``regions.rule``: heatmap components vs a page's layout blocks ranked by BM25+ (ADR 27)."""

from __future__ import annotations

import numpy as np
import pytest

from components.config import RegionParams
from components.evaluation.region_tuning import tune_region_params
from components.index.lexical import LexicalChannel
from components.regions.extract import extract_regions

G = 16
# Three blocks: a title, a paragraph naming "gamma", a paragraph naming "delta" twice.
BLOCKS = [[0.05, 0.02, 0.95, 0.10], [0.05, 0.30, 0.95, 0.45], [0.05, 0.60, 0.95, 0.80]]
WORDS = [
    ["Manual", 0.1, 0.03, 0.3, 0.08],
    ["gamma", 0.1, 0.32, 0.2, 0.36],
    ["setting", 0.3, 0.32, 0.4, 0.36],
    ["delta", 0.1, 0.62, 0.2, 0.66],
    ["delta", 0.3, 0.62, 0.4, 0.66],
    ["option", 0.5, 0.62, 0.6, 0.66],
]


def _heatmap_peaking_on_the_title() -> np.ndarray:
    heat = np.zeros((G, G), dtype=np.float32)
    heat[0:2, 1:15] = 1.0  # the title lights up, the answer's block does not
    return heat


def test_block_scores_are_bm25_over_blocks_and_zero_where_no_term_is_printed():
    channel = LexicalChannel([WORDS, [["other", 0.1, 0.1, 0.2, 0.2]]], G, [BLOCKS, [[0, 0, 1, 1]]])
    scores = channel.block_scores("where is delta set?", 0)
    assert scores.shape == (3,) and scores[0] == 0 and scores[1] == 0 and scores[2] > 0
    assert channel.block_scores("gamma and delta", 0)[1] > 0
    assert not channel.block_scores("nothing printed", 0).any()
    assert channel.block_scores("delta", 1).tolist() == [0.0]


def test_text_blocks_rule_picks_the_best_bm25_block_and_keeps_the_page_peak_as_its_score():
    channel = LexicalChannel([WORDS], G, [BLOCKS])
    heat = _heatmap_peaking_on_the_title()
    scores = channel.block_scores("delta option", 0)
    by_heatmap = extract_regions(heat, RegionParams(), "p", blocks=BLOCKS, text_scores=scores)
    assert by_heatmap[0].box == tuple(BLOCKS[0])  # rule heatmap ignores the text scores
    rule = RegionParams(rule="text_blocks")
    regions = extract_regions(heat, rule, "p", blocks=BLOCKS, text_scores=scores)
    assert [r.box for r in regions] == [tuple(BLOCKS[2])]  # only blocks printing a question term
    assert regions[0].score == pytest.approx(float(heat.max()))
    assert regions[0].cells.any() and regions[0].n_cells == int(regions[0].cells.sum())


def test_text_blocks_rule_falls_back_to_the_heatmap_when_no_block_prints_a_term():
    heat = _heatmap_peaking_on_the_title()
    rule = RegionParams(rule="text_blocks")
    regions = extract_regions(heat, rule, "p", blocks=BLOCKS, text_scores=np.zeros(3))
    assert regions and regions[0].box == tuple(BLOCKS[0])
    assert extract_regions(heat, rule, "p", blocks=BLOCKS)[0].box == tuple(BLOCKS[0])
    with pytest.raises(ValueError, match="3 blocks"):
        extract_regions(heat, rule, "p", blocks=BLOCKS, text_scores=np.ones(2))


def test_tuner_chooses_text_blocks_when_the_text_finds_the_gold_block_and_the_heatmap_does_not():
    channel = LexicalChannel([WORDS], G, [BLOCKS])
    heat = _heatmap_peaking_on_the_title()
    text = [channel.block_scores("delta option", 0)] * 3
    chosen, table = tune_region_params(
        [heat] * 3, [tuple(BLOCKS[2])] * 3, RegionParams(), blocks=[BLOCKS] * 3, text_scores=text
    )
    assert chosen.rule == "text_blocks"
    assert {row["rule"] for row in table} == {"heatmap", "text_blocks"}
    assert max(row["hit1"] for row in table if row["rule"] == "heatmap") == 0.0
    # The gold block is the title: the heatmap finds it, the text (which names the other block) does not.
    chosen, _ = tune_region_params(
        [heat] * 3, [tuple(BLOCKS[0])] * 3, RegionParams(), blocks=[BLOCKS] * 3, text_scores=text
    )
    assert chosen.rule == "heatmap"
    # Without text scores only the base rule is tried.
    _, table = tune_region_params([heat], [tuple(BLOCKS[0])], RegionParams(), blocks=[BLOCKS])
    assert {row["rule"] for row in table} == {"heatmap"}


def test_the_search_space_is_params_yaml_regions_search():
    """Editing regions.search changes what the tuner tries (and an empty grid is refused)."""
    channel = LexicalChannel([WORDS], G, [BLOCKS])
    heat = _heatmap_peaking_on_the_title()
    text = [channel.block_scores("delta option", 0)]
    narrow = RegionParams().model_copy(deep=True)
    narrow.search.rule = ["heatmap"]
    narrow.search.absolute, narrow.search.quantile, narrow.search.relative = [], [], [0.7]
    narrow.search.padding, narrow.search.neighbour_range, narrow.search.score = [0], [1], ["max"]
    chosen, table = tune_region_params(
        [heat], [tuple(BLOCKS[2])], narrow, blocks=[BLOCKS], text_scores=text
    )
    assert len(table) == 2 and {row["rule"] for row in table} == {"heatmap"}  # snap none | block
    assert chosen.threshold == "relative" and chosen.threshold_value == 0.7
    narrow.search.relative = []
    with pytest.raises(ValueError, match="no candidate setting"):
        tune_region_params([heat], [tuple(BLOCKS[2])], narrow, blocks=[BLOCKS], text_scores=text)
