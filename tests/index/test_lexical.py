"""The sparse channel: BM25 candidates and term heatmaps on the grid, fused into index search."""

import numpy as np
import pytest

from components.config import IndexParams
from components.index.lexical import LexicalChannel, tokenize
from components.index.region_index import PageMeta, RegionIndex

GRID = 4
# Page 0 prints "Revenue 2021" in its top-left cell; page 1 prints other words; page 2 "Revenue" bottom-right.
PAGES = [
    [
        ["Revenue", 0.01, 0.01, 0.1, 0.05],
        ["2021", 0.12, 0.01, 0.2, 0.05],
        ["filler", 0.6, 0.6, 0.7, 0.65],
    ],
    [["Headcount", 0.3, 0.3, 0.4, 0.35], ["2019", 0.5, 0.3, 0.6, 0.35]],
    [["revenue", 0.8, 0.8, 0.9, 0.85], ["2018", 0.8, 0.9, 0.9, 0.95]],
]


def test_tokenize_drops_question_words_and_keeps_numbers():
    assert tokenize("What was the Revenue in 2021?") == ["revenue", "2021"]


def test_heatmap_lights_the_cells_that_print_the_terms():
    channel = LexicalChannel(PAGES, GRID)
    maps = channel.heatmaps("What was the revenue in 2021?", np.array([0, 1, 2]))
    assert maps.shape == (3, GRID, GRID)
    assert maps[0, 0, 0] > 0.99  # both terms in the top-left cell: the whole idf mass
    assert maps[1].max() == 0.0
    assert 0 < maps[2, 3, 3] < maps[0, 0, 0]  # only "revenue", the more common of the two terms
    assert channel.top_pages("revenue 2021", 2)[0] == 0


def test_filters_restrict_lexical_candidates():
    channel = LexicalChannel(PAGES, GRID)
    assert list(channel.top_pages("revenue", 3, allowed=np.array([2]))) == [2]


def test_index_search_fuses_lexical_evidence_into_heatmaps():
    rng = np.random.default_rng(0)
    metas = [PageMeta(page_id=f"d{i}#0", doc=f"d{i}", words=w) for i, w in enumerate(PAGES)]
    cells = rng.normal(size=(3, GRID * GRID, 16)).astype(np.float32)
    cells /= np.linalg.norm(cells, axis=-1, keepdims=True)
    index = RegionIndex.build(metas, cells, IndexParams(candidates=1), fingerprint="fp")
    # A small query pointing at page 1: faiss alone proposes only d1, the page without the terms.
    query = 1e-3 * cells[1].mean(0)
    assert [h.page_id for h in index.search(query, 1, candidates=1)] == ["d1#0"]
    fused = index.search(
        query, 1, candidates=1, query_text="revenue 2021", lexical_weight=1.0, lexical_candidates=2
    )
    assert fused[0].page_id == "d0#0"
    assert np.unravel_index(np.argmax(fused[0].heatmap), (GRID, GRID)) == (0, 0)
    np.testing.assert_allclose(
        index.heatmap("d0#0", query, "revenue 2021", 1.0), fused[0].heatmap, rtol=1e-6
    )
    index.delete_doc("d0")
    assert (
        index.search(
            query,
            1,
            candidates=1,
            query_text="revenue 2021",
            lexical_weight=1.0,
            lexical_candidates=2,
        )[0].page_id
        == "d2#0"
    )


def test_block_scope_credits_terms_printed_anywhere_in_the_block():
    # A table row: the label "Revenue" in col 0 and the year "2021" two cells to the right.
    words = [[["Revenue", 0.01, 0.3, 0.1, 0.35], ["2021", 0.55, 0.3, 0.65, 0.35]], []]
    row_block = [0.0, 0.28, 0.7, 0.37]
    channel = LexicalChannel(words, GRID, [[row_block], []])
    q, pos = "revenue 2021", np.array([0, 1])
    cell = channel.heatmaps(q, pos, "cell")
    block = channel.heatmaps(q, pos, "block")
    mixed = channel.heatmaps(q, pos, "mixed")
    assert cell[0].max() < 0.99  # no single cell prints both terms
    assert (
        block[0, 1, 0] > 0.99 and block[0, 1, 2] > 0.99
    )  # every cell of the row gets the whole share
    assert (
        block[0, 0].max() == 0.0 and block[1].max() == 0.0
    )  # outside the block, and the empty page
    np.testing.assert_allclose(mixed, 0.5 * (cell + block), rtol=1e-6)
    # Without blocks the block scope has nothing to credit.
    assert LexicalChannel(words, GRID).heatmaps(q, pos, "block").max() == 0.0


def test_page_term_weights_pick_the_block_with_the_page_rare_term():
    """Title, paragraph and caption all print the company and the year; only the table prints "capex".

    By corpus idf each of the three outscores the table (two rare terms against one); with page
    term weights the shared terms count 1/3 each on this page and the table wins, while the
    page's own score (its peak) stays what the ranking gave it.
    """

    def row(r, *texts):  # words printed in grid row r (GRID = 4 rows of 0.25)
        return [
            [t, 0.05 + 0.2 * i, 0.25 * r + 0.05, 0.2 + 0.2 * i, 0.25 * r + 0.15]
            for i, t in enumerate(texts)
        ]

    page0 = (
        row(0, "Acme", "2021")
        + row(1, "Acme", "2021", "opened")
        + row(2, "Acme", "2021", "users")
        + row(3, "capex")
    )
    blocks0 = [[0.0, 0.25 * r + 0.02, 0.8, 0.25 * r + 0.2] for r in range(4)]
    other = row(0, "Zeta", "2019") + row(1, "headcount")
    pages, blocks = (
        [page0, other, other],
        [blocks0, [[0.0, 0.02, 0.8, 0.2]], [[0.0, 0.02, 0.8, 0.2]]],
    )
    channel = LexicalChannel(pages, GRID, blocks)
    weights = {t: channel._idf(t) for t in ("acme", "2021", "capex")}
    page = channel.within_page_weights(0, weights)
    assert page["acme"] == pytest.approx(weights["acme"] / 3) and page["2021"] == pytest.approx(
        weights["2021"] / 3
    )
    assert page["capex"] == weights["capex"]

    q = "Acme capex in 2021"
    corpus_map = channel.heatmaps(q, np.array([0]), "block")[0]
    page_map = channel.heatmaps(q, np.array([0]), "block", "page")[0]
    assert (
        corpus_map[0].max() > corpus_map[3].max()
    )  # the title row beats the table row by corpus idf
    assert page_map[3].max() > page_map[0].max()  # the table wins within the page

    metas = [
        PageMeta(page_id=f"d{i}#0", doc=f"d{i}", words=w, blocks=b)
        for i, (w, b) in enumerate(zip(pages, blocks))
    ]
    cells = np.zeros((3, GRID * GRID, 8), dtype=np.float32)
    cells[..., 0] = 1.0  # a flat dense channel: only the terms decide
    index = RegionIndex.build(metas, cells, IndexParams(candidates=3), fingerprint="fp")
    query = np.eye(8, dtype=np.float32)[0]
    hits = index.search(query, 3, query_text=q, lexical_weight=1.0, lexical_scope="block")
    assert hits[0].page_id == "d0#0"
    regional = index.region_heatmaps(hits, q, 1.0, "block")
    for hit, heat in zip(hits, regional):
        assert heat.max() == pytest.approx(hit.score)  # pages keep their ranking scores
    assert regional[0][3].max() > regional[0][0].max()
    np.testing.assert_allclose(
        index.heatmap("d0#0", query, q, 1.0, "block", "page"), regional[0], rtol=1e-6
    )
    with pytest.raises(ValueError, match="unknown term weights"):
        channel.heatmaps(q, np.array([0]), "block", "bm25")


def _titled_pages():
    """Page 0: a title printing the company (on this page only) and a chart printing the region
    label "central" (on one other page too), each once on the page."""

    def row(r, *texts):
        return [
            [t, 0.05 + 0.2 * i, 0.25 * r + 0.05, 0.2 + 0.2 * i, 0.25 * r + 0.15]
            for i, t in enumerate(texts)
        ]

    page0 = row(0, "Corford", "report") + row(1, "shipped", "central") + row(2, "board", "met")
    blocks0 = [[0.0, 0.25 * r + 0.02, 0.8, 0.25 * r + 0.2] for r in range(3)]
    others = [
        row(0, f"Firm{i}") + row(1, "central" if i == 0 else "west", "east") for i in range(4)
    ]
    other_blocks = [[0.0, 0.25 * r + 0.02, 0.8, 0.25 * r + 0.2] for r in range(2)]
    kinds = [["title", "bar_chart", "paragraph"]] + [["page_header", "bar_chart"]] * 4
    return [page0, *others], [blocks0] + [other_blocks] * 4, kinds


def test_page_context_weights_take_the_title_terms_as_every_blocks_context():
    pages, blocks, kinds = _titled_pages()
    channel = LexicalChannel(pages, GRID, blocks, kinds)
    q = "How many deliveries went to Central according to Corford?"
    page_map = channel.heatmaps(q, np.array([0]), "block", "page")[0]
    context_map = channel.heatmaps(q, np.array([0]), "block", "page_context")[0]
    # page weights: the title's rarer term outweighs the chart's
    assert page_map[0].max() > page_map[1].max()
    # page context: the title's term weighs 1/3 (as if in all three blocks); the chart wins
    assert context_map[1].max() > context_map[0].max()
    weights = {t: channel._idf(t) for t in ("corford", "central")}
    context = channel.within_page_weights(0, weights, context=True)
    assert context["corford"] == pytest.approx(weights["corford"] / 3)
    assert context["central"] == weights["central"]
    # the pages' ranking (corpus weights) does not read the kinds
    unkinded = LexicalChannel(pages, GRID, blocks)
    np.testing.assert_array_equal(
        channel.heatmaps(q, np.arange(5), "block"), unkinded.heatmaps(q, np.arange(5), "block")
    )


def test_page_context_without_block_kinds_is_page_weights():
    """An index saved before block kinds were stored: no block is a title, nothing changes."""
    pages, blocks, _ = _titled_pages()
    channel = LexicalChannel(pages, GRID, blocks)
    q = "How many deliveries went to Central according to Corford?"
    np.testing.assert_array_equal(
        channel.heatmaps(q, np.array([0, 1]), "block", "page"),
        channel.heatmaps(q, np.array([0, 1]), "block", "page_context"),
    )
    assert PageMeta(page_id="p#0", doc="p", blocks=blocks[0]).block_kinds == []


def test_block_kinds_must_match_the_blocks():
    pages, blocks, kinds = _titled_pages()
    with pytest.raises(ValueError, match="2 block kinds for 3 blocks"):
        LexicalChannel(pages, GRID, blocks, [kinds[0][:2], *kinds[1:]])
