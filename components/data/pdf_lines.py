"""Line segments of a PDF page: its styled words cut into the runs a reader reads as one line.

Words on one baseline form a row (sub- and superscripts join their line). A row is cut into
segments at wide gaps and at gaps that line up over three or more consecutive rows (table
columns, option lists, column gutters). Then a list marker is joined back to the text after it,
and a short term to its description (``-v, --verbose   Print ...``), each marking where its
continuation lines hang; a "Figure N: ..." / "Table N. ..." line is marked as a caption.
Geometry is in PDF points, origin top-left (``components.data.pdf_objects``).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from statistics import median

from components.data.pdf_objects import Box, PdfWord

MARKER = re.compile(
    r"^([•◦▪▫‣⁃∙●○■□►▸❖✓·*–—-]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)]|"
    r"\(?[ivxIVX]{1,5}[.)]|\[\d{1,3}\])$"
)
BULLETS = "•◦▪▫‣⁃∙●○■□►▸❖✓"
CAPTION = re.compile(r"^(Figure|Fig\.?|Table|Tab\.|Listing|Chart|Plate|Exhibit)$", re.IGNORECASE)
CAPTION_NUMBER = re.compile(r"^[A-Z]?\d+([.\-]\d+)*[.:]?$|^[IVX]+[.:]?$")
WIDE_GAP_EM = 1.6  # a gap this wide always ends a segment (words of one line sit closer)
ALIGNED_GAP_EM = 0.9  # a gap this wide ends a segment when it lines up over 3+ rows


def union(boxes) -> Box:
    boxes = list(boxes)
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


@dataclass
class Line:
    """Words of one row within one column: a segment of text read left to right."""

    words: list[PdfWord]
    hang: float | None = None  # where continuation lines start (after a marker or a term)
    marker: bool = False
    term: bool = False
    caption: bool = False

    @property
    def box(self) -> Box:
        return union(w.box for w in self.words)

    @property
    def x0(self) -> float:
        return self.words[0].box[0]

    @property
    def x1(self) -> float:
        return self.words[-1].box[2]

    @property
    def baseline(self) -> float:
        return median(w.baseline for w in self.words)

    @property
    def size(self) -> float:
        """The size most of the line's characters are set in (a short word in smaller type, such
        as inline code, does not make a line of body text small)."""
        return median(w.size for w in self.words for _ in w.text)

    @property
    def bold(self) -> bool:
        return all(w.bold for w in self.words)

    @property
    def mono(self) -> bool:
        return sum(len(w.text) for w in self.words if w.mono) >= 0.8 * len(self.text)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


def rows_of(words: list[PdfWord]) -> list[list[PdfWord]]:
    """Words into rows by baseline; a smaller word near a row (a sub/superscript) joins it."""
    rows: list[list[PdfWord]] = []
    for w in sorted(words, key=lambda w: (w.baseline, w.box[0])):
        for row in reversed(rows[-3:]):
            ref = max(row, key=lambda v: v.size)
            if abs(w.baseline - ref.baseline) <= 0.3 * ref.size or (
                w.size < 0.85 * ref.size and ref.box[1] <= (w.box[1] + w.box[3]) / 2 <= ref.box[3]
            ):
                row.append(w)
                break
        else:
            rows.append([w])
    return [sorted(row, key=lambda w: w.box[0]) for row in rows]


def _aligned_gaps(rows: list[list[PdfWord]]) -> set[tuple[int, int]]:
    """(row, word index) of gaps that line up with a gap in the rows above/below, 3+ rows tall."""
    gaps = []  # per row: [(word index after the gap, x0, x1)]
    for row in rows:
        em = median(w.size for w in row)
        gaps.append(
            [
                (k, a.box[2], b.box[0])
                for k, (a, b) in enumerate(itertools.pairwise(row), 1)
                if b.box[0] - a.box[2] >= ALIGNED_GAP_EM * em
            ]
        )
    parent: dict = {}

    def find(node):
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for r in range(1, len(rows)):
        near = rows[r][0].baseline - rows[r - 1][0].baseline <= 2.5 * rows[r][0].size
        for k, a0, a1 in gaps[r] if near else []:
            for j, b0, b1 in gaps[r - 1]:
                if min(a1, b1) - max(a0, b0) >= 0.5 * rows[r][0].size:
                    parent[find((r, k))] = find((r - 1, j))
    members: dict = {}
    for node in parent:
        members.setdefault(find(node), []).append(node)
    return {n for group in members.values() if len({r for r, _ in group}) >= 3 for n in group}


def segments_of(rows: list[list[PdfWord]], width: float) -> list[list[Line]]:
    """Each row cut into segments; then markers and short terms joined to the text after them."""
    aligned = _aligned_gaps(rows)
    out = []
    for r, row in enumerate(rows):
        lines = [Line([row[0]])]
        for k, (a, b) in enumerate(itertools.pairwise(row), 1):
            gap, em = b.box[0] - a.box[2], max(a.size, b.size)
            code = a.mono and b.mono
            wide = gap > (4 if code else WIDE_GAP_EM) * em
            if wide or ((r, k) in aligned and not code):
                lines.append(Line([b]))
            else:
                lines[-1].words.append(b)
        out.append(_join_cells(lines, width))
    return out


def is_marker(line: Line) -> bool:
    first = line.words[0].text
    return bool(MARKER.match(first)) or (first[0] in BULLETS and len(first) > 1)


def _join_cells(lines: list[Line], width: float) -> list[Line]:
    """Rejoin a marker or a short term with the segment right of it; mark captions."""
    joined: list[Line] = []
    for line in lines:
        prev = joined[-1] if joined else None
        if prev is not None and len(prev.words) == 1 and is_marker(prev) and not prev.hang:
            prev.words += line.words
            prev.hang, prev.marker = line.x0, True
            continue
        span = line.x1 - prev.x0 if prev is not None else 0.0
        if (
            prev is not None
            and not prev.term
            and not prev.marker
            and prev.x1 - prev.x0 < min(0.3 * span, 0.2 * width)
            and line.x1 - line.x0 >= 0.45 * span
            and line.x0 - prev.x1 < 0.25 * width
        ):
            prev.words += line.words
            prev.hang, prev.term = line.x0, True
            continue
        joined.append(line)
    for line in joined:
        if not line.marker and is_marker(line) and len(line.words) > 1:
            line.marker, line.hang = True, line.words[1].box[0]
        ws = line.words
        line.caption = is_caption(ws)
    return joined


def is_caption(words: list[PdfWord]) -> bool:
    """ "Figure 3: ...", "Table 2.1. ...", "Fig. 4 Sample": not "Figure 1 shows ..." in prose."""
    if (
        len(words) < 2
        or not CAPTION.match(words[0].text)
        or not CAPTION_NUMBER.match(words[1].text)
    ):
        return False
    return words[1].text[-1] in ".:" or len(words) == 2 or not words[2].text[0].islower()


@dataclass
class Group:
    """Lines grouped into one layout block, with the areas and text a caption took on."""

    lines: list[Line] = field(default_factory=list)
    kind: str = ""
    pitch: float | None = None
    hang: float | None = None
    extra: list[Box] = field(default_factory=list)  # figure area or table united with a caption
    extra_text: str = ""

    @property
    def box(self) -> Box:
        return union([ln.box for ln in self.lines] + self.extra)

    @property
    def text(self) -> str:
        own = "\n".join(ln.text for ln in self.lines)
        return "\n".join(t for t in (own, self.extra_text) if t)
