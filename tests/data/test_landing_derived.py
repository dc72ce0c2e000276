"""Landed PDFs without questions get derived questions at merge; their own questions stay as given."""

from __future__ import annotations

import json
import shutil

from components.data.corpus import load_corpus
from components.data.landing import ingest_landing, merge_landed
from tests.data.test_data_import import make_pdf
from tests.data.test_landing import _drop

PROSE = [
    "The harbour authority keeps a register of every vessel that enters the",
    "port during the winter season. Each entry records the captain, the cargo",
    "and the berth assigned by the pilot station on arrival at the outer quay.",
    "Vessels carrying timber must report their draught before they pass the",
    "breakwater, because the channel silts quickly after the autumn storms.",
]
SECOND = [
    "Fishing boats moor along the northern wall where the water stays calm and",
    "the market hall opens before dawn. Buyers inspect the catch on long tables",
    "while gulls circle above the cranes that lift crates from the narrow decks.",
]
PROSE_PDF = make_pdf(
    [
        [(72, 700 - 14 * i, t) for i, t in enumerate(PROSE)]
        + [(72, 600 - 14 * i, t) for i, t in enumerate(SECOND)],
    ],
    size=(612, 792),
)
THIN_PDF = make_pdf([[(20, 150, "Invoice total 1234"), (20, 100, "Paid in March")]])
OWN_QUESTION = {
    "id": "mine-1",
    "question": "Which station assigns the berth?",
    "answers": ["pilot station"],
    "doc": "harbour.pdf",
    "page": 0,
    "type": "handmade",
}


def _merge(tmp_path, params, tiny_corpus, files: dict[str, bytes]):
    landing, landed, corpus_dir = tmp_path / "landing", tmp_path / "landed", tmp_path / "corpus"
    shutil.copytree(tiny_corpus.root, corpus_dir)
    for name, data in files.items():
        _drop(landing, name, data)
    ingest_landing(landing, landed, params)
    summary = merge_landed(corpus_dir, landed, params)
    return summary, load_corpus(corpus_dir)


def test_landed_pdf_without_questions_gets_derived_questions_in_the_corpus(
    tmp_path, tiny_params, tiny_corpus
):
    summary, corpus = _merge(tmp_path, tiny_params, tiny_corpus, {"harbour.pdf": PROSE_PDF})
    derived = [q for q in corpus.questions if q.doc == "landed/harbour.pdf"]
    assert derived, "a landed PDF with a text layer and no questions gets derived questions"
    assert summary["landed_questions_derived"] == len(derived) == summary["landed_questions"]
    assert summary["derived_by_document"] == {"harbour.pdf": {"derived": len(derived)}}
    page = corpus.page("landed/harbour.pdf#0")
    for q in derived:
        assert q.meta["source"] == "derived"
        assert q.id.startswith("landed/harbour.pdf#0:") and q.page == 0
        assert q.answers and q.answers[0].casefold() in page.text.casefold()
        assert (q.box is not None) == q.labelled, "labelled keep their box, the rest are page-only"
        assert q.split == page.split, "a derived question takes its document's split"


def test_labelled_fraction_zero_leaves_every_derived_question_page_only(
    tmp_path, tiny_params, tiny_corpus
):
    params = tiny_params.model_copy(
        update={"realdocs": tiny_params.realdocs.model_copy(update={"labelled_fraction": 0.0})}
    )
    _, corpus = _merge(tmp_path, params, tiny_corpus, {"harbour.pdf": PROSE_PDF})
    derived = [q for q in corpus.questions if q.doc == "landed/harbour.pdf"]
    assert derived and all(q.box is None and not q.labelled for q in derived)


def test_landed_pdf_with_its_own_questions_keeps_them_untouched(tmp_path, tiny_params, tiny_corpus):
    files = {
        "harbour.pdf": PROSE_PDF,
        "questions.jsonl": (json.dumps(OWN_QUESTION) + "\n").encode(),
    }
    summary, corpus = _merge(tmp_path, tiny_params, tiny_corpus, files)
    mine = [q for q in corpus.questions if q.doc == "landed/harbour.pdf"]
    assert [q.id for q in mine] == ["landed/mine-1"], "no derived question beside the user's own"
    q = mine[0]
    assert (q.question, q.answers, q.page, q.type) == (
        OWN_QUESTION["question"],
        OWN_QUESTION["answers"],
        0,
        "handmade",
    )
    assert "source" not in q.meta
    assert summary["landed_questions_derived"] == 0 and summary["derived_by_document"] == {}


def test_pdf_too_thin_to_derive_from_is_kept_with_a_note(tmp_path, tiny_params, tiny_corpus):
    summary, corpus = _merge(tmp_path, tiny_params, tiny_corpus, {"invoice.pdf": THIN_PDF})
    assert corpus.has_page("landed/invoice.pdf#0"), "never dropped: it still takes part visually"
    note = summary["derived_by_document"]["invoice.pdf"]
    assert note["derived"] == 0 and "too thin" in note["note"] and "visual channel" in note["note"]
    assert summary["landed_pages"] == 1 and summary["landed_questions_derived"] == 0
