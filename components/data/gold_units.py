"""Gold highlight units of a real PDF page, from pdfminer.six's layout analysis.

What a person would highlight as the evidence of a derived question (docs/data-contract.md):
the paragraph holding a sentence, a whole definition/option-list entry (term + description),
a figure or table area united with its caption, a section heading. This is deliberately
independent of the project's own block grouping (``components.data.layout``): it is the judge
those blocks are measured against (``components.evaluation.block_recall``).

pdfminer gives text lines (with each character's font) and graphics (figures, images, curves,
rules); ``components.data.gold_geometry`` turns them into units. Geometry is in PDF points with
the origin top-left of the crop box; ``PageUnits.norm`` gives the contract's normalised boxes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from components.data.gold_geometry import Rect, Row, Unit, join_rows, layout_units, union

__all__ = ["PageUnits", "Rect", "Row", "Unit", "clean", "join_rows", "page_units", "union"]

# Faces that set a term apart from running text: bold and monospace families (TeX's cmbx/cmtt too).
_BOLD = re.compile(r"bold|black|heavy|semibold|demi|cmbx|cmb\d|bx\d", re.IGNORECASE)
_MONO = re.compile(r"mono|courier|cmtt|typewriter|consol|lmtt|sfmono|\btt\d", re.IGNORECASE)
GRAPHIC_MIN_PT = 2.0  # rules thinner than this in both directions are noise


@dataclass
class PageUnits:
    page: int
    width: float
    height: float
    body_size: float
    rows: list[Row]
    units: list[Unit]
    graphics: list[Rect]
    error: str | None = None  # why the page has no layout (pdfminer failed, rotated page)

    def norm(self, rect: Rect) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = rect
        clip = lambda v, s: min(1.0, max(0.0, v / s))
        return (
            round(clip(x0, self.width), 5),
            round(clip(y0, self.height), 5),
            round(clip(x1, self.width), 5),
            round(clip(y1, self.height), 5),
        )

    def of_kind(self, kind: str) -> list[Unit]:
        return [u for u in self.units if u.kind == kind]


def clean(text: str) -> str:
    """NFKC (ligatures, no-break spaces), stray combining marks dropped, whitespace collapsed."""
    text = re.sub(r"\(cid:\d+\)", " ", text)  # glyphs pdfminer cannot map (bullets, dingbats)
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text).strip()


def _style(fontname: str) -> str:
    if _BOLD.search(fontname):
        return "bold"
    if _MONO.search(fontname):
        return "mono"
    return "plain"


def _lead_run(chars: list) -> tuple[str, float] | None:
    """The line's leading words in a bold/monospace face when the rest is in another face, and
    where the rest starts (x, points)."""
    from pdfminer.layout import LTChar

    styled = [
        (c.get_text(), _style(c.fontname) if isinstance(c, LTChar) else None, c) for c in chars
    ]
    visible = [s for t, s, _ in styled if s is not None and t.strip()]
    if len(visible) < 8 or visible[0] == "plain":
        return None
    first = visible[0]
    run, rest = [], []
    for i, (t, s, _) in enumerate(styled):
        if s is not None and s != first and t.strip():
            rest = styled[i:]
            break
        run.append(styled[i])
    lead = clean("".join(t for t, _, _ in run))
    rest_styles = [s for t, s, _ in rest if s is not None and t.strip()]
    if not rest or not lead or rest_styles.count("plain") < 0.6 * len(rest_styles):
        return None  # the line goes on in the term's face: no term/description pair
    if run[-1][0].strip() and run[-1][0].strip() not in ":.":
        return None  # the face changes inside a word, not after a term
    run_end = max(c.x1 for _, s, c in run if s is not None)
    start, size = rest[0][2].x0, rest[0][2].size
    after = "".join(t for t, _, _ in rest).lstrip()
    set_apart = (
        lead.endswith(":")
        or after.startswith((":", "-", "\u2013", "\u2014"))
        or start - run_end >= 0.8 * size
    )
    if first == "mono" and not set_apart:
        return None  # code at the start of a sentence is no label; a bold run or a wide gap is
    term = lead.rstrip(":").strip()
    return (term, start) if term else None


def _read_layout(ltpage, crop: Sequence[float]) -> tuple[list[Row], list[Rect]]:
    from pdfminer.layout import (
        LTChar,
        LTCurve,
        LTFigure,
        LTImage,
        LTTextBoxHorizontal,
        LTTextLineHorizontal,
    )

    cx0, cy0, cx1, cy1 = crop
    flip = lambda b: (b[0] - cx0, cy1 - b[3], b[2] - cx0, cy1 - b[1])
    rows: list[Row] = []
    graphics: list[Rect] = []
    page_area = (cx1 - cx0) * (cy1 - cy0)

    def add_graphic(bbox) -> None:
        r = flip(bbox)
        w, h = r[2] - r[0], r[3] - r[1]
        if max(w, h) < GRAPHIC_MIN_PT or w * h > 0.9 * page_area:
            return  # invisible specks and page backgrounds are no figure
        graphics.append(r)

    for el in ltpage:
        if isinstance(el, LTTextBoxHorizontal):
            for line in el:
                if not isinstance(line, LTTextLineHorizontal):
                    continue
                text = clean(line.get_text())
                chars = [c for c in line if isinstance(c, LTChar)]
                if not text or not chars:
                    continue
                rect = flip(line.bbox)
                lead = _lead_run(list(line))
                visible = [c for c in chars if c.get_text().strip()]
                bold = bool(visible) and sum(
                    _style(c.fontname) == "bold" for c in visible
                ) >= 0.9 * len(visible)
                rows.append(
                    Row(
                        text,
                        rect,
                        median(c.size for c in chars),
                        lead and lead[0],
                        [rect],
                        lead and lead[1],
                        bold,
                    )
                )
        elif isinstance(el, (LTFigure, LTImage, LTCurve)):  # LTRect and LTLine are LTCurves
            add_graphic(el.bbox)
    return rows, graphics


# --------------------------------------------------------------------------- rows and blocks


def page_units(pdf_path: str | Path, pages: Iterable[int] | None = None) -> list[PageUnits]:
    """The gold units of ``pages`` (0-based; all pages when None) of a PDF, in page order.
    Rotated pages (their geometry would not match the render) and pages pdfminer cannot
    interpret come back without units, ``error`` saying why."""
    from pdfminer.converter import PDFPageAggregator
    from pdfminer.layout import LAParams
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage
    from pdfminer.psexceptions import PSException

    wanted = None if pages is None else set(pages)
    out: list[PageUnits] = []
    with open(pdf_path, "rb") as fh:
        manager = PDFResourceManager()
        device = PDFPageAggregator(manager, laparams=LAParams())
        interpreter = PDFPageInterpreter(manager, device)
        for index, page in enumerate(PDFPage.get_pages(fh, pagenos=wanted)):
            number = index if wanted is None else sorted(wanted)[index]
            crop = page.cropbox or page.mediabox
            width, height = crop[2] - crop[0], crop[3] - crop[1]
            if (page.rotate or 0) % 360:
                out.append(PageUnits(number, width, height, 10.0, [], [], [], "rotated page"))
                continue
            try:
                interpreter.process_page(page)
            except (
                PSException,
                ValueError,
                KeyError,
                TypeError,
            ) as exc:  # PDFException is a PSException
                # one broken content stream costs its page, not the document
                out.append(PageUnits(number, width, height, 10.0, [], [], [], f"pdfminer: {exc}"))
                continue
            rows, graphics = _read_layout(device.get_result(), crop)
            size, rows, units = layout_units(rows, graphics, width)
            out.append(PageUnits(number, width, height, size, rows, units, graphics))
    return out
