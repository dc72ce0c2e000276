"""ADR 23: the retriever starts in MiniLM's space, trains by the served fusion, never resumes stale
code, can export its untrained weights, and can train on real pages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from components.config import Params
from components.data.corpus import Corpus
from components.data.schema import Page, Word
from components.model.io import load_retriever, save_retriever
from components.model.retriever import build_retriever, cell_scores
from components.settings import get_settings
from components.training.datamodule import RetrievalDataModule, build_samples
from components.training.fused_val import FusedValidation
from components.training.module import RetrieverModule
from components.training.real_pages import JoinedCorpus
from components.training.train import checkpoint_key, code_digest, train_retriever


@pytest.fixture(scope="module")
def model(tiny_params):
    return build_retriever(tiny_params.model).eval()


def _page(words) -> Page:
    return Page(doc="d", page=0, image="x.png", width=100, height=100,
                words=[Word(text=t, box=b) for t, b in words])  # fmt: skip


def test_step0_cells_are_the_normalised_pooled_minilm_states(model):
    page = _page([("castle", (0.0, 0.0, 0.1, 0.1)), ("river", (0.5, 0.5, 0.6, 0.6))])
    feats = model.featurizer(page, Image.new("RGB", (64, 64), "white"))
    with torch.no_grad():
        cells = model.encode_cells(
            feats.pixels[None], feats.cell_tokens[None], feats.cell_text[None]
        )[0]
    assert torch.allclose(cells, F.normalize(feats.cell_text, dim=-1), atol=1e-6)
    assert int((cells.norm(dim=-1) > 0).sum()) == 2  # only the two cells with words


def test_step0_query_tokens_are_the_normalised_minilm_states(model):
    enc = model.tokenize_queries(["where is the castle", "river"])
    with torch.no_grad():
        tokens = model.encode_query_token_vectors(enc["input_ids"], enc["attention_mask"])
        states = model.text(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1)
    assert torch.allclose(tokens, F.normalize(states, dim=-1) * mask, atol=1e-6)


def test_pretrained_space_needs_the_encoder_width(tiny_params):
    with pytest.raises(ValueError, match="must equal the text encoder's width"):
        build_retriever(tiny_params.model.model_copy(update={"dim": 128}))


def test_export_without_space_loads_as_the_learned_encoder(tiny_params, tmp_path):
    learned = build_retriever(tiny_params.model.model_copy(update={"space": "learned", "dim": 128}))
    save_retriever(learned, tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["model"]["space"]  # as main's exports before ADR 23
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    loaded = load_retriever(tmp_path / "old")
    assert loaded.params.space == "learned" and type(loaded.cells).__name__ == "CellEncoder"


def test_checkpoint_key_changes_with_the_training_code(tiny_params, tiny_corpus, tmp_path):
    """A stale last.ckpt of other code is never resumed: the key covers the training sources."""
    for package in ("components/model", "components/loss", "components/training"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "a.py").write_text("x = 1\n")
    before = code_digest(tmp_path)
    (tmp_path / "components/loss/a.py").write_text("x = 2\n")
    after = code_digest(tmp_path)
    assert before != after
    assert checkpoint_key(tiny_params, tiny_corpus, before) != checkpoint_key(
        tiny_params, tiny_corpus, after
    )
    assert checkpoint_key(tiny_params, tiny_corpus) == checkpoint_key(
        tiny_params, tiny_corpus, code_digest()
    )


def test_fused_validation_follows_the_lexical_channel_when_dense_is_silent(
    tiny_params, tiny_corpus
):
    samples, _ = build_samples(tiny_corpus, "val", tiny_params.model.grid, False)
    fused = FusedValidation(tiny_params, tiny_corpus, samples)
    n = tiny_params.model.grid**2
    cells = {pid: torch.zeros(n, 8) for pid in fused.page_ids}
    silent = fused.score(torch.zeros(len(samples), 8), cells)
    lexical_top = [
        fused.page_ids[int(np.argmax([m.max() for m in maps]))] for maps, _ in fused._lexical()
    ]
    assert silent["fused_page_r1"] == pytest.approx(
        np.mean([t == s.page_id for t, s in zip(lexical_top, samples)])
    )
    # A dense channel that points every question at its own gold page wins page R@1 outright.
    eye = torch.eye(len(fused.page_ids))
    cells = {pid: eye[i].expand(n, -1).clone() for i, pid in enumerate(fused.page_ids)}
    queries = torch.stack([eye[fused.page_ids.index(s.page_id)] * 10 for s in samples])
    assert fused.score(queries, cells)["fused_page_r1"] == 1.0
    assert fused.score(queries, cells)["fused"] >= 1.0


def test_fusion_aware_loss_adds_the_lexical_bias_to_the_global_logits(
    tiny_params, tiny_corpus, model
):
    # Max-cell scoring (the late-interaction default's fused peak is tested in
    # tests/training/test_late_interaction_training.py).
    plain_params = tiny_params.model_copy(deep=True)
    plain_params.train.global_score = "max_cell"
    params = plain_params.model_copy(deep=True)
    params.train.fusion_aware = True
    data = RetrievalDataModule(params, tiny_corpus, model)
    batch = next(iter(data.train_dataloader()))
    assert batch["lexical_cells"].shape == (
        len(batch["targets"]),
        len(batch["page_ids"]),
        params.model.grid**2,
    )
    aware, plain = RetrieverModule(params, model), RetrieverModule(plain_params, model)
    with torch.no_grad():
        out_aware, queries, cells, _ = aware._loss(batch)
        out_plain, _, _, _ = plain._loss(batch)
    fused = cell_scores(queries, cells) + params.rag.lexical_weight * batch["lexical_cells"]
    expected = F.cross_entropy(fused.max(-1).values / params.train.tau_global, batch["targets"])
    assert float(out_aware.global_) == pytest.approx(float(expected), rel=1e-5)
    assert float(out_aware.global_) != pytest.approx(float(out_plain.global_), rel=1e-4)


def test_selection_ignores_checks_before_pseudo_labels(tiny_params, tiny_corpus, model):
    params = tiny_params.model_copy(deep=True)
    params.train.pseudo_label_warmup_steps = 10**6
    params.train.global_score = "max_cell"  # val ranks by the one query vector below
    module = RetrieverModule(params, model)
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, value)
    module._val_queries, module._val_gold = [torch.ones(1, 384)], ["p"]
    module._val_pages = {"p": torch.ones(4, 384)}
    module.on_validation_epoch_end()
    assert logged["val/page_r1"] == 1.0 and logged["val/select"] == -1.0


@pytest.mark.slow
def test_max_steps_zero_exports_the_untrained_pretrained_model(
    tiny_params, tiny_corpus, tmp_path, monkeypatch
):
    monkeypatch.setenv("REGIONOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = get_settings()
    settings.home.mkdir(parents=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    params = Params.model_validate(
        {**tiny_params.model_dump(), "train": {**tiny_params.train.model_dump(), "max_steps": 0}}
    )
    result = train_retriever(params, tiny_corpus, tmp_path / "out", settings)
    assert result["steps"] == result["exported_step"] == 0 and "val/fused" in result["final"]
    exported = load_retriever(tmp_path / "out" / "retriever")
    assert torch.count_nonzero(exported.cells.residual.weight) == 0
    assert torch.count_nonzero(exported.query_proj.residual.weight) == 0


def test_joined_corpus_reads_each_page_image_from_its_own_folder(tmp_path):
    from components.data.corpus import save_corpus_tables

    parts = []
    for name in ("synthetic", "real"):
        root = tmp_path / name
        (root / "images").mkdir(parents=True)
        Image.new("RGB", (8, 8), "red" if name == "real" else "blue").save(
            root / "images" / "p.png"
        )
        page = Page(
            doc=f"{name}.pdf", page=0, image="images/p.png", width=8, height=8, split="train"
        )
        save_corpus_tables(root, [page], [])
        parts.append(Corpus(root=root, pages=[page]))
    joined = JoinedCorpus(parts)
    assert [joined.load_image(p).getpixel((0, 0)) for p in joined.pages] == [
        (0, 0, 255),
        (255, 0, 0),
    ]
    with pytest.raises(ValueError, match="share page ids"):
        JoinedCorpus([parts[0], parts[0]])


def test_block_context_unit_reads_each_block_without_its_neighbours(model):
    """context_unit=block: a block's states are MiniLM's over that block's text alone (ADR 23)."""
    from components.data.schema import Block
    from components.model.featurize import PageFeaturizer

    words = [("castle", (0.0, 0.0, 0.1, 0.1)), ("walls", (0.12, 0.0, 0.2, 0.1)),
             ("river", (0.5, 0.5, 0.6, 0.6)), ("banks", (0.62, 0.5, 0.7, 0.6))]  # fmt: skip
    page = _page(words).model_copy(update={"blocks": [
        Block(kind="paragraph", box=(0.0, 0.0, 0.3, 0.15), text="castle walls"),
        Block(kind="paragraph", box=(0.45, 0.45, 0.75, 0.65), text="river banks"),
    ]})  # fmt: skip
    feats = {unit: PageFeaturizer(model.tokenizer, 8, 64, 8, text_model=model.text, context_unit=unit).cell_text(page)
             for unit in ("page", "block")}  # fmt: skip
    enc = model.tokenizer(["river banks"], return_tensors="pt")
    with torch.no_grad():
        alone = model.text(**enc).last_hidden_state[0]
    river = model.tokenizer(["river"], add_special_tokens=False)["input_ids"][0]
    cell = 4 * 8 + 4  # the cell holding "river"'s centre on the 8x8 grid
    expected = alone[1 : 1 + len(river)].mean(0)
    assert torch.allclose(feats["block"][cell], expected, atol=1e-5)
    assert not torch.allclose(
        feats["page"][cell], expected, atol=1e-3
    )  # read with the castle's words
