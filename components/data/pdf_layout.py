"""Layout blocks of a born-digital PDF page: the units a reader would highlight.

From the page's styled words and graphic objects (``components.data.pdf_objects``):

1. figure areas — image, form and drawing objects joined when they touch
   (``components.data.pdf_figures``);
2. line segments of every row (``components.data.pdf_lines``); a row whose segments are two
   wide text runs is split into its columns; rows that stay split into short cells, two or more
   stacked, form a ``table`` (its entries also come out, nested, as ``table_row`` blocks);
3. the other segments flow into blocks, line under line in the same column; a new block starts
   at a vertical gap wider than the block's line pitch (the page's own leading sets the first
   step), a change of font size, of bold or of monospace after a line that stopped short, a list
   marker, a term, a caption, a sentence end on a line the next line's first word would have
   fitted on, a run-in bold/typewriter term after a finished entry, and at indentation: a
   first-line indent starts a paragraph, a line back at the margin after a hanging indent
   starts the next entry;
4. kinds: ``heading`` (short, larger or all bold), ``code`` (monospace), ``list_item`` (marker),
   ``definition`` (term with a hanging, side-by-side or run-in description), ``paragraph``; the
   first/last rows standing apart in the page's outer bands are ``page_header`` /
   ``page_footer``;
5. figures take in their labels, and captions are united with their figure (``figure``) or
   table (``table``), else kept as a ``caption`` (``components.data.pdf_captions``).

Boxes come out normalised with the origin top-left (``schema.Block``).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from statistics import median

from components.data.pdf_captions import attach_captions, inside, split_at_captions
from components.data.pdf_figures import figure_areas
from components.data.pdf_lines import Group, Line, rows_of, segments_of, union
from components.data.pdf_objects import Box, PageContent, PdfWord, read_page
from components.data.schema import Block

COLUMN_SHARE = 0.28  # a text run at least this share of the page wide is a column's line
MARGIN_SHARE = 0.075  # rows this close to the top/bottom edge may be running heads or folios
INDENT_EM = 0.8  # an x shift of this much is an indentation, not ragged alignment
HEADING_SCALE = 1.15


def _is_cell_row(lines: list[Line], width: float) -> bool:
    return len(lines) >= 2 and all(
        ln.x1 - ln.x0 < COLUMN_SHARE * width and not ln.caption for ln in lines
    )


def _split_columns(lines: list[Line], width: float) -> list[list[Line]]:
    """A row's segments split where two wide text runs meet: each part is one column's row."""
    parts = [[lines[0]]]
    for a, b in itertools.pairwise(lines):
        narrow = min(a.x1 - a.x0, b.x1 - b.x0)
        wide = narrow >= COLUMN_SHARE * width or (
            narrow >= 0.6 * COLUMN_SHARE * width and min(len(a.words), len(b.words)) >= 6
        )
        parts.append([b]) if wide else parts[-1].append(b)
    return parts


def _tables(rows: list[list[Line]], width: float) -> list[tuple[list[int], Box]]:
    """Runs of two or more stacked rows of short cells (row indices, box)."""
    runs: list[list[int]] = []
    for i, row in enumerate(rows):
        if not _is_cell_row(row, width):
            continue
        box = union(ln.box for ln in row)
        for run in reversed(runs[-4:]):
            last = union(ln.box for ln in rows[run[-1]])
            em = max(ln.size for ln in row)
            overlap = min(box[2], last[2]) - max(box[0], last[0])
            if 0 < box[1] - last[1] <= 2.6 * em and overlap > 0:
                run.append(i)
                break
        else:
            runs.append([i])
    return [(run, union(ln.box for i in run for ln in rows[i])) for run in runs if len(run) >= 2]


def _leading(rows: list[list[Line]], body: float) -> float:
    """The page's usual baseline distance in ems: the commonest step between stacked lines of
    running text (body size, wide: table rows and lists may be set tighter or looser; most
    steps between prose lines lie inside paragraphs)."""
    steps: Counter = Counter()
    widest = max((ln.x1 - ln.x0 for row in rows for ln in row), default=0.0)
    lines = sorted(
        (
            ln
            for row in rows
            for ln in row
            if abs(ln.size - body) <= 0.1 * body and ln.x1 - ln.x0 >= 0.6 * widest
        ),
        key=lambda ln: ln.baseline,
    )
    for a, b in itertools.pairwise(lines):
        ratio = (b.baseline - a.baseline) / body
        if 1.0 <= ratio <= 2.2 and min(a.x1, b.x1) > max(a.x0, b.x0):
            steps[round(ratio * 20) / 20] += 1
    return steps.most_common(1)[0][0] if steps else 1.2


def _table_entries(rows: list[list[Line]]) -> list[Group]:
    """A table's entries, nested in it: a row starting in the first column with the rows
    under it that do not (wrapped cells)."""
    left = min(row[0].x0 for row in rows)
    entries: list[Group] = []
    for row in rows:
        if entries and row[0].x0 > left + INDENT_EM * row[0].size:
            entries[-1].lines += row
        else:
            entries.append(Group(list(row), "table_row"))
    return entries if len(entries) > 1 else []


def _continues(group: Group, line: Line, leading: float, nxt: Line | None) -> bool:
    """Whether ``line`` goes on the block ``group`` (see the module doc, step 3)."""
    last = group.lines[-1]
    em = max(line.size, last.size)
    pitch = line.baseline - last.baseline
    first_step = max(1.45, 1.12 * leading) * em
    if pitch <= 0 or pitch > (group.pitch + 0.25 * em if group.pitch else first_step):
        return False
    if abs(line.size - last.size) > 0.12 * em or line.marker or line.term or line.caption:
        return False
    first = group.lines[0]
    if group.kind == "caption":
        return True
    right = max(ln.x1 for ln in group.lines)
    ended = last.x1 < max(right, line.x1) - 2 * em  # the last line stops short: a unit may end
    if (line.mono != last.mono or line.bold != last.bold) and ended:
        # a bold or typewriter term on its own line, its prose description indented under it
        # (all of it: a paragraph whose next line returns to the margin is under a heading)
        return (
            len(group.lines) == 1
            and not line.mono
            and line.x0 > first.x0 + INDENT_EM * em
            and (nxt is None or nxt.x0 > first.x0 + INDENT_EM * em)
        )
    if last.mono and line.mono:
        return True
    head = line.words[0].box
    if ended and last.text[-1] in ".:!?" and max(right, line.x1) - last.x1 > head[2] - head[0] + em:
        return False  # the next line's first word would have fit: the sentence ended a unit
    lead = line.words[0]
    if last.text[-1] in ".;" and (lead.bold and not line.bold or lead.mono and not line.mono):
        return False  # after a finished entry, a run-in term in bold or typewriter starts the next
    tol = INDENT_EM * em
    if len(group.lines) == 1:
        if first.hang is not None:
            return first.x0 - tol <= line.x0 <= first.hang + tol
        return line.x0 > first.x0 - 4 * em  # a first-line indent or a hanging indent
    expected = group.hang if group.hang is not None else group.lines[1].x0
    return abs(line.x0 - expected) <= tol


def _flow(lines: list[Line], leading: float) -> list[Group]:
    """Lines stacked into blocks: each line continues the nearest block above it in its column."""
    groups: list[Group] = []
    ordered = sorted(lines, key=lambda ln: (ln.baseline, ln.x0))
    for k, line in enumerate(ordered):
        best = None
        for g in groups:
            last = g.lines[-1]
            overlap = min(line.x1, g.box[2]) - max(line.x0, g.box[0])
            if (
                overlap > 0
                and line.baseline > last.baseline
                and (best is None or last.baseline > best.lines[-1].baseline)
            ):
                best = g
        below = (
            ln
            for ln in ordered[k + 1 :]
            if ln.baseline > line.baseline and min(ln.x1, line.x1) > max(ln.x0, line.x0)
        )
        if best is not None and _continues(best, line, leading, next(below, None)):
            if len(best.lines) == 1:
                best.pitch = line.baseline - best.lines[0].baseline
                first = best.lines[0]
                if first.hang is not None or line.x0 > first.x0 + INDENT_EM * line.size:
                    best.hang = line.x0
            best.lines.append(line)
        else:
            groups.append(Group([line], "caption" if line.caption else ""))
    return groups


def _kind(group: Group, body: float) -> str:
    lines, first = group.lines, group.lines[0]
    chars = sum(len(ln.text) for ln in lines)
    if group.kind:
        return group.kind
    size = median(ln.size for ln in lines)
    if len(lines) <= 3 and chars < 200 and size >= HEADING_SCALE * body:
        return "heading"
    if sum(ln.mono for ln in lines) >= 0.8 * len(lines):
        return (
            "code"
            if not (first.term or group.hang) or len(lines) > 1 and all(ln.mono for ln in lines)
            else "definition"
        )
    if first.marker:
        return "list_item"
    if first.term or (group.hang is not None and group.hang > first.x0):
        return "definition"
    if (
        len(first.words) > 1
        and first.words[0].bold
        and not first.bold
        and not lines[0].text[0].isdigit()
    ):
        return "definition"  # a run-in bold term
    if len(lines) <= 3 and chars < 200 and all(ln.bold for ln in lines):
        return "heading"
    return "paragraph"


def _margins(rows: list[list[Line]], height: float, size: float) -> tuple[set[int], set[int]]:
    """Rows that are running heads (top) or folios and footers (bottom): in the outer band, or
    the first/last row of the page, short, no larger than body text, standing apart from the
    body by a wide gap (a title at the top of a page is larger than body text)."""
    order = sorted(range(len(rows)), key=lambda i: rows[i][0].baseline)
    top = {i for i in order if rows[i][0].baseline < MARGIN_SHARE * height}
    bottom = {i for i in order if rows[i][0].baseline > (1 - MARGIN_SHARE) * height}
    body = [i for i in order if i not in top | bottom]
    if len(body) >= 3:
        for edge, nxt, band, out in (
            (body[0], body[1], 0.15, top),
            (body[-1], body[-2], 0.85, bottom),
        ):
            y, em = rows[edge][0].baseline, rows[edge][0].size
            apart = abs(rows[nxt][0].baseline - y) > 1.8 * em
            short = sum(ln.x1 - ln.x0 for ln in rows[edge]) < 0.4 * max(
                ln.x1 for r in rows for ln in r
            )
            small = rows[edge][0].size <= 1.05 * size
            caption = any(ln.caption for ln in rows[edge])
            if (
                apart
                and short
                and small
                and not caption
                and (y < band * height if band < 0.5 else y > band * height)
            ):
                out.add(edge)
    return top, bottom


def _absorb_table_rows(tables: list[tuple[list[int], Box]], rows: list[list[Line]]) -> None:
    """Rows lying within a table's span (a cell row read as a term, a wrapped cell) join it."""
    for run, box in tables:
        for i, row in enumerate(rows):
            if i in run:
                continue
            rb = union(ln.box for ln in row)
            y = row[0].baseline
            if (
                rows[run[0]][0].baseline < y < rows[run[-1]][0].baseline
                and rb[0] >= box[0] - 2
                and rb[2] <= box[2] + 2
            ):
                run.append(i)
        run.sort()


def _body_size(words: list[PdfWord]) -> float:
    """The size most of the page's characters are set in (a long listing in small type has
    many short words, but body text has more characters)."""
    chars: Counter = Counter()
    for w in words:
        chars[round(w.size * 4) / 4] += len(w.text)
    return chars.most_common(1)[0][0] if chars else 10.0


def layout_blocks(content: PageContent) -> list[Block]:
    """The page's layout blocks (see the module doc), in reading order top to bottom."""
    if not content.words and not content.graphics:
        return []
    width, height = content.width, content.height
    areas = split_at_captions(figure_areas(content), content.words)
    flow_words = list(content.words)
    body = _body_size(flow_words)
    bold_chars = sum(len(w.text) for w in flow_words if w.bold)
    if bold_chars > 0.6 * sum(len(w.text) for w in flow_words):  # no contrast: bold tells nothing
        flow_words = [replace(w, bold=False) for w in flow_words]
    rows = [
        part
        for row in segments_of(rows_of(flow_words), width)
        for part in _split_columns(row, width)
    ]
    top, bottom = _margins(rows, height, body)
    margin = [
        Group([ln], "page_header" if i in top else "page_footer")
        for i in sorted(top | bottom)
        for ln in rows[i]
    ]
    body_rows = [row for i, row in enumerate(rows) if i not in top | bottom]
    runs = _tables(body_rows, width)
    _absorb_table_rows(runs, body_rows)
    tables = [Group([ln for i in run for ln in body_rows[i]], "table") for run, _ in runs]
    entries = [e for run, _ in runs for e in _table_entries([body_rows[i] for i in run])]
    in_table = {i for run, _ in runs for i in run}
    lines = [ln for i, row in enumerate(body_rows) if i not in in_table for ln in row]
    groups = _flow(lines, _leading(body_rows, body))
    for g in groups:
        g.kind = _kind(g, body)
    drawn = [
        g.box
        for g in content.graphics
        if (g.box[2] - g.box[0]) * (g.box[3] - g.box[1]) < 0.8 * width * height
    ]  # a page background is no part of a table
    groups = attach_captions(groups, areas, tables, (width, height), body, drawn)
    figures = [g.box for g in groups if g.kind == "figure"]
    groups += margin + [e for e in entries if not any(inside(e.box, f) for f in figures)]
    blocks = []
    for g in sorted(groups, key=lambda g: (round(g.box[1]), g.box[0])):
        x0, y0, x1, y1 = g.box
        nb = tuple(
            round(v, 5)
            for v in (
                max(0.0, x0 / width),
                max(0.0, y0 / height),
                min(1.0, x1 / width),
                min(1.0, y1 / height),
            )
        )
        if nb[0] < nb[2] and nb[1] < nb[3]:
            blocks.append(Block(kind=g.kind, text=g.text, box=nb))
    return blocks


def pdf_page_blocks(page) -> list[Block]:
    """Layout blocks of a pypdfium2 page (``read_page`` then ``layout_blocks``)."""
    return layout_blocks(read_page(page))
