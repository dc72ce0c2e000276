"""The seeded synthetic corpus: determinism, element and box sanity, splits, questions."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from components.data.corpus import load_corpus
from components.data.questions import TEMPLATES
from components.data.synthetic import generate_corpus


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes_and_stale_files_cleared(tiny_params, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    (b / "images" / "old").mkdir(parents=True)
    (b / "images" / "old" / "0.png").write_bytes(b"stale")
    (b / "questions.jsonl").write_text("stale\n")
    summary = generate_corpus(tiny_params, a)
    generate_corpus(tiny_params, b)
    tree_a, tree_b = _tree(a), _tree(b)
    assert "images/old/0.png" not in tree_b
    assert tree_a.keys() == tree_b.keys()
    assert [k for k in tree_a if tree_a[k] != tree_b[k]] == []
    assert summary["seconds"] < 6, "tiny corpus must render in a few seconds"  # ~0.7 s measured
    assert summary["pages"] == len((a / "pages.jsonl").read_text().splitlines())


def test_other_seed_differs(tiny_params, tmp_path):
    other = tiny_params.model_copy(update={"seed": tiny_params.seed + 1})
    generate_corpus(other, tmp_path / "o")
    ref = generate_corpus(tiny_params, tmp_path / "r")
    assert ref["pages"] > 0
    assert (tmp_path / "o" / "questions.jsonl").read_bytes() != (
        tmp_path / "r" / "questions.jsonl"
    ).read_bytes()


def test_pages_have_elements_words_and_real_ink(tiny_corpus):
    kinds = Counter(b.kind for p in tiny_corpus.pages for b in p.blocks)
    for kind in ("title", "paragraph", "table", "form", "entity_card"):
        assert kinds[kind] > 0, kinds
    assert kinds["bar_chart"] + kinds["line_chart"] > 0
    assert all(
        p.collection == "synthetic" and p.doc.startswith("synthetic/") for p in tiny_corpus.pages
    )
    for page in tiny_corpus.pages[:6]:
        img = np.asarray(tiny_corpus.load_image(page).convert("L"))
        assert img.shape == (page.height, page.width)
        assert page.words and page.blocks and page.blocks[0].kind == "title"
        for word in page.words[:40]:
            x0, y0, x1, y1 = word.box
            crop = img[
                int(y0 * page.height) : int(np.ceil(y1 * page.height)),
                int(x0 * page.width) : int(np.ceil(x1 * page.width)),
            ]
            assert crop.size and crop.min() < 200, f"no ink under word {word.text!r} on {page.id}"
        # every word lies inside some block
        for word in page.words:
            assert any(
                b.box[0] - 1e-3 <= word.box[0]
                and word.box[2] <= b.box[2] + 1e-3
                and b.box[1] - 1e-3 <= word.box[1]
                and word.box[3] <= b.box[3] + 1e-3
                for b in page.blocks
            )


def test_questions_point_at_their_evidence(tiny_corpus):
    qs = tiny_corpus.questions
    assert len({q.id for q in qs}) == len(qs)
    assert {"table", "chart", "form", "paragraph", "entity"} <= {q.type for q in qs}
    for q in qs:
        page = tiny_corpus.page(q.page_id)
        assert q.split == page.split
        assert any(tuple(b.box) == tuple(q.box) for b in page.blocks), (
            "question box is an element box"
        )
        ab = q.meta["answer_box"]
        assert (
            q.box[0] - 1e-3 <= ab[0]
            and ab[2] <= q.box[2] + 1e-3
            and q.box[1] - 1e-3 <= ab[1]
            and ab[3] <= q.box[3] + 1e-3
        )
        # the answer is printed inside its answer box
        inside = " ".join(
            w.text
            for w in page.words
            if w.box[0] >= ab[0] - 1e-3
            and w.box[2] <= ab[2] + 1e-3
            and w.box[1] >= ab[1] - 1e-3
            and w.box[3] <= ab[3] + 1e-3
        )
        assert q.answers[0] in inside, (q.question, q.answers, inside)


def test_image_queries_hide_the_name(tiny_params, tmp_path):
    params = tiny_params.model_copy(
        update={"data": tiny_params.data.model_copy(update={"n_docs": 30})}
    )
    generate_corpus(params, tmp_path)
    corpus = load_corpus(tmp_path)
    image_qs = [q for q in corpus.questions if q.type == "entity_image"]
    assert image_qs
    for q in image_qs:
        assert q.entity and q.entity not in q.question and "this " in q.question
        with Image.open(corpus.query_image_path(q)) as img:
            assert min(img.size) >= 16
        card = next(b for b in corpus.page(q.page_id).blocks if tuple(b.box) == tuple(q.box))
        assert card.kind == "entity_card" and q.entity in card.text
    # paraphrases: some table questions do not use the page's row label
    table_qs = [q for q in corpus.questions if q.type == "table"]
    assert any(
        not any(
            w in q.question.lower()
            for w in (
                "revenue",
                "headcount",
                "customers",
                "orders",
                "operating cost",
                "net profit",
                "capital expenditure",
                "energy use",
            )
        )
        for q in table_qs
    )


def test_splits_labelled_heldout_and_hard_negatives(tiny_corpus, tiny_params):
    pages, qs = tiny_corpus.pages, tiny_corpus.questions
    doc_split = {}
    for p in pages:
        assert doc_split.setdefault(p.doc, p.split) == p.split, "split is per document"
    assert set(doc_split.values()) == {"train", "val", "test"}
    train = [q for q in qs if q.split == "train"]
    assert sum(q.labelled for q in train) == round(tiny_params.data.labelled_fraction * len(train))
    assert all(q.labelled for q in qs if q.split != "train")
    assert all(q.training_box is None and q.box is not None for q in train if not q.labelled)
    heldout = set(
        json.loads((tiny_corpus.root / "manifest.json").read_text())["templates"]["heldout"]
    )
    assert heldout and not any(q.meta["template"] in heldout for q in train)
    with_negatives = [q for q in qs if q.hard_negatives]
    assert with_negatives
    for q in with_negatives:
        for neg in q.hard_negatives:
            other = tiny_corpus.page(neg)
            assert other.doc != q.doc and other.split == q.split
            same_kinds = sorted(b.kind for b in other.blocks) == sorted(
                b.kind for b in tiny_corpus.page(q.page_id).blocks
            )
            assert same_kinds or other.meta["layout"] == tiny_corpus.page(q.page_id).meta["layout"]


def test_manifest_and_font_fallback(tiny_params, tmp_path, monkeypatch):
    from components.data import render

    monkeypatch.setattr(render, "FONT_DIR", tmp_path / "no-fonts")
    render.font.cache_clear()
    render.line_height.cache_clear()
    render.text_width.cache_clear()
    try:
        generate_corpus(tiny_params, tmp_path / "c")
    finally:
        render.font.cache_clear()
        render.line_height.cache_clear()
        render.text_width.cache_clear()
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["fonts"] == ["pillow-default"] and manifest["seed"] == tiny_params.seed
    assert load_corpus(tmp_path / "c").pages


def test_every_template_key_fills():
    from components.data.questions import fill

    slots = {
        "company": "C",
        "year": "2020",
        "label": "revenue",
        "syn": "income",
        "col": "Q1",
        "region": "North",
        "month": "May",
        "city": "X",
        "partner": "P",
        "project": "Atlas",
        "name": "Thing",
    }
    for key, phrasings in TEMPLATES.items():
        for p in phrasings:
            assert "{" not in fill(p, slots)
        if key.startswith("entity/"):
            assert "this building" in fill(phrasings[0], slots, image_kind="building")
