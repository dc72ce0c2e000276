"""train.global_score: late_interaction trains, validates and exports by MaxSim (ADR 28)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from components.model.late_interaction import maxsim_heatmaps, token_cell_scores
from components.model.retriever import build_retriever
from components.training.datamodule import RetrievalDataModule, build_samples
from components.training.fused_val import FusedValidation
from components.training.module import RetrieverModule


@pytest.fixture(scope="module")
def model(tiny_params):
    return build_retriever(tiny_params.model).eval()


def _params(tiny_params, fusion_aware: bool):
    params = tiny_params.model_copy(deep=True)
    params.train.global_score = "late_interaction"
    params.train.fusion_aware = fusion_aware
    return params


def test_fusion_aware_late_interaction_ranks_the_peak_of_maxsims_fused_heatmap(
    tiny_params, tiny_corpus, model
):
    params = _params(tiny_params, fusion_aware=True)
    module = RetrieverModule(params, model)
    batch = next(iter(RetrievalDataModule(params, tiny_corpus, model).train_dataloader()))
    with torch.no_grad():
        out, _, cells, tokens = module._loss(batch)
    per_token = token_cell_scores(tokens, cells)
    heat = maxsim_heatmaps(per_token, batch["attention_mask"], params.rag.maxsim_heatmap)
    fused = heat + params.rag.lexical_weight * batch["lexical_cells"]
    expected = F.cross_entropy(fused.max(-1).values / params.train.tau_global, batch["targets"])
    assert float(out.global_) == pytest.approx(float(expected), rel=1e-5)


def test_late_interaction_validation_ranks_pages_by_maxsim(tiny_params, model):
    module = RetrieverModule(_params(tiny_params, fusion_aware=False), model)
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, value)
    # Page "a": one cell per query token; page "b": one cell that is the tokens' mean direction.
    # The mean vector's best cell is on b, MaxSim prefers a (each token finds its own cell).
    t1, t2 = torch.eye(4)[0], torch.eye(4)[1]
    tokens = torch.stack([t1, t2])
    a = torch.stack([t1, t2, torch.zeros(4), torch.zeros(4)])
    b = F.normalize(t1 + t2, dim=0).expand(4, -1).clone()
    module._val_pages = {"a": a, "b": b}
    module._val_queries, module._val_gold = [tokens.mean(0, keepdim=True)], ["a"]
    module._val_tokens = [tokens]
    module.on_validation_epoch_end()
    assert logged["val/page_r1"] == 1.0
    module.late = False  # the same vectors by max cell pick page b
    module.on_validation_epoch_end()
    assert logged["val/page_r1"] == 0.0


def test_fused_validation_scores_maxsim_heatmaps_when_given_token_vectors(tiny_params, tiny_corpus):
    samples, _ = build_samples(tiny_corpus, "val", tiny_params.model.grid, False)
    fused = FusedValidation(tiny_params, tiny_corpus, samples)
    n, dim = tiny_params.model.grid**2, len(fused.page_ids) + 1
    eye = torch.eye(dim)
    # Each gold page holds its own direction in cell 0 only; each query's first token points at
    # it, its second at a direction no page holds (scaled by 10, as the vectors are in the test
    # above, so that the dense channel outweighs the lexical one).
    cells = {}
    for i, pid in enumerate(fused.page_ids):
        page = torch.zeros(n, dim)
        page[0] = eye[i]
        cells[pid] = page
    tokens = [10 * torch.stack([eye[fused.page_ids.index(s.page_id)], eye[-1]]) for s in samples]
    queries = torch.stack([t.mean(0) for t in tokens])
    assert fused.score(queries, cells, tokens)["fused_page_r1"] == 1.0
    # Tokens that point at another page move MaxSim's ranking although the vectors do not.
    wrong = [10 * torch.stack([eye[(fused.page_ids.index(s.page_id) + 1) % len(fused.page_ids)]] * 2)
             for s in samples]  # fmt: skip
    if len(fused.page_ids) > 1:
        assert fused.score(queries, cells, wrong)["fused_page_r1"] < 1.0
    assert np.isfinite(fused.score(queries, cells, tokens)["fused"])


@pytest.mark.slow
def test_late_interaction_training_exports_a_maxsim_model(
    tiny_params, tiny_corpus, tmp_path, monkeypatch
):
    from components.model.io import load_retriever
    from components.settings import get_settings
    from components.training.train import train_retriever

    monkeypatch.setenv("REGIONOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = get_settings()
    settings.home.mkdir(parents=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    result = train_retriever(_params(tiny_params, False), tiny_corpus, tmp_path / "model", settings)
    assert {"val/page_r1", "val/fused_page_r1"} <= set(result["final"])  # val ran under MaxSim
    assert load_retriever(tmp_path / "model" / "retriever").page_score == "maxsim"
