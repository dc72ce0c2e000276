"""What a born-digital PDF page holds, read through pypdfium2: styled words and graphic objects.

``read_page`` returns plain records in PDF points with the origin top-left (y down), so the
layout grouping (``components.data.pdf_layout``) is pure geometry, testable without pdfium:

* words — runs of non-space characters with the font facts that tell layout units apart: the
  em size (FPDFText_GetFontSize), the baseline (char origin), and whether the face is bold
  (weight, or a bold name such as CMBX/…-Bold) or monospaced (fixed-pitch flag, or a typewriter
  name such as CMTT/Courier/…Mono);
* graphics — the boxes of image, vector-path and form XObjects (FPDF_PAGEOBJ_IMAGE / PATH /
  FORM), each marked ``plain`` when it is only a rule, an axis-aligned rectangle (table
  rulings, frames, shading) or an image of one flat colour, which alone never makes a figure.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in points, origin top-left

_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|cmbx|cmb\d|bx\d|-b$", re.IGNORECASE)
_MONO_NAME = re.compile(
    r"mono|courier|cmtt|cmsltt|typewriter|consol|inconsolata|lmtt|txtt|"
    r"menlo|\btt\d",
    re.IGNORECASE,
)
_FIXED_PITCH = 1  # PDF font descriptor flag bit 1
_FORCE_BOLD = 1 << 18
_REGULAR_NAME = re.compile(r"regular|roman|book|light|-r$", re.IGNORECASE)
# pdfium's weight comes from the font's own data, often off (a "Regular" at 590): it counts only
# for faces whose name says nothing; CMBX reports 545 where CMR reports 345.
_BOLD_WEIGHT = 540
FLAT_IMAGE_RANGE = 8  # an image whose channels vary by at most this much is one flat colour
# A form XObject wider than this share of the page is a wrapper around page content, not a
# picture: its children are read instead.
_WRAPPER_FORM_SHARE = 0.6


@dataclass(frozen=True)
class PdfWord:
    text: str
    box: Box
    baseline: float  # y of the first character's origin, origin top-left
    size: float  # em size in points
    bold: bool
    mono: bool


@dataclass(frozen=True)
class Graphic:
    kind: str  # "image", "path" or "form"
    box: Box
    plain: bool  # a rule or axis-aligned rectangle only (frame, shading, table ruling)


@dataclass
class PageContent:
    width: float
    height: float
    words: list[PdfWord]
    graphics: list[Graphic]


def utf16_text(chars: str) -> str:
    """pdfium hands out UTF-16 code units: join surrogate pairs (math letters such as U+1D465
    come as two) into one character; a lone surrogate becomes U+FFFD (JSON cannot hold it)."""
    return chars.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _font(textpage, i: int, buf, flags) -> tuple[bool, bool]:
    import pypdfium2.raw as pdfium_c

    pdfium_c.FPDFText_GetFontInfo(textpage, i, buf, len(buf), ctypes.byref(flags))
    name = buf.value.decode("latin-1").split("+")[-1]
    weight = pdfium_c.FPDFText_GetFontWeight(textpage, i)
    bold = (
        bool(_BOLD_NAME.search(name))
        or bool(flags.value & _FORCE_BOLD)
        or (weight >= _BOLD_WEIGHT and not _REGULAR_NAME.search(name))
    )
    mono = bool(_MONO_NAME.search(name)) or bool(flags.value & _FIXED_PITCH)
    return bold, mono


def read_words(page) -> list[PdfWord]:
    """The page's words (split at spaces, as the importer's text layer is) with their styles."""
    import pypdfium2.raw as pdfium_c

    dx, _, _, ceiling = page.get_cropbox()  # the rendered page is the crop box
    textpage = page.get_textpage()
    buf, flags = ctypes.create_string_buffer(128), ctypes.c_int()
    ox, oy = ctypes.c_double(), ctypes.c_double()
    words: list[PdfWord] = []
    chars: list[str] = []
    box: list[float] | None = None
    style: list = []  # per visible char: (size, bold, mono)
    bases: list[float] = []  # per visible char: its origin's y
    baseline = 0.0  # the word's first character's

    def flush() -> None:
        nonlocal chars, box, style
        if chars and box is not None and style:
            size = sorted(s[0] for s in style)[len(style) // 2]
            bold = sum(s[1] for s in style) * 2 > len(style)
            mono = sum(s[2] for s in style) * 2 > len(style)
            left, bottom, right, top = box
            # the baseline most of its characters sit on (a footnote mark is raised)
            base = sorted(bases)[len(bases) // 2]
            words.append(
                PdfWord(
                    utf16_text("".join(chars)),
                    (left - dx, ceiling - top, right - dx, ceiling - bottom),
                    ceiling - base,
                    size,
                    bold,
                    mono,
                )
            )
        chars, box, style, bases[:] = [], None, [], []

    try:
        raw = textpage.raw
        for i in range(textpage.count_chars()):
            ch = chr(pdfium_c.FPDFText_GetUnicode(raw, i))
            if ch.isspace() or ch == "\x00" or ord(ch) in (0xFFFE, 0xFFFF):
                flush()
                continue
            left, bottom, right, top = textpage.get_charbox(i, loose=True)
            if right <= left or top <= bottom:  # generated/invisible char
                chars.append("-" if ch == "\x02" else ch)  # pdfium marks a line-end hyphen \x02
                continue
            size = pdfium_c.FPDFText_GetFontSize(raw, i)
            pdfium_c.FPDFText_GetCharOrigin(raw, i, ox, oy)
            if box is not None and (
                abs(oy.value - baseline) > 0.6 * max(size, top - bottom) or right < box[0]
            ):
                flush()  # a word hyphenated over a line break: each part stays on its line
            chars.append(ch)
            if box is None:
                baseline = oy.value
                box = [left, bottom, right, top]
            else:
                box = [min(box[0], left), min(box[1], bottom), max(box[2], right), max(box[3], top)]
            if size <= 1.5:  # a unit font scaled by the text matrix: the glyph box tells the size
                size = top - bottom
            style.append((size, *_font(raw, i, buf, flags)))
            bases.append(oy.value)
        flush()
    finally:
        textpage.close()
    return words


def _is_plain_path(obj) -> bool:
    """A path of straight segments tracing at most one axis-aligned rectangle or rule."""
    import pypdfium2.raw as pdfium_c

    n = pdfium_c.FPDFPath_CountSegments(obj.raw)
    if n > 6:
        return False
    for k in range(n):
        seg = pdfium_c.FPDFPath_GetPathSegment(obj.raw, k)
        if pdfium_c.FPDFPathSegment_GetType(seg) == pdfium_c.FPDF_SEGMENT_BEZIERTO:
            return False
    return True


def _flat_image(obj) -> bool:
    """An image of one flat colour (a background strip or panel drawn as an image) shows no
    picture. Images pdfium cannot decode count as pictures."""
    import numpy as np
    import pypdfium2 as pdfium

    try:
        pixels = np.asarray(obj.get_bitmap(render=False).to_pil())
    except (pdfium.PdfiumError, ValueError, OSError):
        return False
    if pixels.size == 0:
        return True
    flat = pixels.reshape(-1, pixels.shape[-1] if pixels.ndim == 3 else 1)
    return int(np.ptp(flat, axis=0).max()) <= FLAT_IMAGE_RANGE


def read_graphics(page) -> list[Graphic]:
    """Image, path and form objects with their boxes; page-wide wrapper forms are opened."""
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    dx, _, _, ceiling = page.get_cropbox()
    out: list[Graphic] = []

    def visit(objects, matrix) -> None:
        for obj in objects:
            left, bottom, right, top = obj.get_bounds()
            if matrix is not None:
                left, bottom, right, top = matrix.on_rect(left, bottom, right, top)
            box = (
                max(0.0, left - dx),
                max(0.0, ceiling - top),
                min(width, right - dx),
                min(height, ceiling - bottom),
            )
            if box[2] <= box[0] and box[3] <= box[1]:
                continue
            if obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE:
                out.append(Graphic("image", box, _flat_image(obj)))
            elif obj.type == pdfium_c.FPDF_PAGEOBJ_PATH:
                thin = min(box[2] - box[0], box[3] - box[1]) < 1.5
                out.append(Graphic("path", box, thin or _is_plain_path(obj)))
            elif obj.type == pdfium_c.FPDF_PAGEOBJ_FORM:
                kids = list(page.get_objects(form=obj, max_depth=0))
                kinds = {k.type for k in kids}
                if (box[2] - box[0]) > _WRAPPER_FORM_SHARE * width:
                    inner = obj.get_matrix()
                    visit(kids, inner if matrix is None else inner.multiply(matrix))
                elif kinds & {
                    pdfium_c.FPDF_PAGEOBJ_IMAGE,
                    pdfium_c.FPDF_PAGEOBJ_PATH,
                    pdfium_c.FPDF_PAGEOBJ_FORM,
                    pdfium_c.FPDF_PAGEOBJ_SHADING,
                }:
                    out.append(Graphic("form", box, False))
            elif obj.type == pdfium_c.FPDF_PAGEOBJ_SHADING:
                out.append(Graphic("path", box, True))

    visit(page.get_objects(max_depth=0), None)
    return out


def read_page(page) -> PageContent:
    width, height = page.get_size()
    return PageContent(width, height, read_words(page), read_graphics(page))
