"""Gold highlight units of a real PDF page, from pdfminer.six's layout analysis.

What a person would highlight as the evidence of a derived question (docs/data-contract.md):
the paragraph holding a sentence, a whole definition/option-list entry (term + description),
a figure or table area united with its caption, a section heading. This is deliberately
independent of the project's own block grouping (``components.data.layout``): it is the judge
those blocks are measured against (``components.evaluation.block_recall``).

pdfminer gives text lines (with each character's font) and graphics (figures, images, curves,
rules). On top of them: lines sharing a baseline in one column are joined into rows (an option
list sets the term and its description side by side); rows stacked closely in one column form
blocks; blocks are cut into units at paragraph starts (first-line indent, a sentence-final line
followed by a line at the margin) and at definition entries (a line at the margin whose
continuation lines hang indented, or a row whose leading term stands apart by a wide gap or
a bold/monospace face). Geometry is in PDF points with the origin top-left of the crop box;
``PageUnits.norm`` gives the contract's normalised boxes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

Rect = tuple[float, float, float, float]  # x0, top, x1, bottom in points, origin top-left

# Faces that set a term apart from running text: bold and monospace families (TeX's cmbx/cmtt too).
_BOLD = re.compile(r"bold|black|heavy|semibold|demi|cmbx|cmb\d|bx\d", re.IGNORECASE)
_MONO = re.compile(r"mono|courier|cmtt|typewriter|consol|lmtt|sfmono|\btt\d", re.IGNORECASE)
CAPTION = re.compile(r"^(Figure|Fig\.|Table)\s*(\d+(?:\.\d+)*)\s*[:.]\s*(\S.*)$")
ROW_TERM_MAX_WORDS = 6  # a side-by-side term (option list) is short
GRAPHIC_MIN_PT = 2.0
_SECTION_NUMBER = re.compile(r"^\d+(\.\d+)*\.?$")  # rules thinner than this in both directions are noise


@dataclass
class Row:
    """One visual text line (pdfminer lines on one baseline in one column, joined)."""

    text: str
    rect: Rect
    size: float  # median character size, points
    lead: str | None = None  # leading term set apart (gap or distinct face), if any
    parts: list[Rect] = field(default_factory=list)
    desc_x: float | None = None  # where the description after ``lead`` starts
    bold: bool = False  # set all in a bold face (a run-in or same-size heading)


@dataclass
class Unit:
    kind: str  # paragraph | entry | heading | caption | figure
    rows: list[Row]
    term: str | None = None  # entry: the defined term; caption: "Figure 3" / "Table 2"
    area: Rect | None = None  # caption: its figure/table area united with the caption

    @property
    def rect(self) -> Rect:
        return union(r.rect for r in self.rows) if self.area is None else self.area

    @property
    def text(self) -> str:
        return join_rows([r.text for r in self.rows])


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
            round(clip(x0, self.width), 5), round(clip(y0, self.height), 5),
            round(clip(x1, self.width), 5), round(clip(y1, self.height), 5),
        )

    def of_kind(self, kind: str) -> list[Unit]:
        return [u for u in self.units if u.kind == kind]


def union(rects: Iterable[Sequence[float]]) -> Rect:
    rs = list(rects)
    return (min(r[0] for r in rs), min(r[1] for r in rs), max(r[2] for r in rs), max(r[3] for r in rs))


def clean(text: str) -> str:
    """NFKC (ligatures, no-break spaces), stray combining marks dropped, whitespace collapsed."""
    text = re.sub(r"\(cid:\d+\)", " ", text)  # glyphs pdfminer cannot map (bullets, dingbats)
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text).strip()


def join_rows(texts: Sequence[str]) -> str:
    """Rows into running text, undoing end-of-line hyphenation ("compu-" + "tation")."""
    out = ""
    for t in texts:
        if out.endswith("-") and len(out) > 1 and out[-2].isalpha() and t[:1].islower():
            out = out[:-1] + t
        else:
            out = f"{out} {t}" if out else t
    return out


# --------------------------------------------------------------------------- pdfminer reading
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

    styled = [(c.get_text(), _style(c.fontname) if isinstance(c, LTChar) else None, c) for c in chars]
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
    set_apart = (lead.endswith(":") or after.startswith((":", "-", "\u2013", "\u2014"))
                 or start - run_end >= 0.8 * size)
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
                bold = bool(visible) and sum(_style(c.fontname) == "bold" for c in visible) >= 0.9 * len(visible)
                rows.append(Row(text, rect, median(c.size for c in chars), lead and lead[0], [rect],
                                lead and lead[1], bold))
        elif isinstance(el, (LTFigure, LTImage, LTCurve)):  # LTRect and LTLine are LTCurves
            add_graphic(el.bbox)
    return rows, graphics


# --------------------------------------------------------------------------- rows and blocks
def _two_columns(rows: list[Row], width: float) -> bool:
    mid = width / 2
    left = sum(r.rect[2] < mid for r in rows)
    right = sum(r.rect[0] > mid for r in rows)
    return left >= 0.3 * len(rows) and right >= 0.3 * len(rows)


def _join_rows(rows: list[Row], width: float) -> list[Row]:
    """Join a short term with the text that starts right of it on the same baseline."""
    two_col, mid = _two_columns(rows, width), width / 2
    centre = lambda r: (r.rect[1] + r.rect[3]) / 2
    lines: list[list[Row]] = []
    for r in sorted(rows, key=centre):
        if lines and abs(centre(r) - centre(lines[-1][0])) < 0.3 * r.size:
            lines[-1].append(r)
        else:
            lines.append([r])
    out: list[Row] = []
    for line in lines:
        line.sort(key=lambda r: r.rect[0])
        current = line[0]
        for b in line[1:]:
            a = current
            gap = b.rect[0] - a.rect[2]
            same_col = not two_col or (b.rect[2] <= mid + a.size) == (a.rect[2] <= mid + a.size)
            # a term column is short and leaves most of the row to its description
            short = (len(a.parts) == 1 and len(a.text.split()) <= ROW_TERM_MAX_WORDS
                     and a.rect[2] - a.rect[0] <= 0.6 * (b.rect[2] - a.rect[0]))
            number = len(a.parts) == 1 and _SECTION_NUMBER.match(a.text) and gap < 3 * a.size
            if same_col and (0 <= gap <= 0.6 * a.size or number):
                # a word gap (pdfminer cut a line at a change of face or script) or a section
                # number set off by a quad: one line of text, glue it back
                current = Row(f"{a.text} {b.text}", union([a.rect, b.rect]), a.size, a.lead,
                              a.parts + b.parts, a.desc_x, a.bold and b.bold)
            elif short and same_col and 1.2 * a.size < gap < 15 * a.size:
                term = a.text.rstrip(":").strip()
                current = Row(f"{a.text} {b.text}", union([a.rect, b.rect]), a.size, term,
                              a.parts + b.parts, b.rect[0])
            else:
                out.append(current)
                current = b
        out.append(current)
    return out


def _column_key(r: Row, two_col: bool, mid: float) -> int:
    if not two_col:
        return 0
    return 0 if r.rect[2] <= mid + r.size else (1 if r.rect[0] >= mid - r.size else 0)


def _blocks(rows: list[Row], width: float) -> list[list[Row]]:
    """Rows stacked closely in one column, in reading order."""
    two_col, mid = _two_columns(rows, width), width / 2
    ordered = sorted(rows, key=lambda r: (_column_key(r, two_col, mid), r.rect[1], r.rect[0]))
    blocks: list[list[Row]] = []
    for r in ordered:
        # the nearest open block whose last row sits just above this one: text beside a table or
        # a figure interleaves with it in top-to-bottom order and must not cut the paragraph
        for block in reversed(blocks[-8:]):
            p = block[-1]
            gap = r.rect[1] - p.rect[3]
            overlap = min(r.rect[2], p.rect[2]) - max(r.rect[0], p.rect[0])
            same = _column_key(r, two_col, mid) == _column_key(p, two_col, mid)
            if same and -0.5 * p.size <= gap <= 0.7 * p.size and overlap > 0 and abs(r.size - p.size) < 1.5:
                block.append(r)
                break
        else:
            blocks.append([r])
    return blocks


def _split_block(block: list[Row]) -> list[Unit]:
    """Cut a block at paragraph starts and definition entries (see module doc)."""
    em = median(r.size for r in block)
    margin = min(r.rect[0] for r in block)
    right = max(r.rect[2] for r in block)
    indented = [r.rect[0] > margin + 0.8 * em for r in block]
    units: list[Unit] = []
    i = 0
    while i < len(block):
        r = block[i]
        # a hanging entry: a margin row followed by rows that stay indented. One indented row
        # followed by a margin row is a paragraph's first-line indent instead, unless the row
        # after that hangs again (the next entry).
        j = i + 1
        while j < len(block) and indented[j] and not block[j].lead:
            j += 1
        # one hanging row is weak evidence (a run-in title over first-line-indented paragraphs
        # looks the same): then this row and the next entry's must both look like terms
        hanging = j - i >= 3 or (j == i + 2 and _term_like(r) and (j == len(block) or (
            j + 1 < len(block) and indented[j + 1] and _term_like(block[j]))))
        if not indented[i] and hanging and (r.lead or len(r.text.split()) <= ROW_TERM_MAX_WORDS
                                            or r.rect[2] < right - 2 * em):
            term = r.lead or (r.text if len(r.text.split()) <= ROW_TERM_MAX_WORDS else None)
            units.append(Unit("entry", block[i:j], term=term))
            i = j
            continue
        if r.lead:
            # a side-by-side entry runs on in its description column; a bold label's
            # paragraph runs on to the next paragraph start
            k = i + 1
            if r.desc_x is not None and r.desc_x - r.rect[0] > 2 * em and (
                    k == len(block) or abs(block[k].rect[0] - r.desc_x) <= 0.8 * em):
                while k < len(block) and not block[k].lead and abs(block[k].rect[0] - r.desc_x) <= 0.8 * em:
                    k += 1
            else:
                while k < len(block) and not _starts_paragraph(block, k, indented, right, em):
                    k += 1
            units.append(Unit("entry", block[i:k], term=r.lead))
            i = k
            continue
        k = i + 1
        while k < len(block) and not _starts_paragraph(block, k, indented, right, em):
            k += 1
        units.append(Unit("paragraph", block[i:k]))
        i = k
    return units


def _term_like(row: Row) -> bool:
    return bool(row.lead) or (len(row.text.split()) <= ROW_TERM_MAX_WORDS
                              and not row.text.endswith((".", ",", ";")))


def _starts_paragraph(block: list[Row], k: int, indented: list[bool], right: float, em: float) -> bool:
    prev, row = block[k - 1], block[k]
    if row.lead:
        return True
    if prev.bold != row.bold:
        return True  # a bold heading and the text under it
    if prev.bold and row.bold:
        return False  # a heading wrapped onto a second line
    if indented[k] and not indented[k - 1]:
        return True  # first-line indent
    if not indented[k] and indented[k - 1] and k >= 2 and not indented[k - 2]:
        return False  # a one-row indent inside a paragraph is its first line
    return prev.text.endswith((".", ":", "!", "?")) and prev.rect[2] < right - 2 * em


# --------------------------------------------------------------------------- headings, captions
def _mark_headings(units: list[Unit], body: float) -> None:
    for u in units:
        words = u.text.split()
        big = median(r.size for r in u.rows) >= 1.15 * body or all(r.bold for r in u.rows)
        if u.kind == "paragraph" and len(u.rows) <= 2 and 1 <= len(words) <= 14 and big \
                and not u.text.endswith((".", ",", ";")):
            u.kind = "heading"


def _is_body(u: Unit, body: float, col_width: float) -> bool:
    """Running text: body-size lines across most of the column, two or more of them or one
    full sentence (a figure's labels and a table's cells are neither)."""
    sentence = len(u.text.split()) >= 6 and u.text.endswith((".", ":"))
    return (u.kind in ("paragraph", "entry", "heading") and (len(u.rows) >= 2 or sentence)
            and abs(median(r.size for r in u.rows) - body) < 1.0
            and median(r.rect[2] - r.rect[0] for r in u.rows) >= 0.6 * col_width)


def _figure_area(cap: Unit, units: list[Unit], graphics: list[Rect], body: float,
                 upward: bool, width: float, two_col: bool) -> Rect | None:
    """Graphics and non-body text next to the caption (above for figures, below for tables),
    walking away from it until a body paragraph, a heading or a wide empty gap. A figure may be
    wider than its (centred) caption, so the walk spans the page, or the caption's column of a
    two-column page."""
    cx0, ctop, cx1, cbottom = cap.rect
    mid = width / 2
    col = (0.0, width)
    if two_col and cx1 <= mid + body:
        col = (0.0, mid + body)
    elif two_col and cx0 >= mid - body:
        col = (mid - body, width)
    items: list[tuple[Rect, bool, Unit | None]] = [(g, True, None) for g in graphics]
    items += [(u.rect, False, u) for u in units if u is not cap]
    inside = [it for it in items if it[0][0] >= col[0] - 1 and it[0][2] <= col[1] + 1
              and (it[0][3] <= ctop + 1 if upward else it[0][1] >= cbottom - 1)]
    inside.sort(key=lambda it: -it[0][3] if upward else it[0][1])
    edge = ctop if upward else cbottom
    taken: list[Rect] = []
    has_graphic = False
    for rect, is_graphic, unit in inside:
        gap = (edge - rect[3]) if upward else (rect[1] - edge)
        # a caption sits a few lines off its figure; the parts of one figure sit closer
        if gap > (5 if not taken else 2) * body:
            break
        stopper = unit is not None and (
            unit.kind in ("heading", "caption") or _is_body(unit, body, col[1] - col[0]))
        # a body paragraph stops the walk unless a graphic encloses it (text in a figure)
        if stopper and not any(g[0] <= rect[0] + 1 and g[1] <= rect[1] + 1 and g[2] >= rect[2] - 1
                               and g[3] >= rect[3] - 1 for g in graphics):
            break
        taken.append(rect)
        has_graphic |= is_graphic
        edge = min(edge, rect[1]) if upward else max(edge, rect[3])
    if not taken or (not has_graphic and len(taken) < 2):
        return None
    return union([*taken, cap.rect])


def _mark_captions(units: list[Unit], graphics: list[Rect], body: float, width: float,
                   two_col: bool) -> None:
    for u in units:
        m = CAPTION.match(u.text)
        if not m or u.kind == "heading":
            continue
        label = f"{m.group(1)} {m.group(2)}"  # as printed ("Fig. 3" stays): the answer is on the page
        upward = m.group(1) != "Table"  # figures sit above their caption, tables below
        area = _figure_area(u, units, graphics, body, upward, width, two_col) or _figure_area(
            u, units, graphics, body, not upward, width, two_col)
        u.kind, u.term, u.area = "caption", label, area


# --------------------------------------------------------------------------- entry point
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
            except (PSException, ValueError, KeyError, TypeError) as exc:  # PDFException is a PSException
                # one broken content stream costs its page, not the document
                out.append(PageUnits(number, width, height, 10.0, [], [], [], f"pdfminer: {exc}"))
                continue
            rows, graphics = _read_layout(device.get_result(), crop)
            out.append(_units_of(number, width, height, rows, graphics))
    return out


def _units_of(number: int, width: float, height: float, rows: list[Row], graphics: list[Rect]) -> PageUnits:
    if not rows:
        return PageUnits(number, width, height, 10.0, [], [], graphics)
    rows = _join_rows(rows, width)
    sizes = [r.size for r in rows for _ in r.text]
    body = median(sizes)
    units = [u for block in _blocks(rows, width) for u in _split_block(block)]
    _mark_headings(units, body)
    _mark_captions(units, graphics, body, width, _two_columns(rows, width))
    return PageUnits(number, width, height, body, rows, units, graphics)
