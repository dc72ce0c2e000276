"""RAG engine over a hand-built index (no trained model needed) and the region-text answerer."""

from __future__ import annotations

import numpy as np
import pytest

from components.config import IndexParams
from components.index.region_index import PageMeta, RegionIndex
from components.rag.answer import answer_from_region, answer_from_words, group_lines, region_text
from components.rag.engine import RagEngine, RagResult

G, D = 4, 16


class _FakeRetriever:
    """Stands in for RegionRetriever: the query vector is planted, not encoded."""

    fingerprint = "fp"
    grid, dim = G, D


def _engine(tiny_params, monkeypatch, query: np.ndarray):
    rng = np.random.default_rng(0)
    cells = rng.standard_normal((6, G * G, D)).astype(np.float32) * 0.1
    # Page 2, cells (row 0, cols 2-3), holds the answer: a 2-cell region aligned with the query.
    cells[2, 2] = cells[2, 3] = query
    words = [
        ["Filing", 0.55, 0.05, 0.70, 0.10],
        ["number:", 0.72, 0.05, 0.85, 0.10],
        ["FN-1234", 0.86, 0.05, 0.98, 0.10],
        ["unrelated", 0.05, 0.80, 0.30, 0.85],
    ]
    metas = [
        PageMeta(
            page_id=f"doc{i}#0", doc=f"doc{i}", words=words if i == 2 else [], width=100, height=100
        )
        for i in range(6)
    ]
    index = RegionIndex.build(metas, cells, IndexParams(candidates=3), "fp")
    engine = RagEngine(_FakeRetriever(), index, tiny_params)
    monkeypatch.setattr(engine, "encode", lambda question, query_image=None: query)
    return engine


def test_answer_returns_top_region_box_page_and_text(tiny_params, monkeypatch):
    query = np.zeros(D, dtype=np.float32)
    query[0] = 1.0
    engine = _engine(tiny_params, monkeypatch, query)
    result = engine.answer("What is the filing number?", k=3)
    assert isinstance(result, RagResult)
    assert result.page_id == "doc2#0"
    assert result.boxes[0] == [0.5, 0.0, 1.0, 0.25]  # cells (0, 2)-(0, 3) of a 4x4 grid
    assert result.scores == sorted(result.scores, reverse=True) and len(result.boxes) <= 3
    assert result.answer == "FN-1234"
    assert "FN-1234" in result.regions[0]["text"]
    d = result.to_dict()
    assert set(d) >= {"answer", "page_id", "boxes", "scores", "regions"} and "heatmaps" not in d
    pages = engine.retrieve_pages("anything")
    assert pages[0][0] == "doc2#0" and len(pages) == min(6, tiny_params.index.candidates)


def test_engine_refuses_index_of_another_encoder(tiny_params):
    metas = [PageMeta(page_id="a#0", doc="a")]
    index = RegionIndex.build(metas, np.ones((1, G * G, D), np.float32), IndexParams(), "other")
    with pytest.raises(ValueError, match="rebuild the index"):
        RagEngine(_FakeRetriever(), index, tiny_params)


def test_filters_reach_the_index(tiny_params, monkeypatch):
    query = np.zeros(D, dtype=np.float32)
    query[0] = 1.0
    engine = _engine(tiny_params, monkeypatch, query)
    result = engine.answer("filing number", filters={"doc": "doc4"})
    assert {r["page_id"] for r in result.regions} == {"doc4#0"}


def test_group_lines_and_region_text_in_reading_order():
    words = [["b", 0.5, 0.1, 0.6, 0.15], ["a", 0.1, 0.11, 0.2, 0.16], ["c", 0.1, 0.3, 0.2, 0.35]]
    assert [[w[0] for w in line] for line in group_lines(words)] == [["a", "b"], ["c"]]
    assert region_text(words, (0, 0, 1, 0.2)) == "a b"


def test_answerer_heuristics():
    kv = [
        ["Launched:", 0.1, 0.1, 0.3, 0.15],
        ["1985", 0.32, 0.1, 0.4, 0.15],
        ["Length:", 0.1, 0.2, 0.3, 0.25],
        ["115", 0.32, 0.2, 0.4, 0.25],
        ["m", 0.41, 0.2, 0.45, 0.25],
    ]
    assert answer_from_words("What is the length of the ship?", kv) == "115 m"
    assert answer_from_words("When did this ship first go to sea?", kv) == "1985"  # typed fallback
    table = [
        ["Metric", 0.1, 0.1, 0.2, 0.12],
        ["Q1", 0.4, 0.1, 0.45, 0.12],
        ["Q2", 0.6, 0.1, 0.65, 0.12],
        ["Orders", 0.1, 0.2, 0.2, 0.22],
        ["5,351", 0.4, 0.2, 0.46, 0.22],
        ["19,537", 0.6, 0.2, 0.66, 0.22],
        ["Revenue", 0.1, 0.3, 0.2, 0.32],
        ["64,770", 0.4, 0.3, 0.46, 0.32],
        ["23,996", 0.6, 0.3, 0.66, 0.32],
    ]
    assert answer_from_words("What revenue did they report for Q2?", table) == "23,996"
    assert answer_from_region("anything", table, (0.9, 0.9, 1.0, 1.0)) == ""


def test_traced_answer_records_retriever_pages_boxes_and_answer_spans(
    tiny_params, monkeypatch, tmp_path, request
):
    import mlflow

    previous = mlflow.get_tracking_uri()
    request.addfinalizer(
        lambda: mlflow.set_tracking_uri(previous)
    )  # later tests keep the session store

    from components.rag.tracing import TRACING_ENV

    monkeypatch.setenv(
        "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false"
    )  # the trace is stored when answer returns
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'traces.db'}")
    mlflow.set_experiment("regionops-traces-test")
    # ...and no active experiment after it: a later start_run(run_id=...) of another experiment
    # in this process would be refused.
    request.addfinalizer(lambda: setattr(mlflow.tracking.fluent, "_active_experiment_id", None))
    query = np.zeros(D, dtype=np.float32)
    query[0] = 1.0
    engine = _engine(tiny_params, monkeypatch, query)
    assert engine.tracing_on is False  # off by default: the serving path pays nothing
    engine.answer("What is the filing number?", k=3)
    assert mlflow.get_last_active_trace_id() is None

    monkeypatch.setenv(TRACING_ENV, "1")
    traced = _engine(tiny_params, monkeypatch, query)
    assert traced.tracing_on is True
    result = traced.answer("What is the filing number?", k=3)
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id(), flush=True)
    spans = {s.name: s for s in trace.data.spans}
    assert set(spans) == {"rag answer", "encode query", "retrieve regions", "answer (text layer)"}
    retrieved = spans["retrieve regions"]
    assert retrieved.span_type == "RETRIEVER"
    assert [d["metadata"]["box"] for d in retrieved.outputs] == result.boxes
    assert retrieved.outputs[0]["metadata"]["page_id"] == "doc2#0"
    assert "doc2#0" in retrieved.attributes["candidate_pages"]
    assert spans["answer (text layer)"].outputs["answer"] == "FN-1234"
    assert (
        spans["rag answer"].parent_id is None and retrieved.parent_id == spans["rag answer"].span_id
    )


def test_text_blocks_rule_serves_the_top_pages_best_bm25_block(tiny_params, monkeypatch):
    """``regions.rule: text_blocks``: the heatmap still picks the page, the question's terms pick the
    block; ``heatmap`` keeps the lit block (ADR 27)."""
    query = np.zeros(D, dtype=np.float32)
    query[0] = 1.0
    rng = np.random.default_rng(1)
    cells = rng.standard_normal((4, G * G, D)).astype(np.float32) * 0.1
    cells[1, 0] = cells[1, 1] = query  # page 1's top-left cells light up (its title block)
    words = [
        ["Reference", 0.05, 0.05, 0.45, 0.2],
        ["the", 0.05, 0.55, 0.2, 0.7],
        ["retention", 0.25, 0.55, 0.45, 0.7],
        ["period", 0.05, 0.8, 0.3, 0.95],
    ]
    blocks = [[0.0, 0.0, 0.5, 0.25], [0.0, 0.5, 0.5, 1.0]]
    metas = [
        PageMeta(
            page_id=f"d{i}#0",
            doc=f"d{i}",
            words=words if i == 1 else [],
            blocks=blocks if i == 1 else [],
            width=100,
            height=100,
        )
        for i in range(4)
    ]
    index = RegionIndex.build(metas, cells, IndexParams(candidates=4), "fp")

    def engine(rule: str) -> RagEngine:
        params = tiny_params.model_copy(
            update={"regions": tiny_params.regions.model_copy(update={"rule": rule})}
        )
        e = RagEngine(_FakeRetriever(), index, params)
        monkeypatch.setattr(e, "encode", lambda question, query_image=None: query)
        return e

    lit = engine("heatmap").answer("What is the retention period?", k=2)
    by_text = engine("text_blocks").answer("What is the retention period?", k=2)
    assert lit.page_id == by_text.page_id == "d1#0"
    assert lit.boxes[0] == blocks[0] and by_text.boxes[0] == blocks[1]
    assert by_text.scores[0] == pytest.approx(lit.scores[0])  # the page's heatmap peak
