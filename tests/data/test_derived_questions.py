"""Questions derived from real PDF layout (pdfminer gold units) and block recall against them.

The PDFs are drawn here with matplotlib (TrueType text, so pdfminer and pdfium both read the
text layer); nothing is downloaded.
"""

from __future__ import annotations

import pytest

from components.data.derived_questions import derive_questions
from components.data.gold_units import page_units
from components.data.schema import Block, Page, Question
from components.evaluation.block_recall import block_recall

W_IN, H_IN = 8.5, 11.0
PARAGRAPH = [
    "The installer copies every file into the prefix directory before it",
    "checks the signatures of the archive. Once the archive is verified the",
    "compiler builds the runtime library and the documentation pages for",
    "every installed language. The whole procedure takes a few minutes.",
]
ENTRIES = [
    ("--verbose", ["print every command before running it and report", "the time each step takes"]),
    (
        "--prefix",
        ["install all files below the given directory instead", "of the system default location"],
    ),
]
CAPTION = "Figure 1: Build time of the runtime library per language"
AXES = (0.25, 0.40, 0.5, 0.22)  # matplotlib figure fractions: left, bottom, width, height


def _draw_page(pdf, heading: str, paragraph: list[str]) -> None:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(W_IN, H_IN))
    lh = 14 / 72 / H_IN
    y = 0.92
    fig.text(0.1, y, heading, fontsize=15, weight="bold")
    y -= 2.2 * lh
    for line in paragraph:
        fig.text(0.1, y, line, fontsize=10)
        y -= lh
    y -= 1.5 * lh
    for term, description in ENTRIES:
        fig.text(0.1, y, term, fontsize=10, family="monospace")
        for line in description:
            fig.text(0.3, y, line, fontsize=10)
            y -= lh
        y -= 0.5 * lh
    ax = fig.add_axes(AXES)
    ax.plot([0, 1, 2], [1, 3, 2])
    fig.text(0.2, AXES[1] - 0.06, CAPTION, fontsize=10)
    pdf.savefig(fig)
    plt.close(fig)


def _make_pdf(path, pages: list[tuple[str, list[str]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages

    with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(path) as pdf:
        for heading, paragraph in pages:
            _draw_page(pdf, heading, paragraph)


@pytest.fixture(scope="module")
def manual_pdf(tmp_path_factory):
    path = tmp_path_factory.mktemp("pdf") / "manual.pdf"
    _make_pdf(path, [("2 Installing the package", PARAGRAPH)])
    return path


def _answer_boxes(pdf_path, page: int, answer: str) -> list[tuple[float, float, float, float]]:
    """Every place pdfium finds ``answer`` on the page, normalised top-left."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(pdf_path))
    p = pdf[page]
    w, h = p.get_size()
    tp = p.get_textpage()
    found, searcher = [], tp.search(answer, match_case=True)
    while (hit := searcher.get_next()) is not None:
        start, count = hit
        boxes = [tp.get_charbox(i) for i in range(start, start + count)]
        left, bottom = min(b[0] for b in boxes), min(b[1] for b in boxes)
        right, top = max(b[2] for b in boxes), max(b[3] for b in boxes)
        found.append((left / w, 1 - top / h, right / w, 1 - bottom / h))
    searcher.close()
    tp.close()
    pdf.close()
    return found


def _inside(inner, outer, slack: float = 0.004) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[2] <= outer[2] + slack
        and inner[3] <= outer[3] + slack
    )


def test_derivation_is_deterministic_for_a_seed(manual_pdf):
    a = derive_questions(manual_pdf, "pkg/manual.pdf", seed=7)
    b = derive_questions(manual_pdf, "pkg/manual.pdf", seed=7)
    assert a.questions and a.questions == b.questions
    assert a.skips == b.skips


def test_every_kind_is_derived_and_validates_against_the_contract(manual_pdf):
    result = derive_questions(manual_pdf, "pkg/manual.pdf", seed=7, max_per_page=10)
    kinds = {q["type"] for q in result.questions}
    assert kinds == {"cloze", "definition", "caption", "heading"}
    for record in result.questions:
        q = Question.model_validate(record)
        assert q.doc == "pkg/manual.pdf" and q.page == 0
        assert q.box is not None and all(0.0 <= v <= 1.0 for v in q.box)
        assert q.answers and q.answers[0] not in q.question


def test_cloze_and_definition_boxes_hold_the_answer_words(manual_pdf):
    result = derive_questions(manual_pdf, "pkg/manual.pdf", seed=7, max_per_page=10)
    checked = 0
    for q in result.questions:
        if q["type"] in ("cloze", "definition"):
            places = _answer_boxes(manual_pdf, q["page"], q["answers"][0])
            assert places, q
            assert any(_inside(p, q["box"]) for p in places), (q, places)
            checked += 1
    assert checked >= 2


def test_definition_unit_is_the_whole_entry(manual_pdf):
    result = derive_questions(manual_pdf, "pkg/manual.pdf", seed=7, max_per_page=10)
    (q,) = [q for q in result.questions if q["type"] == "definition"][:1]
    term = q["answers"][0]
    description = dict(ENTRIES)[term]
    for words in (term, description[0], description[-1]):
        assert any(_inside(p, q["box"]) for p in _answer_boxes(manual_pdf, 0, words)), words


def test_cloze_unit_is_the_whole_paragraph(manual_pdf):
    (unit,) = [
        u
        for u in page_units(manual_pdf)[0].units
        if u.kind == "paragraph" and "installer" in u.text
    ]
    assert len(unit.rows) == len(PARAGRAPH)
    assert unit.text == " ".join(PARAGRAPH)


def test_caption_box_covers_the_figure_and_its_caption(manual_pdf):
    result = derive_questions(manual_pdf, "pkg/manual.pdf", seed=7, max_per_page=10)
    (q,) = [q for q in result.questions if q["type"] == "caption"]
    assert q["answers"] == ["Figure 1"]
    left, bottom, width, height = AXES
    axes_box = (left, 1 - (bottom + height), left + width, 1 - bottom)
    assert _inside(axes_box, q["box"], slack=0.01)
    caption_places = _answer_boxes(manual_pdf, 0, "Build time of the runtime library")
    assert any(_inside(p, q["box"]) for p in caption_places)


def test_repeated_sentence_is_asked_once_and_the_skip_is_counted(tmp_path):
    path = tmp_path / "twice.pdf"
    _make_pdf(path, [("2 Installing the package", PARAGRAPH), ("3 Installing it again", PARAGRAPH)])
    result = derive_questions(path, "twice.pdf", seed=7, max_per_page=10)
    cloze_pages = [q["page"] for q in result.questions if q["type"] == "cloze"]
    assert cloze_pages == [0]
    assert result.skips["cloze: duplicate evidence (seen on another page)"] == 1


def test_labelled_share_follows_the_fraction(manual_pdf):
    none = derive_questions(manual_pdf, "m.pdf", seed=7, labelled_fraction=0.0, max_per_page=10)
    every = derive_questions(manual_pdf, "m.pdf", seed=7, labelled_fraction=1.0, max_per_page=10)
    assert not any(q["labelled"] for q in none.questions)
    assert all(q["labelled"] for q in every.questions)
    assert all(
        q["box"] is not None for q in none.questions
    )  # withheld from training, kept for eval


# --------------------------------------------------------------------------- block recall
def _page(blocks: list[tuple[float, float, float, float]]) -> Page:
    return Page(
        doc="d.pdf",
        page=0,
        image="images/d.pdf/0.png",
        width=100,
        height=100,
        blocks=[Block(kind="paragraph", text=f"b{i}", box=b) for i, b in enumerate(blocks)],
    )


def _q(qid: str, box, kind: str) -> Question:
    return Question(id=qid, question="q?", answers=["a"], doc="d.pdf", page=0, box=box, type=kind)


def test_block_recall_counts_units_matched_at_iou_half():
    page = _page([(0.1, 0.1, 0.9, 0.3), (0.1, 0.5, 0.5, 0.6)])
    questions = [
        _q("hit", (0.1, 0.1, 0.9, 0.28), "cloze"),  # IoU 0.9 with block 0
        _q("miss", (0.1, 0.5, 0.95, 0.6), "definition"),  # IoU 0.04 / 0.085 = 0.47 with block 1
        _q("split", (0.1, 0.1, 0.9, 0.7), "caption"),  # spans both blocks: no single block matches
        Question(id="nobox", question="q?", doc="d.pdf", page=0, type="cloze"),
        Question(
            id="other", question="q?", doc="e.pdf", page=0, box=(0.1, 0.1, 0.2, 0.2), type="cloze"
        ),
    ]
    misses: list[dict] = []
    result = block_recall([page], questions, misses=misses)
    assert result["overall"]["n"] == 3 and result["overall"]["matched"] == 1
    assert [m["id"] for m in misses] == ["miss", "split"]
    assert misses[0]["best_block"] == [0.1, 0.5, 0.5, 0.6]
    assert result["overall"]["recall"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["by_type"]["cloze"]["recall"] == 1.0
    assert result["by_type"]["definition"]["recall"] == 0.0
    assert result["by_type"]["caption"]["recall"] == 0.0
    assert result["no_box"] == 1 and result["page_missing"] == 1


def test_block_recall_threshold_is_inclusive_and_tunable():
    page = _page([(0.0, 0.0, 0.5, 1.0)])
    half = _q("half", (0.0, 0.0, 1.0, 1.0), "cloze")  # IoU exactly 0.5
    assert block_recall([page], [half])["overall"]["recall"] == 1.0
    assert block_recall([page], [half], threshold=0.6)["overall"]["recall"] == 0.0


def test_a_page_pdfminer_cannot_interpret_is_skipped_and_counted(tmp_path, monkeypatch):
    from pdfminer.pdfinterp import PDFPageInterpreter
    from pdfminer.psexceptions import PSSyntaxError

    path = tmp_path / "two.pdf"
    _make_pdf(
        path, [("2 Installing the package", PARAGRAPH), ("3 Removing the package", PARAGRAPH[:2])]
    )
    real = PDFPageInterpreter.process_page
    calls = []

    def broken_second_page(self, page):
        calls.append(page)
        if len(calls) == 2:
            raise PSSyntaxError("Invalid dictionary construct")
        return real(self, page)

    monkeypatch.setattr(PDFPageInterpreter, "process_page", broken_second_page)
    result = derive_questions(path, "two.pdf", seed=7, max_per_page=10)
    assert result.skips["page: pdfminer cannot lay out the page"] == 1
    assert result.questions and {q["page"] for q in result.questions} == {0}
