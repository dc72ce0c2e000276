"""The served page-score rule is the trained one (ADR 28): recorded in the export, read back by
serving, and scored by the index with the question's token vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from components.index.maxsim import TokenQuery
from components.index.region_index import PageMeta, RegionIndex
from components.model.encode import encode_queries, encode_query_token_matrices
from components.model.io import CONFIG, load_retriever, save_retriever
from components.model.late_interaction import (
    maxsim_page_scores,
    page_score_rule,
    token_cell_scores,
)
from components.model.retriever import build_retriever, late_interaction_page_scores
from components.rag.engine import RagEngine
from components.training.module import RetrieverModule
from tests.support.cell_vectors import unit

QUESTION = "where is the castle on the river"


@pytest.fixture(scope="module")
def retriever(tiny_params):
    return build_retriever(tiny_params.model).eval()


def _rule(params, global_score: str):
    return params.model_copy(
        update={"train": params.train.model_copy(update={"global_score": global_score})}
    )


def test_training_rule_names_the_served_rule(tiny_params, retriever):
    assert page_score_rule("max_cell") == "max_cell"
    assert page_score_rule("late_interaction") == "maxsim"
    with pytest.raises(ValueError, match="global_score"):
        page_score_rule("mean")
    assert tiny_params.train.global_score == "late_interaction"  # the default (ADR 28)
    assert RetrieverModule(tiny_params, retriever).model.page_score == "maxsim"
    cell = RetrieverModule(_rule(tiny_params, "max_cell"), retriever)
    assert cell.model.page_score == "max_cell"


def test_export_records_the_rule_and_an_old_export_loads_as_max_cell(retriever, tmp_path):
    retriever.page_score = "maxsim"
    try:
        save_retriever(retriever, tmp_path / "export")
    finally:
        retriever.page_score = "max_cell"
    config = json.loads((tmp_path / "export" / CONFIG).read_text())
    assert config["page_score"] == "maxsim"
    assert load_retriever(tmp_path / "export").page_score == "maxsim"
    del config["page_score"]  # an export written before the rule was recorded
    (tmp_path / "export" / CONFIG).write_text(json.dumps(config))
    assert load_retriever(tmp_path / "export").page_score == "max_cell"
    config["page_score"] = "best_cell"
    (tmp_path / "export" / CONFIG).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="page_score"):
        load_retriever(tmp_path / "export")


def test_token_matrices_drop_padding_and_average_to_the_query_vector(retriever):
    texts = ["castle", QUESTION]
    tokens = encode_query_token_matrices(retriever, texts)
    lengths = retriever.tokenize_queries(texts)["attention_mask"].sum(1).tolist()
    assert [len(t) for t in tokens] == lengths
    np.testing.assert_allclose(
        np.stack([t.mean(0) for t in tokens]), encode_queries(retriever, texts), atol=1e-5
    )


def test_late_interaction_training_score_is_maxsim_by_brute_force():
    rng = torch.Generator().manual_seed(0)
    tokens = torch.nn.functional.normalize(torch.randn(2, 3, 8, generator=rng), dim=-1)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    tokens = tokens * mask.unsqueeze(-1)
    cells = torch.randn(4, 5, 8, generator=rng)
    got = late_interaction_page_scores(tokens, mask, cells)
    for b in range(2):
        for p in range(4):
            real = [tokens[b, i] for i in range(3) if mask[b, i]]
            best = [max(float(t @ c) for c in cells[p]) for t in real]
            assert float(got[b, p]) == pytest.approx(sum(best) / len(best), abs=1e-5)


def _engine(retriever, params, rule: str):
    rng = np.random.default_rng(1)
    n, cells_per_page = 12, retriever.grid**2
    cells = unit(rng.standard_normal((n, cells_per_page, retriever.dim)))
    tokens = encode_query_token_matrices(retriever, [QUESTION])[0]
    cells[7, :3] = unit(tokens[:3])  # page 7 holds three of the question's tokens on three cells
    metas = [PageMeta(page_id=f"d{i}#0", doc=f"d{i}") for i in range(n)]
    index = RegionIndex.build(metas, cells, params.index, retriever.fingerprint)
    retriever.page_score = rule
    try:
        return RagEngine(retriever, index, params), tokens
    finally:
        retriever.page_score = "max_cell"


def test_a_maxsim_model_is_served_by_maxsim(tiny_params, retriever):
    engine, tokens = _engine(retriever, tiny_params, "maxsim")
    assert engine.page_score == "maxsim"
    vector = engine.encode(QUESTION)
    np.testing.assert_allclose(vector, encode_queries(retriever, [QUESTION])[0], atol=1e-5)
    query = engine.index_query(vector, QUESTION)
    assert isinstance(query, TokenQuery)
    assert query.heatmap_rule == tiny_params.rag.maxsim_heatmap
    hits = engine.search_vector(vector, k_pages=3, question=QUESTION)
    stored = torch.from_numpy(engine.index.decoded_cells())
    expected = maxsim_page_scores(token_cell_scores(torch.from_numpy(tokens), stored)).numpy()
    lexical = engine.index.lexical.heatmaps(
        QUESTION, np.arange(12), tiny_params.rag.lexical_scope
    )  # no page prints a word here: the fused page score is MaxSim itself
    assert not lexical.any()
    for h in hits:
        assert h.score == pytest.approx(expected[engine.index.position(h.page_id)], abs=1e-4)
    assert hits[0].page_id == "d7#0"
    # A vector that is not the question's mean token vector (an image query) keeps max cell.
    other = np.roll(vector, 1)
    assert engine.index_query(other, QUESTION) is other


def test_a_max_cell_model_is_served_by_its_best_cell(tiny_params, retriever):
    engine, _ = _engine(retriever, tiny_params, "max_cell")
    vector = engine.encode(QUESTION)
    assert engine.index_query(vector, QUESTION) is vector
    hits = engine.search_vector(vector, k_pages=3, question=QUESTION)
    cells = engine.index.decoded_cells()
    for h in hits:
        assert h.score == pytest.approx(
            float((cells[engine.index.position(h.page_id)] @ vector).max()), abs=1e-4
        )
