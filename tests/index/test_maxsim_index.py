"""MaxSim in the index's exact stage (ADR 28): page scores, heatmaps and the lexical fusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.index.maxsim import TokenQuery
from components.index.region_index import PageMeta, RegionIndex
from components.model.late_interaction import maxsim_heatmaps
from tests.support.cell_vectors import clustered_pages, index_params, unit

G, D = 4, 32


def _index(storage: str = "float16", n: int = 30, words=None):
    cells = clustered_pages(n, G, D, seed=3)
    metas = [
        PageMeta(page_id=f"d{i}#0", doc=f"d{i}", words=(words or {}).get(i, []), width=1, height=1)
        for i in range(n)
    ]
    params = index_params(storage=storage, candidates=n, pq__m=8, pq__train_cells=4096)
    return RegionIndex.build(metas, cells, params, "fp"), cells


def _tokens(cells: np.ndarray, picks: list[tuple[int, int]], seed: int = 0) -> np.ndarray:
    """Unit token vectors near the given (page, cell)s: each token has its own best cell."""
    rng = np.random.default_rng(seed)
    return unit(
        np.stack([cells[p, c] for p, c in picks]) + 0.2 * rng.standard_normal((len(picks), D))
    )


def _brute_force_maxsim(cells: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Each page: the mean over tokens of the token's best cell score, by plain loops."""
    scores = np.zeros(len(cells))
    for p, page in enumerate(cells):
        scores[p] = np.mean([max(float(c @ t) for c in page) for t in tokens])
    return scores


def test_maxsim_page_scores_equal_brute_force_over_stored_cells():
    index, cells = _index()
    tokens = _tokens(cells, [(4, 1), (9, 7), (4, 12)])
    stored = index.decoded_cells()  # float16 round trip: what the index scores
    expected = _brute_force_maxsim(stored, tokens)
    hits = index.search(TokenQuery(tokens), k_pages=len(cells), exhaustive=True)
    got = {h.page_id: h.score for h in hits}
    np.testing.assert_allclose(
        [got[f"d{i}#0"] for i in range(len(cells))], expected, rtol=0, atol=1e-5
    )
    assert [h.page_id for h in hits][:3] == [f"d{i}#0" for i in np.argsort(-expected)[:3]]
    # MaxSim is not the mean vector's best cell: the two tokens on page 4 sit on two cells.
    mean_vector = index.search(tokens.mean(0), k_pages=len(cells), exhaustive=True)
    assert {h.page_id: h.score for h in mean_vector}["d4#0"] < got["d4#0"] - 1e-3


def test_maxsim_candidates_come_from_the_mean_vector_and_keep_brute_force_scores():
    index, cells = _index()
    tokens = _tokens(cells, [(2, 0), (2, 5)])
    candidates = set(index.candidate_pages(tokens.mean(0), 5).tolist())
    hits = index.search(TokenQuery(tokens), k_pages=5, candidates=5)
    assert {index.position(h.page_id) for h in hits} <= candidates
    expected = _brute_force_maxsim(index.decoded_cells(), tokens)
    for h in hits:
        assert h.score == pytest.approx(expected[index.position(h.page_id)], abs=1e-5)


@pytest.mark.parametrize("storage", ["pq", "binary"])
def test_compressed_modes_score_maxsim_over_their_decoded_cells(storage):
    index, cells = _index(storage)
    tokens = _tokens(cells, [(6, 3), (11, 9)])
    expected = _brute_force_maxsim(index.decoded_cells(), tokens)
    hits = index.search(TokenQuery(tokens), k_pages=len(cells), exhaustive=True)
    by_page = {h.page_id: h.score for h in hits}
    got = np.array([by_page[f"d{i}#0"] for i in range(30)])
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("rule", ["mean", "vote"])
def test_maxsim_heatmap_peaks_at_the_page_score(rule):
    index, cells = _index()
    tokens = _tokens(cells, [(4, 1), (4, 12), (7, 2)])
    hits = index.search(TokenQuery(tokens, rule), k_pages=5)
    for h in hits:
        assert float(h.heatmap.max()) == pytest.approx(h.score, abs=1e-6)
        single = index.heatmap(h.page_id, TokenQuery(tokens, rule))
        np.testing.assert_allclose(single, h.heatmap, atol=1e-6)


def test_mean_heatmap_is_the_mean_vector_heatmap_shifted_to_the_maxsim_score():
    index, cells = _index()
    tokens = _tokens(cells, [(4, 1), (4, 12)])
    maxsim = index.heatmap("d4#0", TokenQuery(tokens, "mean"))
    mean_vector = index.heatmap("d4#0", tokens.mean(0))
    shift = maxsim - mean_vector
    np.testing.assert_allclose(shift, np.full_like(shift, shift.mean()), atol=1e-5)
    assert shift.mean() > 0  # MaxSim >= the mean vector's best cell


def test_vote_heatmap_credits_each_tokens_best_cell():
    # One page, 4 cells; token 0's best cell is 1 (score 0.9), token 1's is 3 (score 0.5).
    scores = torch.tensor([[[0.1, 0.9, 0.2, 0.0], [0.0, 0.1, 0.3, 0.5]]])  # [P=1, L=2, N=4]
    vote = maxsim_heatmaps(scores, None, "vote")[0]
    page = (0.9 + 0.5) / 2
    assert float(vote.max()) == pytest.approx(page)
    assert vote.argmax().item() == 1  # the cell carrying the larger share of the score
    # Cells no token chose stay below both chosen cells.
    assert max(vote[0], vote[2]) < min(vote[1], vote[3])
    mean = maxsim_heatmaps(scores, None, "mean")[0]
    assert mean.argmax().item() == 1 and float(mean.max()) == pytest.approx(page)


def test_lexical_fusion_adds_to_the_maxsim_heatmap_and_the_page_score_is_its_peak():
    words = {5: [["zebra", 0.0, 0.0, 0.2, 0.2]], 8: [["zebra", 0.6, 0.6, 0.9, 0.9]]}
    index, cells = _index(words=words)
    tokens = _tokens(cells, [(8, 2), (3, 4)])
    query = TokenQuery(tokens)
    fused = index.search(query, k_pages=30, exhaustive=True, query_text="zebra", lexical_weight=0.5)
    positions = np.array([index.position(h.page_id) for h in fused])
    lexical = index.lexical.heatmaps("zebra", positions, "cell")
    dense = index.heatmaps(positions, query)
    for h, d, lex in zip(fused, dense, lexical):
        np.testing.assert_allclose(h.heatmap, d + 0.5 * lex, atol=1e-6)
        assert h.score == pytest.approx(float(h.heatmap.max()), abs=1e-6)
    assert fused[0].page_id in {"d5#0", "d8#0"}


def test_token_query_refuses_bad_input():
    with pytest.raises(ValueError, match="token vectors"):
        TokenQuery(np.zeros((0, D), np.float32))
    with pytest.raises(ValueError, match="token vectors"):
        TokenQuery(np.zeros(D, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        TokenQuery(np.full((2, D), np.nan, np.float32))
    with pytest.raises(ValueError, match="heatmap rule"):
        TokenQuery(np.ones((2, D), np.float32), "median")
    index, _ = _index()
    with pytest.raises(ValueError, match="dims"):
        index.search(TokenQuery(np.ones((2, D + 1), np.float32)), k_pages=3, exhaustive=True)
