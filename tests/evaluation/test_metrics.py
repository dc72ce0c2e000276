"""Metrics with hand-computed values, and the block baselines on a hand-made page set."""

from __future__ import annotations

import math

import pytest

from components.evaluation import metrics as M
from components.evaluation.baselines import BM25Blocks, blocks_from_words


def test_page_metrics_known_values():
    ranked = ["a", "b", "c", "d", "e", "f"]
    assert M.recall_at_k(ranked, "a", 1) == 1.0
    assert M.recall_at_k(ranked, "c", 1) == 0.0
    assert M.recall_at_k(ranked, "e", 5) == 1.0
    assert M.recall_at_k(ranked, "f", 5) == 0.0
    assert M.ndcg_at_k(ranked, "a", 5) == 1.0
    assert M.ndcg_at_k(ranked, "c", 5) == pytest.approx(1 / math.log2(4))  # rank 3 -> 0.5
    assert M.ndcg_at_k(ranked, "f", 5) == 0.0
    assert M.reciprocal_rank(ranked, "d") == pytest.approx(0.25)
    assert M.reciprocal_rank(ranked, "zz") == 0.0


def test_iou_and_region_hit():
    assert M.iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert M.iou((0, 0, 0.5, 1), (0.5, 0, 1, 1)) == 0.0
    # Two unit-width boxes overlapping by half: inter 0.5, union 1.5.
    assert M.iou((0, 0, 1, 1), (0.5, 0, 1.5, 1)) == pytest.approx(1 / 3)
    gold = (0.1, 0.1, 0.3, 0.3)
    assert M.region_hit("p", (0.1, 0.1, 0.3, 0.35), "p", gold, 0.5) == 1.0  # IoU 0.8
    assert M.region_hit("q", gold, "p", gold, 0.5) == 0.0  # right box, wrong page
    assert M.region_hit("p", (0.1, 0.1, 0.5, 0.5), "p", gold, 0.5) == 0.0  # IoU 0.25
    assert M.region_hit(None, None, "p", gold, 0.5) == 0.0


def test_anls_follows_docvqa_definition():
    assert M.anls("1234", ["1234"]) == 1.0
    assert M.anls("  Paris ", ["paris"]) == 1.0  # case and surrounding whitespace ignored
    # One substitution in 5 chars: NL = 0.2 -> 0.8.
    assert M.anls("paros", ["paris"]) == pytest.approx(0.8)
    # NL >= 0.5 scores 0.
    assert M.anls("abc", ["xyz"]) == 0.0
    # Best over the gold answers.
    assert M.anls("42", ["forty two", "42"]) == 1.0
    assert M.anls("anything", []) is None


def test_exact_match_normalises():
    assert M.exact_match("The Eiffel Tower.", ["eiffel tower"]) == 1.0
    assert M.exact_match("12.5%", ["125"]) == 1.0  # punctuation is dropped on both sides
    assert M.exact_match("Rome", ["Paris"]) == 0.0
    assert M.exact_match("x", []) is None


def test_accumulator_skips_missing_and_counts():
    acc = M.MetricAccumulator()
    for value in (1.0, None, 0.0, None):
        acc.add("region_hit1", value)
    acc.add("page_r1", 1.0)
    assert acc.means() == {"region_hit1": 0.5, "page_r1": 1.0}
    assert acc.counts["region_hit1"] == 2
    assert M.percentile([1, 2, 3, 4], 50) == 2.5
    assert M.percentile([], 50) is None


def _words(line_y: float, x0: float, texts: list[str]) -> list[list]:
    out, x = [], x0
    for t in texts:
        out.append([t, x, line_y, x + 0.06, line_y + 0.02])
        x += 0.07
    return out


def test_blocks_from_words_separates_columns_and_paragraphs():
    words = (
        _words(0.10, 0.05, ["alpha", "beta"])
        + _words(0.10, 0.60, ["gamma", "delta"])
        + _words(0.125, 0.05, ["epsilon"])  # continues the left paragraph (gap 0.005)
        + _words(0.50, 0.05, ["zeta", "eta"])  # far below: a new block
    )
    blocks = blocks_from_words("p#0", words)
    texts = sorted(b.text for b in blocks)
    assert texts == ["alpha beta\nepsilon", "gamma delta", "zeta eta"]
    left = next(b for b in blocks if b.text.startswith("alpha"))
    assert left.box[0] == pytest.approx(0.05) and left.box[3] == pytest.approx(0.145)


def test_bm25_ranks_exact_keyword_page_first():
    pages = {
        "a#0": ["invoice", "total", "amount", "due"],
        "b#0": ["quarterly", "revenue", "chart", "growth"],
        "c#0": ["castle", "of", "good", "hope", "built", "1666"],
        "d#0": ["weather", "forecast", "rain"],
    }
    blocks = [b for pid, ws in pages.items() for b in blocks_from_words(pid, _words(0.2, 0.05, ws))]
    hits = BM25Blocks(blocks).search("when was the castle of good hope built", k=None)
    assert hits[0].page_id == "c#0"
    assert hits[0].block.box[1] == pytest.approx(0.2)
    assert {h.page_id for h in hits} == set(pages)


@pytest.mark.slow
def test_dense_blocks_ranks_keyword_page_first(tiny_params):
    from components.evaluation.baselines import DenseBlocks

    pages = {
        "a#0": ["invoice", "total", "amount", "due"],
        "b#0": ["quarterly", "revenue", "chart", "growth"],
        "c#0": ["castle", "of", "good", "hope", "fortress"],
    }
    blocks = [b for pid, ws in pages.items() for b in blocks_from_words(pid, _words(0.2, 0.05, ws))]
    dense = DenseBlocks.from_params(blocks, tiny_params.model)
    assert dense.search("which fortress is the castle of good hope")[0].page_id == "c#0"
    assert dense.search("total amount due on the invoice")[0].page_id == "a#0"
