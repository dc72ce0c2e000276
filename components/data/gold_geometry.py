"""Geometry of gold units: text rows into paragraphs, definition entries, headings and
figure/table areas with their captions (``components.data.gold_units`` reads the rows and
graphics from pdfminer). Points, origin top-left.

Lines sharing a baseline in one column are joined into rows (an option list sets the term and
its description side by side); rows stacked closely in one column form blocks; blocks are cut
into units at paragraph starts (first-line indent, a sentence-final line followed by a line at
the margin, a change between bold and regular) and at definition entries (a line at the margin
whose continuation lines hang indented, or a row whose leading term stands apart by a wide gap
or a bold/monospace face). A caption's area is the graphics and non-body text walking away from
it (figures upward, tables downward) until running text, a heading or a wide gap.

Over 400 lines on purpose: the unit rules (sentence ends, margins, bullets, captions, tables)
act on the same row model in sequence and are read and tested together (ADR 25).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median

Rect = tuple[float, float, float, float]  # x0, top, x1, bottom in points, origin top-left
CAPTION = re.compile(r"^(Figure|Fig\.|Table)\s*(\d+(?:\.\d+)*)\s*[:.]\s*(\S.*)$")
ROW_TERM_MAX_WORDS = 6  # a side-by-side term (option list) is short
OUTDENT_EM = 3.0  # a row this far left of its block's margin starts another block
WORD_GAP_EM = 1.0  # pdfminer lines on one baseline closer than this are one line (a stretched
# justified space after a sentence end is wider than a word gap, narrower than a column gutter)
_SECTION_NUMBER = re.compile(r"^\d+(\.\d+)*\.?$")
_BULLET = re.compile(
    r"^[\u2022\u25e6\u25aa\u2023\u25cf\u25cb\u25a0\u25a1\u25ba\u2013\u2014\u2219*]\s"
)  # a list item


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


def union(rects: Iterable[Sequence[float]]) -> Rect:
    rs = list(rects)
    return (
        min(r[0] for r in rs),
        min(r[1] for r in rs),
        max(r[2] for r in rs),
        max(r[3] for r in rs),
    )


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
            short = (
                len(a.parts) == 1
                and len(a.text.split()) <= ROW_TERM_MAX_WORDS
                and a.rect[2] - a.rect[0] <= 0.6 * (b.rect[2] - a.rect[0])
            )
            number = len(a.parts) == 1 and _SECTION_NUMBER.match(a.text) and gap < 3 * a.size
            if same_col and (0 <= gap <= WORD_GAP_EM * a.size or number):
                # a word gap (pdfminer cut a line at a change of face or script) or a section
                # number set off by a quad: one line of text, glue it back
                current = Row(
                    f"{a.text} {b.text}",
                    union([a.rect, b.rect]),
                    a.size,
                    a.lead,
                    a.parts + b.parts,
                    a.desc_x,
                    a.bold and b.bold,
                )
            elif short and same_col and 1.2 * a.size < gap < 15 * a.size:
                term = a.text.rstrip(":").strip()
                current = Row(
                    f"{a.text} {b.text}",
                    union([a.rect, b.rect]),
                    a.size,
                    term,
                    a.parts + b.parts,
                    b.rect[0],
                )
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
            # a row starting far left of every row above it (an outdented term, a margin
            # label) opens a new block: indentation is read against one margin per block
            outdent = r.rect[0] < min(q.rect[0] for q in block) - OUTDENT_EM * p.size
            if (
                same
                and not outdent
                and -0.5 * p.size <= gap <= 0.7 * p.size
                and overlap > 0
                and abs(r.size - p.size) < 1.5
            ):
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
        if _BULLET.match(r.text):
            # a list item: its bullet row and the rows under it up to the next item or paragraph
            # start (rows hanging right of the bullet always continue it)
            k = i + 1
            while (
                k < len(block)
                and not _BULLET.match(block[k].text)
                and (
                    block[k].rect[0] > r.rect[0] + 0.5 * em
                    or not _starts_paragraph(block, k, indented, right, em)
                )
            ):
                k += 1
            units.append(Unit("paragraph", block[i:k]))
            i = k
            continue
        # a hanging entry: a margin row followed by rows that stay indented. One indented row
        # followed by a margin row is a paragraph's first-line indent instead, unless the row
        # after that hangs again (the next entry).
        j = i + 1
        while j < len(block) and indented[j] and not block[j].lead:
            j += 1
        # one hanging row is weak evidence (a run-in title over first-line-indented paragraphs
        # looks the same): then this row and the next entry's must both look like terms
        hanging = j - i >= 3 or (
            j == i + 2
            and _term_like(r)
            and (
                j == len(block) or (j + 1 < len(block) and indented[j + 1] and _term_like(block[j]))
            )
        )
        if (
            not indented[i]
            and hanging
            and (r.lead or len(r.text.split()) <= ROW_TERM_MAX_WORDS or r.rect[2] < right - 2 * em)
        ):
            term = r.lead or (r.text if len(r.text.split()) <= ROW_TERM_MAX_WORDS else None)
            while j < len(block) and _runs_on(block[j - 1], block[j]):
                j += 1
            units.append(Unit("entry", block[i:j], term=term))
            i = j
            continue
        if r.lead:
            # a side-by-side entry runs on in its description column; a bold label's
            # paragraph runs on to the next paragraph start
            k = i + 1
            if (
                r.desc_x is not None
                and r.desc_x - r.rect[0] > 2 * em
                and (k == len(block) or abs(block[k].rect[0] - r.desc_x) <= 0.8 * em)
            ):
                while k < len(block) and (
                    not block[k].lead
                    and abs(block[k].rect[0] - r.desc_x) <= 0.8 * em
                    or _runs_on(block[k - 1], block[k])
                ):
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


def _runs_on(prev: Row, row: Row) -> bool:
    """The sentence of ``prev`` goes on in ``row``: no sentence end, and a lowercase start or a
    hyphenated break (a bullet starts a new item whatever came before)."""
    return (
        not _BULLET.match(row.text)
        and not prev.text.endswith((".", ":", "!", "?", ";"))
        and (row.text[:1].islower() or prev.text.endswith("-"))
    )


def _term_like(row: Row) -> bool:
    return bool(row.lead) or (
        len(row.text.split()) <= ROW_TERM_MAX_WORDS and not row.text.endswith((".", ",", ";"))
    )


def _starts_paragraph(
    block: list[Row], k: int, indented: list[bool], right: float, em: float
) -> bool:
    prev, row = block[k - 1], block[k]
    if _BULLET.match(row.text):
        return True
    if row.lead:
        return True
    if _runs_on(prev, row):
        return False  # no unit ends inside a sentence
    if prev.bold != row.bold:
        return True  # a bold heading and the text under it
    if prev.bold and row.bold:
        return False  # a heading wrapped onto a second line
    if indented[k] and (not indented[k - 1] or abs(row.rect[0] - prev.rect[0]) > 0.8 * em):
        return True  # first-line indent (after a line at the margin or a listing's indent)
    if not indented[k] and indented[k - 1] and k >= 2 and not indented[k - 2]:
        return False  # a one-row indent inside a paragraph is its first line
    return prev.text.endswith((".", ":", "!", "?")) and prev.rect[2] < right - 2 * em


# --------------------------------------------------------------------------- headings, captions
def _mark_headings(units: list[Unit], body: float) -> None:
    for u in units:
        words = u.text.split()
        big = median(r.size for r in u.rows) >= 1.15 * body or all(r.bold for r in u.rows)
        if (
            u.kind == "paragraph"
            and len(u.rows) <= 2
            and 1 <= len(words) <= 14
            and big
            and not u.text.endswith((".", ",", ";"))
        ):
            u.kind = "heading"


def _is_body(u: Unit, body: float, col_width: float) -> bool:
    """Running text: body-size lines, one across most of the column, two or more of them or
    one full sentence (a figure's labels and a table's cells are neither)."""
    sentence = len(u.text.split()) >= 6 and u.text.endswith((".", ":"))
    return (
        u.kind in ("paragraph", "entry", "heading")
        and (len(u.rows) >= 2 or sentence)
        and abs(median(r.size for r in u.rows) - body) < 1.0
        and max(r.rect[2] - r.rect[0] for r in u.rows) >= 0.6 * col_width
    )


def _figure_area(
    cap: Unit,
    units: list[Unit],
    graphics: list[Rect],
    body: float,
    upward: bool,
    width: float,
    two_col: bool,
) -> Rect | None:
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
    inside = [
        it
        for it in items
        if it[0][0] >= col[0] - 1
        and it[0][2] <= col[1] + 1
        and (it[0][3] <= ctop + 1 if upward else it[0][1] >= cbottom - 1)
    ]
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
            unit.kind in ("heading", "caption") or _is_body(unit, body, col[1] - col[0])
        )
        # a body paragraph stops the walk unless a graphic encloses it (text in a figure)
        if stopper and not any(
            g[0] <= rect[0] + 1
            and g[1] <= rect[1] + 1
            and g[2] >= rect[2] - 1
            and g[3] >= rect[3] - 1
            for g in graphics
        ):
            break
        taken.append(rect)
        has_graphic |= is_graphic
        edge = min(edge, rect[1]) if upward else max(edge, rect[3])
    if not taken or (not has_graphic and len(taken) < 2):
        return None
    return union([*taken, cap.rect])


def _mark_captions(
    units: list[Unit], graphics: list[Rect], body: float, width: float, two_col: bool
) -> None:
    for u in units:
        m = CAPTION.match(u.text)
        if not m or u.kind == "heading":
            continue
        label = (
            f"{m.group(1)} {m.group(2)}"  # as printed ("Fig. 3" stays): the answer is on the page
        )
        upward = m.group(1) != "Table"  # figures sit above their caption, tables below
        area = _figure_area(u, units, graphics, body, upward, width, two_col) or _figure_area(
            u, units, graphics, body, not upward, width, two_col
        )
        u.kind, u.term, u.area = "caption", label, area


# --------------------------------------------------------------------------- entry point


def layout_units(
    rows: list[Row], graphics: list[Rect], width: float
) -> tuple[float, list[Row], list[Unit]]:
    """(body text size, joined rows, units) of one page's pdfminer lines and graphics."""
    if not rows:
        return 10.0, [], []
    rows = _join_rows(rows, width)
    body = median(r.size for r in rows for _ in r.text)  # weighted by characters: the running text
    units = [u for block in _blocks(rows, width) for u in _split_block(block)]
    _mark_headings(units, body)
    _mark_captions(units, graphics, body, width, _two_columns(rows, width))
    return body, rows, units
