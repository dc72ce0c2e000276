"""Layout blocks of born-digital PDF pages (components.data.pdf_layout) and their import.

Over 400 lines on purpose: every layout rule is tested on the same generated PDFs, built once
here.
"""

from __future__ import annotations

import ctypes
import json
from collections import Counter
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import Image

from components.data.layout import page_blocks
from components.data.pdf_layout import layout_blocks, pdf_page_blocks
from components.data.pdf_objects import PageContent, PdfWord
from components.evaluation.metrics import iou

W, H = 600.0, 800.0
FULL = (
    "Layout analysis groups the words of a page into the units that a reader would "
    "highlight as evidence"
)


class PdfBuilder:
    """One page drawn with pdfium's page-object API; every object's box (points, origin
    top-left) is kept, so a test knows where each unit really is."""

    def __init__(self) -> None:
        self.pdf = pdfium.PdfDocument.new()
        self.page = self.pdf.new_page(W, H)

    def _bounds(self, obj) -> tuple[float, float, float, float]:
        left, bottom, right, top = (ctypes.c_float() for _ in range(4))
        pdfium_c.FPDFPageObj_GetBounds(obj, left, bottom, right, top)
        return left.value, H - top.value, right.value, H - bottom.value

    def text(self, x: float, baseline: float, s: str, font: str = "Helvetica", size: float = 10.0):
        obj = pdfium_c.FPDFPageObj_NewTextObj(self.pdf.raw, font.encode(), ctypes.c_float(size))
        raw = (s + "\0").encode("utf-16-le")
        pdfium_c.FPDFText_SetText(obj, (ctypes.c_ushort * (len(raw) // 2)).from_buffer_copy(raw))
        pdfium_c.FPDFPageObj_Transform(obj, 1, 0, 0, 1, x, H - baseline)
        pdfium_c.FPDFPage_InsertObject(self.page.raw, obj)
        return self._bounds(obj)

    def curve(self, points: list[tuple[float, float]]):
        """A stroked path through ``points`` (top-left), its last leg a Bézier curve."""
        (x, y), *rest = points
        obj = pdfium_c.FPDFPageObj_CreateNewPath(x, H - y)
        for px, py in rest[:-1]:
            pdfium_c.FPDFPath_LineTo(obj, px, H - py)
        ex, ey = rest[-1]
        pdfium_c.FPDFPath_BezierTo(obj, ex - 60, H - ey + 40, ex - 30, H - ey - 30, ex, H - ey)
        pdfium_c.FPDFPath_SetDrawMode(obj, 0, True)
        pdfium_c.FPDFPage_InsertObject(self.page.raw, obj)
        return self._bounds(obj)

    def save(self, path: Path) -> Path:
        pdfium_c.FPDFPage_GenerateContent(self.page.raw)
        self.pdf.save(str(path))
        return path


def union(*boxes):
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def norm(box):
    return (box[0] / W, box[1] / H, box[2] / W, box[3] / H)


def sample_page(path: Path) -> tuple[Path, dict[str, list]]:
    """Heading, two paragraphs, a bullet list, an option list, a captioned figure, a two-column
    section and a folio; returns the PDF and the true box of every unit by kind."""
    b = PdfBuilder()
    truth: dict[str, list] = {
        k: [] for k in ("heading", "paragraph", "list_item", "definition", "figure", "page_footer")
    }
    truth["heading"].append(b.text(72, 80, "1 Introduction", "Helvetica-Bold", 16))
    truth["paragraph"].append(
        union(
            b.text(72, 110, FULL),
            b.text(72, 122, FULL),
            b.text(72, 134, "and it keeps them apart."),
        )
    )
    truth["paragraph"].append(union(b.text(72, 160, FULL), b.text(72, 172, "on every page.")))
    for top, lines in (
        (200, ["The first item of the list."]),
        (
            214,
            [
                "The second item, long enough that it wraps onto a second line",
                "under its own text.",
            ],
        ),
        (240, ["The third item."]),
    ):
        boxes = [b.text(80, top, "\u2022")]
        boxes += [b.text(92, top + 12 * k, line) for k, line in enumerate(lines)]
        truth["list_item"].append(union(*boxes))
    truth["definition"].append(
        union(
            b.text(72, 270, "-v, --verbose", "Courier"),
            b.text(200, 270, "Print each file name as it is processed."),
        )
    )
    truth["definition"].append(
        union(
            b.text(72, 284, "-q, --quiet", "Courier"),
            b.text(200, 284, "Suppress all normal output; only errors are"),
            b.text(200, 296, "reported on the standard error stream."),
        )
    )
    drawing = union(
        b.curve([(150, 330), (150, 450), (450, 450), (440, 345)]),
        b.curve([(170, 440), (260, 400), (330, 380), (420, 360)]),
    )
    caption = b.text(200, 472, "Figure 1: Growth of the sample over time.")
    truth["figure"].append(union(drawing, caption))
    column = "Two columns of text set side by side on a page"
    left = [b.text(72, 510 + 12 * k, column) for k in range(3)] + [b.text(72, 546, "on a page.")]
    right = [b.text(318, 510 + 12 * k, column) for k in range(3)] + [b.text(318, 546, "the end.")]
    truth["paragraph"] += [union(*left), union(*right)]
    truth["page_footer"].append(b.text(298, 770, "7"))
    return b.save(path), truth


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return sample_page(tmp_path_factory.mktemp("pdf") / "sample.pdf")


def test_pdf_blocks_find_paragraphs_lists_definitions_figure_columns_and_folio(sample):
    path, truth = sample
    pdf = pdfium.PdfDocument(path)
    blocks = pdf_page_blocks(pdf[0])
    assert Counter(b.kind for b in blocks) == Counter({k: len(v) for k, v in truth.items()})
    for kind, boxes in truth.items():
        mine = [b for b in blocks if b.kind == kind]
        for box in boxes:
            best = max(iou(norm(box), b.box) for b in mine)
            # Truth is the glyph ink; blocks span whole line heights (ascent to descent), which
            # costs a one-line unit more IoU. 0.5 is the evaluation's own hit threshold.
            need = 0.75 if box[3] - box[1] > 20 else 0.5
            assert best >= need, (kind, box, [b.box for b in mine])


def test_figure_block_unites_the_drawing_with_its_caption_text(sample):
    path, _ = sample
    (figure,) = [b for b in pdf_page_blocks(pdfium.PdfDocument(path)[0]) if b.kind == "figure"]
    assert figure.text.startswith("Figure 1: Growth of the sample over time.")


def _words(x: float, baseline: float, text: str, size: float = 10.0, **style) -> list[PdfWord]:
    """A line of words with Helvetica-like widths (half an em a character)."""
    out = []
    for token in text.split():
        w = 0.5 * size * len(token)
        out.append(
            PdfWord(
                token,
                (x, baseline - 0.8 * size, x + w, baseline + 0.2 * size),
                baseline,
                size,
                style.get("bold", False),
                style.get("mono", False),
            )
        )
        x += w + 0.3 * size
    return out


def _content(*lines: list[PdfWord]) -> PageContent:
    return PageContent(W, H, [w for line in lines for w in line], [])


def test_a_first_line_indent_starts_a_new_paragraph():
    long = "x" * 8 + " word" * 14
    content = _content(
        _words(87, 200, long),
        _words(72, 212, long),
        _words(72, 224, "ends here."),
        _words(87, 236, long),
        _words(72, 248, long),
        _words(72, 260, "and stops."),
    )
    blocks = layout_blocks(content)
    assert [b.kind for b in blocks] == ["paragraph", "paragraph"]
    assert blocks[0].text.endswith("ends here.") and blocks[1].text.endswith("and stops.")


def test_rows_of_aligned_short_cells_form_one_table_with_its_rows_nested():
    rows = [
        _words(72, 300 + 14 * k, f"name{k}")
        + _words(200, 300 + 14 * k, f"{k * 7}")
        + _words(330, 300 + 14 * k, f"unit{k}")
        for k in range(4)
    ]
    blocks = layout_blocks(_content(*rows))
    (table,) = [b for b in blocks if b.kind == "table"]
    assert all(f"name{k}" in table.text and f"unit{k}" in table.text for k in range(4))
    entries = [b for b in blocks if b.kind == "table_row"]
    assert [e.text.split("\n")[0] for e in entries] == [f"name{k}" for k in range(4)]
    assert all(table.box[1] <= e.box[1] and e.box[3] <= table.box[3] for e in entries)


def test_a_caption_without_a_figure_area_stays_a_caption():
    blocks = layout_blocks(_content(_words(200, 400, "Table 2: Results by month.")))
    assert [b.kind for b in blocks] == ["caption"]


def test_prose_that_begins_with_a_figure_reference_is_not_a_caption():
    blocks = layout_blocks(_content(_words(72, 400, "Figure 1 shows the growth of the sample.")))
    assert [b.kind for b in blocks] == ["paragraph"]


def test_a_word_hyphenated_over_a_line_break_stays_on_its_lines(tmp_path):
    """pdfium joins "im-" and "proving" across the break into one word; each part must keep to
    its own line, or the two lines fuse into one row."""
    b = PdfBuilder()
    b.text(72, 100, FULL + " im\u0002")
    b.text(72, 112, "proving the reader's view of the page.")
    blocks = pdf_page_blocks(pdfium.PdfDocument(b.save(tmp_path / "hyphen.pdf"))[0])
    assert len(blocks) == 1 and blocks[0].kind == "paragraph"
    assert blocks[0].box[3] - blocks[0].box[1] > 1.5 * 10 / H  # two lines tall


def test_import_records_pdf_blocks_and_image_pages_keep_the_word_fallback(
    sample, tmp_path, tiny_params
):
    from components.data.importer import import_documents

    path, truth = sample
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.pdf").write_bytes(path.read_bytes())
    Image.new("RGB", (50, 40), "white").save(docs / "scan.png")
    import_documents(docs, None, tmp_path / "corpus", tiny_params, collection="c")
    records = {r["doc"]: r for r in map(json.loads, (tmp_path / "corpus/pages.jsonl").open())}
    pdf_page = records["manual.pdf"]
    assert pdf_page["meta"]["blocks_from"] == "pdf"
    kinds = Counter(b["kind"] for b in pdf_page["blocks"])
    assert kinds == Counter({k: len(v) for k, v in truth.items()})
    assert records["scan.png"]["blocks"] == []


def test_synthetic_pages_keep_their_recorded_blocks(tiny_corpus):
    """The generator's own blocks are what every reader sees: no regrouping of synthetic pages.
    Their kinds reach the index's page metadata too (the title rule of ADR 35 reads them)."""
    from components.index.pages import PageMeta

    checked = 0
    for page in tiny_corpus.pages:
        recorded = [(b.text, tuple(b.box), b.kind) for b in page.blocks if b.text.strip()]
        assert recorded, page.id
        assert [(b.text, tuple(b.box), b.kind) for b in page_blocks(page)] == recorded
        assert PageMeta.from_page(page).block_kinds == [kind for *_, kind in recorded]
        assert "blocks_from" not in page.meta
        checked += 1
    assert checked == len(tiny_corpus.pages) > 0
    assert any("title" in PageMeta.from_page(p).block_kinds for p in tiny_corpus.pages)


def test_show_outlines_each_block_in_its_kind_colour(sample, tmp_path, tiny_params):
    import numpy as np

    from components.data.corpus import load_corpus
    from components.data.importer import import_documents
    from components.data.preview import KIND_COLOURS, draw_page

    path, _ = sample
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.pdf").write_bytes(path.read_bytes())
    import_documents(docs, None, tmp_path / "corpus", tiny_params, collection="c")
    corpus = load_corpus(tmp_path / "corpus")
    img = np.asarray(draw_page(corpus, "manual.pdf#0")).astype(int)
    h, w, _ = img.shape
    for block in corpus.page("manual.pdf#0").blocks:
        if block.kind not in KIND_COLOURS:
            continue
        x0, y0, x1 = int(block.box[0] * w), int(block.box[1] * h), int(block.box[2] * w)
        edge = img[y0, x0 : x1 + 1]  # the top edge of the outline
        share = np.mean(np.all(np.abs(edge - np.array(KIND_COLOURS[block.kind])) <= 10, axis=-1))
        assert share > 0.5, block.kind


def test_math_letters_from_surrogate_pairs_become_one_character_json_can_hold():
    """pdfium returns U+1D465 as two UTF-16 units; written as they came, pages.jsonl fails."""
    from components.data.pdf_objects import utf16_text

    word = utf16_text("\ud835\udc65\u2264n")
    assert word == "\U0001d465\u2264n"
    json.dumps(word, ensure_ascii=False).encode("utf-8")
    assert utf16_text("a\ud835b") == "a\ufffdb"  # a lone half cannot be encoded: replaced


def test_boxes_are_relative_to_the_crop_box_the_page_is_rendered_from(tmp_path):
    """A page cropped to (50, 60)-(550, 760): text at x=100 sits 50 pt from the rendered left."""
    from components.data.importer import _pdf_words

    b = PdfBuilder()
    ink = union(b.text(100, 200, FULL[:60]), b.text(100, 212, FULL[:60]))
    pdfium_c.FPDFPage_SetCropBox(b.page.raw, 50, 40, 550, 740)  # PDF space: bottom-left origin
    page = pdfium.PdfDocument(b.save(tmp_path / "cropped.pdf"))[0]
    width, height = page.get_size()
    assert (width, height) == (500, 700)
    # crop top is y=740 in PDF space, i.e. 60 pt below the media box's top edge
    expected = (
        (ink[0] - 50) / width,
        (ink[1] - 60) / height,
        (ink[2] - 50) / width,
        (ink[3] - 60) / height,
    )
    (block,) = pdf_page_blocks(page)
    assert iou(block.box, expected) >= 0.75
    words = _pdf_words(page, width, height)
    assert abs(words[0].box[0] - expected[0]) < 0.01 and abs(words[0].box[1] - expected[1]) < 0.02


def _rect(b: PdfBuilder, x0: float, y0: float, x1: float, y1: float) -> None:
    """A stroked frame (a plain rectangle path), top-left coordinates."""
    obj = pdfium_c.FPDFPageObj_CreateNewRect(x0, H - y1, x1 - x0, y1 - y0)
    pdfium_c.FPDFPath_SetDrawMode(obj, 0, True)
    pdfium_c.FPDFPage_InsertObject(b.page.raw, obj)


def test_stacked_figures_in_one_frame_each_keep_their_caption(tmp_path):
    b = PdfBuilder()
    _rect(b, 120, 90, 480, 330)  # one frame around both drawings joins them into one area
    b.curve([(150, 100), (150, 180), (450, 180), (440, 110)])
    b.text(200, 197, "Figure 1: The first drawing.")
    b.curve([(150, 215), (150, 300), (450, 300), (440, 225)])
    b.text(200, 318, "Figure 2: The second drawing.")
    blocks = pdf_page_blocks(pdfium.PdfDocument(b.save(tmp_path / "two.pdf"))[0])
    figures = sorted((blk for blk in blocks if blk.kind == "figure"), key=lambda blk: blk.box[1])
    assert [f.text.split("\n")[0] for f in figures] == [
        "Figure 1: The first drawing.",
        "Figure 2: The second drawing.",
    ]
    assert figures[0].box[3] < figures[1].box[3]
    assert not [blk for blk in blocks if blk.kind == "caption"]


def _rule(b: PdfBuilder, x0: float, x1: float, y: float) -> None:
    """A filled hairline rule (a table's top/middle/bottom rule), top-left coordinates."""
    obj = pdfium_c.FPDFPageObj_CreateNewRect(x0, H - y - 0.5, x1 - x0, 0.5)
    pdfium_c.FPDFPath_SetDrawMode(obj, 1, False)
    pdfium_c.FPDFPage_InsertObject(b.page.raw, obj)


def test_a_ruled_table_named_by_its_caption_keeps_its_entries_nested(tmp_path):
    b = PdfBuilder()
    caption = b.text(150, 100, "Table 1: Options of the tool.")
    _rule(b, 100, 500, 110)
    _rule(b, 100, 500, 128)
    entries = [
        union(b.text(110, 145, "verbose"), b.text(220, 145, "Print each file as it is read.")),
        union(b.text(110, 165, "quiet"), b.text(220, 165, "Print nothing but the errors.")),
    ]
    _rule(b, 100, 500, 175)
    blocks = pdf_page_blocks(pdfium.PdfDocument(b.save(tmp_path / "table.pdf"))[0])
    (table,) = [blk for blk in blocks if blk.kind == "table"]
    assert table.text.startswith("Table 1: Options of the tool.")
    assert iou(table.box, norm(union(caption, (100, 110, 500, 175)))) >= 0.8
    for entry in entries:  # each row is a unit of its own, inside the table
        assert max(iou(blk.box, norm(entry)) for blk in blocks if blk is not table) >= 0.5


def test_a_captioned_table_takes_in_the_rows_below_a_spanning_cell():
    """A row the cell-grid detection breaks off at (a cell spanning the columns) and the rows
    under it still belong to the table its caption names; running text below does not."""
    cells = lambda y, a, b, c: _words(100, y, a) + _words(220, y, b) + _words(330, y, c)
    body = "The running text after the table goes on across the whole column as prose does"
    content = _content(
        _words(150, 100, "Table 3. Symbols chosen by each option."),
        cells(120, "Option", "energy", "moles"),
        cells(134, "plain", "E", "n"),
        _words(100, 148, "(synonym for plain)"),
        cells(162, "total", "U", "N"),
        cells(176, "molar", "A", "m"),
        _words(72, 210, body),
        _words(72, 222, body + "."),
    )
    blocks = layout_blocks(content)
    (table,) = [b for b in blocks if b.kind == "table" and b.text.startswith("Table 3.")]
    assert table.box[3] * H >= 176, "the rows under the spanning cell are part of the table"
    assert table.box[3] * H < 200, "the running text below is not"
    assert any(b.kind == "paragraph" and b.text.startswith("The running text") for b in blocks)


def test_inline_code_in_smaller_type_does_not_break_a_paragraph():
    """A line whose few characters of code are set smaller keeps its body size: the sentence
    running on to it stays in its paragraph."""
    long = "the values of this number are read from the column of the tabular output"
    content = _content(
        _words(72, 200, "In a tabular output file " + long),
        _words(72, 212, "labeled") + _words(112, 212, "exp.", size=7.0, mono=True),
    )
    blocks = layout_blocks(content)
    assert [b.kind for b in blocks] == ["paragraph"]
    assert blocks[0].text.endswith("labeled exp.")
