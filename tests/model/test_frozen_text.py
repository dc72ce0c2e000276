"""The query encoder's TorchScript-frozen MiniLM (ADR 15): the eager model's vectors, only where it applies."""

from __future__ import annotations

import numpy as np
import pytest

from components.model import frozen_text
from components.model.encode import encode_queries
from components.model.retriever import build_retriever

QUESTIONS = [
    "total revenue of Acme Corp in 2019",
    "which chart",
    "what does the table on page two list for 2021 sales",
]


@pytest.fixture()
def model(tiny_params):
    model = build_retriever(tiny_params.model)
    model.eval()
    return model


def test_traced_queries_equal_the_eager_model(model):
    traced = encode_queries(model, QUESTIONS)
    assert frozen_text._TRACED[model] is not None  # the graph was built and used
    with frozen_text.eager_only():
        eager = encode_queries(model, QUESTIONS)
    np.testing.assert_allclose(traced, eager, atol=1e-5)
    one_by_one = np.concatenate([encode_queries(model, [q]) for q in QUESTIONS])
    np.testing.assert_allclose(one_by_one, eager, atol=1e-5)


def test_only_a_frozen_encoder_in_eval_mode_is_traced(tiny_params, model):
    assert frozen_text.applies(model)
    model.train()
    assert not frozen_text.applies(model) and frozen_text.traced_text_encoder(model) is None
    # a fine-tuned MiniLM reads word pieces, which only the learned cell space takes (ADR 23)
    update = {"finetune_text_layers": 1, "cell_text": "wordpiece", "space": "learned"}
    tuned = build_retriever(tiny_params.model.model_copy(update=update))
    tuned.eval()
    assert not frozen_text.applies(tuned)  # its MiniLM weights change in training: never traced


def test_a_failed_trace_falls_back_to_the_eager_model(model, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no tracing here")

    monkeypatch.setattr(frozen_text.torch.jit, "trace", broken)
    assert frozen_text.traced_text_encoder(model) is None
    with frozen_text.eager_only():
        eager = encode_queries(model, QUESTIONS)
    np.testing.assert_allclose(encode_queries(model, QUESTIONS), eager, atol=0)
