"""Stage 1 of two-stage retrieval by stored picture descriptors (components.index.pictures, ADR 8)."""

from __future__ import annotations

import base64
import json
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from components.config import IndexParams
from components.data.render import entity_picture, perturbed_query
from components.index.pictures import PictureIndex, decode_thumb, find_picture_boxes, page_pictures
from components.index.region_index import PageMeta, RegionIndex
from components.rag.engine import RagEngine
from components.rag.two_stage import stage_one

G, D = 4, 16
W, H = 600, 800
PIC_W, PIC_H = 160, 96
# Two pages of three entity cards each: (name, picture seed, picture top-left in pixels).
CARDS = {
    "cat#0": [
        ("MS Junstead", "13:MS Junstead", (40, 60)),
        ("The Storm at Ulvwick", "13:Storm", (220, 60)),
        ("Castle of Good Hope", "13:Castle", (400, 60)),
    ],
    "cat#1": [
        ("Harbour Osprey", "13:Osprey", (40, 300)),
        ("Pier of Lund", "13:Pier", (220, 300)),
        ("Mount Kelda", "13:Kelda", (400, 300)),
    ],
}


def _page(cards) -> tuple[Image.Image, list[list], list[tuple[int, int, int, int]]]:
    """A white page with pictures captioned below, a uniform bar, a framed box and a text line."""
    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    words, boxes = [], []
    for name, seed, (x, y) in cards:
        img.paste(entity_picture(seed, (PIC_W, PIC_H)), (x, y))
        boxes.append((x, y, x + PIC_W, y + PIC_H))
        draw.rectangle(
            [x - 3, y - 3, x + PIC_W + 3, y + PIC_H + 40], outline=(120, 120, 120)
        )  # card frame
        cx = x
        for token in name.split():
            tw = draw.textlength(token)
            draw.text((cx, y + PIC_H + 8), token, fill="black")
            words.append([token, cx / W, (y + PIC_H + 8) / H, (cx + tw) / W, (y + PIC_H + 20) / H])
            cx += tw + 5
        words.append(["Ship", x / W, (y + PIC_H + 22) / H, (x + 30) / W, (y + PIC_H + 34) / H])
    draw.rectangle([60, 600, 110, 760], fill=(30, 110, 70))  # a chart bar: uniform, not a picture
    draw.text((200, 700), "Overview of the collection", fill="black")
    words.append(["Overview", 200 / W, 700 / H, 260 / W, 712 / H])
    return img, words, boxes


@pytest.fixture(scope="module")
def picture_index():
    metas, expected = [], {}
    for page_id, cards in CARDS.items():
        img, words, boxes = _page(cards)
        metas.append(
            PageMeta(
                page_id=page_id,
                doc=page_id.split("#")[0] + page_id[-1],
                words=words,
                width=W,
                height=H,
                pictures=page_pictures(img, words),
            )
        )
        expected[page_id] = boxes
    cells = np.random.default_rng(0).standard_normal((len(metas), G * G, D)).astype(np.float32)
    return RegionIndex.build(metas, cells, IndexParams(candidates=2), "fp"), expected


class _FakeRetriever:
    fingerprint = "fp"
    grid, dim = G, D


def test_pictures_are_the_pasted_images_not_bars_frames_or_text(picture_index):
    index, expected = picture_index
    for page_id, boxes in expected.items():
        found = sorted(
            tuple(round(v * s) for v, s in zip(p["box"], (W, H, W, H)))
            for p in index.meta(page_id).pictures
        )
        assert found == sorted(boxes)
        assert all(
            decode_thumb(p["thumb"]).shape == (24, 40, 3) for p in index.meta(page_id).pictures
        )
    img, words, boxes = _page(CARDS["cat#0"])
    assert len(find_picture_boxes(img, words)) == 3
    # Without the text layer the caption is ink too, but each caption word is too small to count.
    assert sorted(find_picture_boxes(img, [])) == sorted(boxes)


@pytest.mark.parametrize("trial", range(3))
def test_stage_one_finds_the_perturbed_pictures_entity_and_rewrites(
    picture_index, tiny_params, trial
):
    index, expected = picture_index
    engine = RagEngine(_FakeRetriever(), index, tiny_params)
    for page_id, cards in CARDS.items():
        for (name, seed, _), box in zip(cards, expected[page_id]):
            query = perturbed_query(seed, (PIC_W, PIC_H), random.Random(f"{trial}:{seed}"))
            trace = stage_one(engine, query, "What is the home port of this ship?")
            assert trace.method == "pictures"
            assert (trace.entity, trace.entity_page) == (name, page_id)
            assert trace.rewritten == f"What is the home port of {name}?"
            assert np.allclose(trace.entity_box, np.divide(box, (W, H, W, H)), atol=2e-3)
            assert trace.score > 0.5


def test_engine_answers_an_image_question_two_stage_as_served(
    picture_index, tiny_params, monkeypatch
):
    """RagEngine.query (used by answer, i.e. serving, and by evaluation) rewrites with the entity's
    name and encodes the text alone; ``rag.image_query: fused`` keeps the summed text+image vector."""
    index, _ = picture_index
    engine = RagEngine(_FakeRetriever(), index, tiny_params)
    encoded = []

    def fake_encode(question, query_image=None):
        encoded.append((question, query_image is not None))
        return np.ones(D, dtype=np.float32)

    monkeypatch.setattr(engine, "encode", fake_encode)
    query = perturbed_query("13:Osprey", (PIC_W, PIC_H), random.Random(5))
    text, _ = engine.query("Where is this ship registered?", query)
    assert text == "Where is Harbour Osprey registered?" and encoded == [(text, False)]
    assert engine.answer("Where is this ship registered?", k=1, query_image=query).question == text

    fused = tiny_params.model_copy(
        update={"rag": tiny_params.rag.model_copy(update={"image_query": "fused"})}
    )
    engine.params = fused
    encoded.clear()
    assert (
        engine.query("Where is this ship registered?", query)[0] == "Where is this ship registered?"
    )
    assert encoded == [("Where is this ship registered?", True)]


def test_a_picture_that_is_not_in_the_index_scores_low(picture_index):
    index, _ = picture_index
    query = perturbed_query("13:never drawn", (PIC_W, PIC_H), random.Random(0))
    own = perturbed_query("13:Kelda", (PIC_W, PIC_H), random.Random(0))
    assert index.pictures.search(query, 1)[0].score < index.pictures.search(own, 1)[0].score - 0.2
    with pytest.raises(ValueError, match="expected 2880"):
        decode_thumb(base64.b64encode(bytes(10)).decode())


def test_pictures_survive_save_load_and_an_old_index_falls_back_to_pixels(
    picture_index, tiny_params, tmp_path, monkeypatch
):
    index, _ = picture_index
    folder = index.save(tmp_path / "idx")
    loaded = RegionIndex.load(tmp_path / "idx")
    assert [m.pictures for m in loaded.metas] == [m.pictures for m in index.metas]
    assert len(loaded.pictures) == 6 and loaded.stats()["pictures"] == 6

    # An index saved before pictures were stored: pages.json rows without the key.
    rows = json.loads((folder / "pages.json").read_text())
    for row in rows:
        del row["pictures"]
    (folder / "pages.json").write_text(json.dumps(rows))
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]  # such an index predates the per-file checksums too
    (folder / "manifest.json").write_text(json.dumps(manifest))
    old = RegionIndex.load(tmp_path / "idx")
    assert len(old.pictures) == 0 and all(m.pictures == [] for m in old.metas)
    planted = old.cell_vectors("cat#1")[
        5
    ]  # the pixel path's query vector, planted on a cell of cat#1
    from components.model import encode

    monkeypatch.setattr(encode, "encode_image_queries", lambda retriever, images: planted[None, :])
    trace = stage_one(
        RagEngine(_FakeRetriever(), old, tiny_params),
        entity_picture("13:Kelda", (PIC_W, PIC_H)),
        "Where is this mountain?",
    )
    assert trace.method == "pixels" and trace.entity_page == "cat#1"

    # rag.image_stage_one=pixels chooses the pixel path even when pictures are stored.
    pixels = tiny_params.model_copy(
        update={"rag": tiny_params.rag.model_copy(update={"image_stage_one": "pixels"})}
    )
    assert (
        stage_one(
            RagEngine(_FakeRetriever(), loaded, pixels),
            entity_picture("13:Kelda", (PIC_W, PIC_H)),
            "Where is this mountain?",
        ).method
        == "pixels"
    )


def test_generated_corpus_image_questions_find_their_entity(tiny_corpus):
    """The real generator's cards and perturbed query images, through ``page_metas`` as index build uses it."""
    from components.index.build import page_metas
    from components.rag.two_stage import entity_name_near

    metas = page_metas(tiny_corpus, tiny_corpus.pages)
    pictures = PictureIndex(metas)
    by_id = {m.page_id: m for m in metas}
    questions = [q for q in tiny_corpus.questions if q.query_image and q.entity]
    assert questions, "the tiny corpus has no image questions"
    for q in questions:
        with Image.open(tiny_corpus.query_image_path(q)) as img:
            best = pictures.search(img.convert("RGB"), 1)[0]
        assert entity_name_near(by_id[best.page_id].words, best.box) == q.entity, q.id
