"""The served region step reads only the pages that can place a region in the top k (ADR 29):
its regions and scores are those of reading every candidate page, as before."""

from __future__ import annotations

import numpy as np
import pytest

from components.config import IndexParams, RegionParams
from components.index.lexical import tokenize
from components.index.region_index import PageMeta, RegionIndex
from components.rag.engine import RagEngine
from components.regions.extract import extract_regions, rank_regions

G, D, PAGES = 8, 16, 14
VOCABULARY = ["gamma", "delta", "option", "zeta", "theta", "value", "mode", "limit", "rate"]


class _FakeRetriever:
    fingerprint = "fp"
    grid, dim = G, D


def _index() -> RegionIndex:
    rng = np.random.default_rng(7)
    metas = []
    for p in range(PAGES):
        n_blocks = int(rng.integers(1, 5))
        blocks = [[0.05, 0.24 * b, 0.95, 0.24 * b + 0.2] for b in range(n_blocks)]
        words = [
            [
                str(rng.choice(VOCABULARY)),
                0.1 + 0.12 * w,
                0.24 * b + 0.05,
                0.2 + 0.12 * w,
                0.24 * b + 0.1,
            ]
            for b in range(n_blocks)
            for w in range(int(rng.integers(1, 6)))
        ]
        metas.append(
            PageMeta(
                page_id=f"doc{p}#0",
                doc=f"doc{p}",
                words=words,
                blocks=blocks,
                block_kinds=["title"] + ["paragraph"] * (n_blocks - 1),  # for page_context
                width=1,
                height=1,
            )
        )
    cells = rng.standard_normal((PAGES, G * G, D)).astype(np.float32)
    return RegionIndex.build(metas, cells, IndexParams(candidates=PAGES), "fp")


def _engine(
    tiny_params, rule: str, term_weights: str, region_weight: float | None = None
) -> RagEngine:
    params = tiny_params.model_copy(deep=True)
    params.regions = RegionParams(
        threshold="quantile",
        threshold_value=0.8,
        score="mean",
        snap="block",
        rule=rule,
        lexical_weight=region_weight,
    )
    params.rag = params.rag.model_copy(
        update={
            "region_term_weights": term_weights,
            "lexical_weight": 0.5,
            "lexical_scope": "block",
        }
    )
    params.index = params.index.model_copy(update={"candidates": PAGES})
    return RagEngine(_FakeRetriever(), _index(), params)


def _every_page(engine: RagEngine, hits, k: int, question: str):
    """The region step before ADR 29: every hit's map, rank-bm25's block scores page by page."""
    index, params = engine.index, engine.params
    maps = engine.region_maps(hits, question)
    postings, offsets = index.lexical._blocks_bm25()
    bm25, terms = postings.bm25, tokenize(question)
    floor = sum(float(bm25.idf.get(t, 0.0)) * bm25.delta for t in terms)
    by_page = {}
    for pid, heat in maps.items():
        pos, n = index.position(pid), len(index.meta(pid).blocks)
        scores = None
        if params.regions.rule == "text_blocks":
            raw = bm25.get_batch_scores(terms, list(range(offsets[pos], offsets[pos] + n)))
            scores = np.maximum(np.asarray(raw) - floor, 0.0) if terms else np.zeros(n)
        by_page[pid] = extract_regions(
            heat, params.regions, pid, blocks=index.meta(pid).blocks, text_scores=scores
        )
    return rank_regions(by_page, k)


def _questions(n: int) -> list[tuple[np.ndarray, str]]:
    rng = np.random.default_rng(11)
    return [
        (
            rng.standard_normal(D).astype(np.float32),
            " ".join(
                rng.choice(VOCABULARY + ["what", "is", "absent"], size=int(rng.integers(1, 5)))
            ),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize(
    ("rule", "term_weights"),
    [
        ("text_blocks", "page"),
        ("text_blocks", "corpus"),
        ("heatmap", "page"),
        ("heatmap", "page_context"),
        ("heatmap", "corpus"),
    ],
)
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("region_weight", [None, 4.0])
def test_trimmed_region_step_gives_the_regions_and_scores_of_every_page(
    tiny_params, rule, term_weights, k, region_weight
):
    engine = _engine(tiny_params, rule, term_weights, region_weight)
    read = []
    for query, question in _questions(40):
        hits = engine.search_vector(query, question=question)
        assert len(hits) == PAGES
        regions, maps = engine.regions_and_maps(hits, k, question)
        reference = _every_page(engine, hits, k, question)
        assert [(r.page_id, r.box, r.score, r.n_cells) for r in regions] == [
            (r.page_id, r.box, r.score, r.n_cells) for r in reference
        ]
        assert all(np.array_equal(r.cells, s.cells) for r, s in zip(regions, reference))
        assert {r.page_id for r in regions} <= set(maps)
        # the maps of the pages read are the full step's maps of those pages
        full = engine.region_maps(hits, question)
        assert all(np.array_equal(maps[pid], full[pid]) for pid in maps)
        read.append(len(maps))
    assert np.mean(read) < PAGES  # pages past the bound were not read


def test_answer_keeps_the_maps_of_the_pages_it_read(tiny_params, monkeypatch):
    engine = _engine(tiny_params, "text_blocks", "page")
    query, question = _questions(1)[0]
    monkeypatch.setattr(engine, "encode", lambda q, query_image=None: query)
    result = engine.answer(question, k=2)
    assert result.page_id in result.heatmaps
    assert len(result.page_ranking) == PAGES and 1 <= len(result.heatmaps) <= PAGES


def test_block_masks_are_rasterised_once_per_page_and_follow_new_blocks(tiny_params):
    from components.regions.snap import block_cell_masks

    engine = _engine(tiny_params, "text_blocks", "page")
    meta = engine.index.meta("doc3#0")
    masks = engine.block_masks("doc3#0")
    assert [m.tolist() for m in masks] == [m.tolist() for m in block_cell_masks(meta.blocks, G)]
    assert engine.block_masks("doc3#0") is masks  # the next question reuses them
    with pytest.raises(ValueError, match="read-only"):
        masks[0][0, 0] = not masks[0][0, 0]  # shared by every question: never edited in place
    meta.blocks = [[0.0, 0.0, 0.5, 0.5]]  # the page indexed again, with other blocks
    fresh = engine.block_masks("doc3#0")
    assert fresh is not masks and len(fresh) == 1
    assert fresh[0].tolist() == block_cell_masks(meta.blocks, G)[0].tolist()


@pytest.mark.parametrize("term_weights", ["page", "page_context", "corpus"])
def test_region_maps_take_the_region_weight_and_keep_each_page_peak(tiny_params, term_weights):
    """regions.lexical_weight (ADR 31): the region map is dense + w_region x the lexical map,
    shifted onto the ranking map's peak (so the top-k bound of ADR 29 still holds)."""
    engine = _engine(tiny_params, "heatmap", term_weights, region_weight=4.0)
    same = _engine(tiny_params, "heatmap", term_weights)
    index, rag = engine.index, engine.params.rag
    for query, question in _questions(10):
        hits = engine.search_vector(query, question=question)
        maps = engine.region_maps(hits, question)
        plain = same.region_maps(same.search_vector(query, question=question), question)
        changed = False
        for h in hits:
            pos = np.array([index.position(h.page_id)])
            dense = index.heatmaps(pos, query)[0]
            lexical = index.lexical.heatmaps(question, pos, rag.lexical_scope, term_weights)[0]
            expected = dense + 4.0 * lexical
            expected = expected + (h.heatmap.max() - expected.max())
            np.testing.assert_allclose(maps[h.page_id], expected, rtol=1e-5, atol=1e-5)
            assert maps[h.page_id].max() == pytest.approx(h.heatmap.max(), abs=1e-5)
            changed |= not np.allclose(maps[h.page_id], plain[h.page_id])
        if tokenize(question) and any(t in VOCABULARY for t in tokenize(question)):
            assert changed  # a printed question term: the heavier weight moves some map


def test_region_weight_equal_to_the_ranking_weight_changes_nothing(tiny_params):
    engine = _engine(tiny_params, "text_blocks", "page", region_weight=0.5)  # = rag.lexical_weight
    plain = _engine(tiny_params, "text_blocks", "page")
    for query, question in _questions(10):
        a = engine.region_maps(engine.search_vector(query, question=question), question)
        b = plain.region_maps(plain.search_vector(query, question=question), question)
        assert a.keys() == b.keys() and all(np.array_equal(a[p], b[p]) for p in a)
