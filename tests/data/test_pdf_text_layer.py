"""The imported PDF text layer: characters beyond the BMP survive, word boxes sit where the
rendered page shows them on cropped pages."""

from __future__ import annotations

import json

from components.config import Params
from components.data.importer import import_documents
from components.data.pdf_objects import utf16_text


def test_surrogate_pair_becomes_one_character_that_json_can_write():
    # U+1D465 MATHEMATICAL ITALIC SMALL X, as pdfium's FPDFText_GetUnicode returns it: two units
    units = ["a", "\ud835", "\udc65", "b"]
    text = utf16_text("".join(units))
    assert text == "a\U0001d465b"
    json.dumps(text, ensure_ascii=False).encode("utf-8")  # raised UnicodeEncodeError before


def test_lone_surrogate_is_replaced_not_fatal():
    text = utf16_text("x\ud835y")
    assert text == "x\ufffdy"
    text.encode("utf-8")


def test_word_boxes_are_relative_to_the_crop_box(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pypdfium2 as pdfium

    docs = tmp_path / "docs"
    docs.mkdir()
    fig = plt.figure(figsize=(8.5, 11))  # 612 x 792 pt
    fig.text(0.5, 0.5, "centre", fontsize=12)  # left edge at x = 306 pt, baseline at y = 396 pt
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        fig.savefig(tmp_path / "full.pdf")
    plt.close(fig)
    pdf = pdfium.PdfDocument(str(tmp_path / "full.pdf"))
    pdf[0].set_cropbox(106, 196, 612, 792)  # crop 106 pt off the left, 196 pt off the bottom
    pdf.save(str(docs / "cropped.pdf"))
    pdf.close()

    report = import_documents(docs, None, tmp_path / "corpus", Params(), collection="c")
    assert report["pages"] == 1
    page = json.loads((tmp_path / "corpus" / "pages.jsonl").read_text().splitlines()[0])
    (word,) = [w for w in page["words"] if w["text"] == "centre"]
    x0, _, _, y1 = word["box"]
    # in the crop (506 x 596 pt): left edge at (306 - 106) / 506, baseline at 1 - (396 - 196) / 596;
    # before the fix the box sat 106 pt left of the rendered word (x0 = 306 / 506 = 0.60)
    assert abs(x0 - 200 / 506) < 0.01
    assert abs(y1 - (1 - 200 / 596)) < 0.02
