"""Figures and tables united with their captions, on a PDF page's layout blocks.

A drawn figure area (``components.data.pdf_figures``) takes in the text blocks lying in or
against it: its labels, ticks and legends. Captions ("Figure N: ...", "Table N. ...") and the
figures and tables beside them then pair up, nearest pairs first; a figure caption is looked for
below its figure, a table caption above its table. A group of rules and rectangles becomes a
figure or table only when a caption names it. A table keeps its entries as blocks of their own,
nested in it (a question about one row is answered by that row); a figure's labels are only
its words. A caption line running across a drawn area splits the area first: stacked figures
that touch keep their own captions.
"""

from __future__ import annotations

from components.data.pdf_figures import FigureArea
from components.data.pdf_lines import Group, is_caption, rows_of, union
from components.data.pdf_objects import Box, PdfWord

TABLE_GAP_EM = 2.5  # a table's parts lie closer together than this many body lines
TABLE_BODY_SHARE = 0.8  # a line filling this share of the text column is running text, not a cell


def inside(box: Box, area: Box) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return area[0] <= cx <= area[2] and area[1] <= cy <= area[3]


def _take_labels(
    fig: Group, area: Box, rest: list[Group], taken: set[int], page_width: float, pad: float
) -> set[int]:
    """Give a figure the text blocks lying in or against its area (labels, ticks, legends);
    returns which it took."""
    took: set[int] = set()
    x0, y0, x1, y1 = area
    grown = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    for k, h in enumerate(rest):
        if k in taken or h is fig or h.kind in ("caption", "figure") or h.extra:
            continue
        b = h.box
        touches = b[0] < grown[2] and grown[0] < b[2] and b[1] < grown[3] and grown[1] < b[3]
        inside = grown[0] <= b[0] and b[2] <= grown[2] and grown[1] <= b[1] and b[3] <= grown[3]
        if h.kind == "heading" and not inside:  # a large label, or the section title over it
            continue
        small = len(h.lines) <= 3 and b[2] - b[0] < 0.3 * page_width
        common = max(0.0, min(b[2], x1) - max(b[0], x0)) * max(0.0, min(b[3], y1) - max(b[1], y0))
        mostly = common >= 0.5 * (b[2] - b[0]) * (b[3] - b[1])
        if touches and (inside or small or mostly):
            taken.add(k)
            took.add(k)
            fig.extra.append(b)
            fig.extra_text = "\n".join(t for t in (fig.extra_text, h.text) if t)
    return took


def _caption_gap(cap: Box, box: Box, is_table: bool, height: float) -> float | None:
    """How far a caption lies from a figure or table it may name (None: not beside it). A figure
    caption sits below its figure, a table caption above its table: the other side costs more."""
    if min(cap[2], box[2]) - max(cap[0], box[0]) <= 0:
        return None
    d = cap[1] - box[3] if box[3] <= cap[1] + 2 else box[1] - cap[3]
    d += 0.02 * height if (is_table == (box[1] < cap[1])) else 0
    return d if -2 <= d < 0.12 * height else None


def attach_captions(
    groups: list[Group],
    areas: list[FigureArea],
    tables: list[Group],
    page: tuple[float, float],
    body: float,
    graphics: list[Box] | None = None,
) -> list[Group]:
    """Drawn figure areas take in their labels; then captions and figures (or tables) pair up,
    nearest pairs first, and each caption is united with its figure or table.

    A group of rules and rectangles only becomes a figure here, named by its caption; the text
    blocks inside it become its words.
    """
    width, height = page
    pad = 1.5 * body
    rest = groups + tables
    taken: set[int] = set()
    figures = {i: Group([], "figure", extra=[a.box]) for i, a in enumerate(areas) if a.drawn}
    took = {
        i: _take_labels(fig, areas[i].box, rest, taken, width, pad) for i, fig in figures.items()
    }
    targets = [
        (("area", i), figures[i].box if i in figures else a.box) for i, a in enumerate(areas)
    ]
    targets += [(("table", len(groups) + j), t.box) for j, t in enumerate(tables)]
    pairs = []
    for c, g in enumerate(groups):
        if g.kind == "caption" and c not in taken:
            is_table = g.lines[0].words[0].text.lower().startswith("tab")
            for key, box in targets:
                d = _caption_gap(g.box, box, is_table, height)
                if d is not None:
                    pairs.append((d, c, key))
    named: set = set()
    captioned: set[int] = set()
    for _, c, key in sorted(pairs):
        if c in captioned or key in named or (key[0] == "table" and key[1] in taken):
            continue
        captioned.add(c)
        named.add(key)
        g = groups[c]
        is_table = g.lines[0].words[0].text.lower().startswith("tab")
        if key[0] == "table":
            taken.add(key[1])
            g.kind, g.extra, g.extra_text = "table", [rest[key[1]].box], rest[key[1]].text
            continue
        i = key[1]
        if i in figures:
            fig = figures.pop(i)
            g.kind, g.extra, g.extra_text = "figure", fig.extra, fig.extra_text
            inner = took[i]
        else:  # rules and rectangles named by a caption
            g.extra, g.extra_text = [areas[i].box], ""
            inner = _take_labels(g, areas[i].box, rest, taken, width, pad)
        if is_table:  # a table's entries are units of their own too: kept, nested in it
            g.kind = "table"
            taken -= inner
    for c in captioned:
        if groups[c].kind == "table":
            _grow_table(groups[c], rest, [a.box for a in areas] + list(graphics or []), body)
    kept = [h for k, h in enumerate(rest) if k not in taken]
    return kept + list(figures.values())


def _is_running_text(h: Group, text_width: float, body: float) -> bool:
    """A body paragraph: body-size lines, one across most of the text column, two or more lines
    or one full sentence (a table's cells are neither)."""
    sentence = len(h.text.split()) >= 6 and h.text.rstrip().endswith((".", ":"))
    size = sorted(ln.size for ln in h.lines)[len(h.lines) // 2]
    return (
        h.kind in ("paragraph", "list_item", "definition")
        and (len(h.lines) >= 2 or sentence)
        and abs(size - body) < 1.0
        and max(ln.x1 - ln.x0 for ln in h.lines) >= TABLE_BODY_SHARE * text_width
    )


def _grow_table(cap: Group, rest: list[Group], drawn: list[Box], body: float) -> None:
    """A captioned table takes in what continues it below the part the caption was paired
    with: further table runs, rulings, and cell text (rows the table detection broke off at a
    wrapped or spanning cell), walking down until running text, a heading, another caption or
    figure, or a gap wider than ``TABLE_GAP_EM`` lines; ``drawn``: figure areas and the page's
    graphic objects (rulings, the pictures in an example column). Those blocks stay blocks of
    their own."""
    lines = [ln for h in rest for ln in h.lines]
    box = cap.box
    text_width = (
        (max(ln.x1 for ln in lines) - min(ln.x0 for ln in lines)) if lines else box[2] - box[0]
    )
    span = (box[0] - body, box[2] + body)
    items = [(b, None) for b in drawn] + [(h.box, h) for h in rest if h is not cap]
    items = sorted(
        (
            it
            for it in items
            if it[0][1] >= box[3] - 2 and it[0][0] >= span[0] and it[0][2] <= span[1]
        ),
        key=lambda it: it[0][1],
    )
    edge = box[3]
    for b, h in items:
        if b[3] <= edge:
            continue  # already within the table
        if b[1] - edge > TABLE_GAP_EM * body:
            break
        if h is not None and (
            h.kind in ("heading", "caption", "figure", "table")
            and h.extra
            or h.kind in ("heading", "caption", "figure")
            or _is_running_text(h, text_width, body)
        ):
            break
        cap.extra.append(b)
        if h is not None and h.kind != "table_row":
            cap.extra_text = "\n".join(t for t in (cap.extra_text, h.text) if t)
        edge = b[3]


def split_at_captions(areas: list[FigureArea], words: list[PdfWord]) -> list[FigureArea]:
    """Cut a drawn area where a caption line runs across it: figures stacked close together
    join into one area, but each keeps its own caption (which must stay out of the area)."""
    captions = [union(w.box for w in row) for row in rows_of(words) if is_caption(row)]
    out = []
    for area in areas:
        pieces = [area.box]
        for cap in captions if area.drawn else []:
            cut = []
            for x0, y0, x1, y1 in pieces:
                across = min(cap[2], x1) > max(cap[0], x0) and y0 < (cap[1] + cap[3]) / 2 < y1
                if across:
                    cut += [
                        b
                        for b in ((x0, y0, x1, cap[1]), (x0, cap[3], x1, y1))
                        if b[3] - b[1] > cap[3] - cap[1]
                    ]
                else:
                    cut.append((x0, y0, x1, y1))
            pieces = cut
        out += [FigureArea(box, area.drawn) for box in pieces]
    return out
