"""Serving refuses what it would otherwise coerce or grind through: loose k, string flags, huge batches."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.exceptions import MlflowException

from components.config import IndexParams, load_params
from components.index.region_index import PageMeta, RegionIndex
from components.rag.engine import RagEngine
from components.serving import checkpoint
from tests.support.registry_fakes import fake_factory

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(tmp_path, tiny_params, monkeypatch):
    monkeypatch.setattr(checkpoint, "ENGINE_FACTORY", fake_factory)
    (tmp_path / "model" / "retriever").mkdir(parents=True)
    (tmp_path / "model" / "retriever" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "index").mkdir()
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_params.to_dict()))
    model = checkpoint.RagCheckpoint()
    model.load_context(
        SimpleNamespace(
            artifacts={
                "model": str(tmp_path / "model"),
                "index": str(tmp_path / "index"),
                "params": str(params_file),
            }
        )
    )
    return model


def test_predict_refuses_more_rows_than_max_rows_per_request(served):
    assert served.max_rows == 64  # registry.max_rows_per_request in params.yaml
    with pytest.raises(MlflowException) as err:
        served.predict(None, pd.DataFrame([{"question": f"q{i}"} for i in range(65)]))
    assert "at most 64" in err.value.message and err.value.get_http_status_code() == 400
    assert served.engine.calls == []  # refused before any retrieval
    assert len(served.predict(None, pd.DataFrame([{"question": f"q{i}"} for i in range(64)]))) == 64


@pytest.mark.parametrize(
    "row, message",
    [
        ({"question": "q", "k": 2.9}, "'k' must be an integer"),
        ({"question": "q", "k": True}, "'k' must be an integer"),
        ({"question": "q", "highlights": "false"}, "'highlights' must be true or false"),
        ({"question": "q", "highlights": 0}, "'highlights' must be true or false"),
    ],
)
def test_predict_rejects_loose_k_and_flag_types(served, row, message):
    with pytest.raises(MlflowException) as err:
        served.predict(None, [row])
    assert message in err.value.message and err.value.get_http_status_code() == 400
    with pytest.raises(MlflowException, match="'k' must be an integer"):
        served.predict(None, [{"question": "q"}], params={"k": 2.9})


def test_max_rows_per_request_default_matches_params_yaml():
    from components.config import RegistryParams

    assert (
        load_params(REPO / "params.yaml").registry.max_rows_per_request
        == RegistryParams().max_rows_per_request
    )


@pytest.mark.parametrize("k", [2.9, 0, -1, True, "3", np.float64(2.0)])
def test_engine_rejects_k_that_is_not_a_positive_integer(tiny_params, k):
    rng = np.random.default_rng(0)
    cells = rng.standard_normal((6, 16, 32)).astype(np.float32)
    index = RegionIndex.build(
        [PageMeta(page_id=f"d{i}#0", doc=f"d{i}") for i in range(6)], cells, IndexParams(), "fp"
    )
    engine = RagEngine(None, index, tiny_params)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        engine.answer_vector("q", cells[0, 0], k=k)
    assert len(engine.answer_vector("q", cells[0, 0], k=np.int64(2)).boxes) <= 2


def test_models_logged_before_the_move_to_serving_still_load_their_checkpoint():
    """A version logged before components/serving/ existed runs ``from components.registry.checkpoint
    import RagCheckpoint`` (its bundled served_model.py); that must be the serving class itself."""
    import components.registry.checkpoint as old_path
    from components.registry.checkpoint import (
        RagCheckpoint,  # the old served_model.py's import line
    )

    assert RagCheckpoint is checkpoint.RagCheckpoint
    assert (
        old_path.ARTIFACT_MODEL == checkpoint.ARTIFACT_MODEL
        and old_path.signature is checkpoint.signature
    )
