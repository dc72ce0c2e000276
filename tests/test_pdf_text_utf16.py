"""The PDF text layer keeps characters beyond the BMP that pdfium hands over as UTF-16 pairs."""

from __future__ import annotations

import json

from components.data.importer import utf16_text


def test_surrogate_pair_becomes_one_character_that_json_can_write():
    # U+1D465 MATHEMATICAL ITALIC SMALL X, as pdfium's FPDFText_GetUnicode returns it: two units
    units = ["a", "\ud835", "\udc65", "b"]
    text = utf16_text(units)
    assert text == "a\U0001d465b"
    json.dumps(text, ensure_ascii=False).encode("utf-8")  # raised UnicodeEncodeError before


def test_lone_surrogate_is_replaced_not_fatal():
    text = utf16_text(["x", "\ud835", "y"])
    assert text == "x\ufffdy"
    text.encode("utf-8")
