"""Figure areas of a PDF page: its image, form and drawing objects joined where they touch.

The graphic boxes are painted on a coarse raster (``CELL_PT``), grown by ``JOIN_PT`` so the
strokes of one drawing (axes, curves, arrows) connect, and labelled with ``scipy.ndimage``.
Groups whose boxes nearly touch are joined (a brace beside a diagram, panels of one figure).
A group is a figure when it holds a picture (image, form, or a path that is more than a rule or
a rectangle), is big enough to be read on its own, and is not mostly text (a shaded or framed
box behind a paragraph is decoration, not a figure). Rules, frames and table rulings alone are
a figure only when a caption says so.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from components.data.pdf_objects import Box, PageContent

CELL_PT = 2.0  # raster resolution in points
JOIN_PT = 6.0  # objects closer than this belong to one drawing
MERGE_PT = 12.0  # drawings whose boxes come closer than this are parts of one figure
PANEL_GAP_SHARE = 0.2  # drawings side by side closer than this share of the page are panels
MIN_WIDTH_SHARE, MIN_HEIGHT_SHARE = 0.06, 0.025  # smaller groups are icons or inline marks
MAX_TEXT_SHARE = 0.4  # a group whose box is more covered by words than this is a text frame
IMAGE_TEXT_SHARE = 0.15  # an image under this much text is a background, not a picture
BACKGROUND_SHARE = 0.8  # an object covering this share of the page is a page background
RULED_GAP_SHARE = 0.35  # a table's rules lie closer together than this share of the page height
RULE_BAND_SHARE = 0.08  # rules this close to the top/bottom edge belong to running heads/footers


def _text_share(box: Box, content: PageContent) -> float:
    x0, y0, x1, y1 = box
    area = max(1e-6, (x1 - x0) * (y1 - y0))
    covered = 0.0
    for w in content.words:
        cx, cy = (w.box[0] + w.box[2]) / 2, (w.box[1] + w.box[3]) / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            covered += (w.box[2] - w.box[0]) * (w.box[3] - w.box[1])
    return covered / area


@dataclass(frozen=True)
class FigureArea:
    box: Box  # points, origin top-left
    drawn: bool  # holds an image, form or drawing; False: rules and rectangles only


def figure_areas(content: PageContent) -> list[FigureArea]:
    """The page's graphic groups big enough to be figures, top to bottom.

    Groups of rules and rectangles only (``drawn`` False) are figures only when a caption
    names them so (``components.data.pdf_layout``): alone they are frames or table rulings.
    """
    width, height = content.width, content.height
    page_area = width * height
    graphics = [
        g
        for g in content.graphics
        if (g.box[2] - g.box[0]) * (g.box[3] - g.box[1]) < BACKGROUND_SHARE * page_area
        and g.box[2] > g.box[0]
        and g.box[3] > g.box[1]
    ]
    if not graphics:
        return []
    # An image under text lines (a watermark, a listing's backdrop) is decoration.
    graphics = [
        replace(g, plain=True)
        if g.kind == "image" and not g.plain and _text_share(g.box, content) > IMAGE_TEXT_SHARE
        else g
        for g in graphics
    ]
    shape = (int(np.ceil(height / CELL_PT)) + 1, int(np.ceil(width / CELL_PT)) + 1)
    mask = np.zeros(shape, dtype=bool)
    pad = JOIN_PT / 2
    cells = []
    for g in graphics:
        x0, y0, x1, y1 = g.box
        c0, r0 = int(max(0.0, x0 - pad) // CELL_PT), int(max(0.0, y0 - pad) // CELL_PT)
        c1 = int(min(width, x1 + pad) // CELL_PT) + 1
        r1 = int(min(height, y1 + pad) // CELL_PT) + 1
        mask[r0:r1, c0:c1] = True
        cells.append((r0, c0))
    labels, _ = ndimage.label(mask)
    groups: dict[int, list] = {}
    for g, (r, c) in zip(graphics, cells):
        groups.setdefault(int(labels[r, c]), []).append(g)
    merged = _merge_near(_join_rulings([(_union_box(m), m) for m in groups.values()], content))
    areas = []
    for box, members in merged:
        if box[2] - box[0] < MIN_WIDTH_SHARE * width or box[3] - box[1] < MIN_HEIGHT_SHARE * height:
            continue
        drawn = not all(g.plain for g in members)
        if drawn and _text_share(box, content) > MAX_TEXT_SHARE:
            continue
        areas.append(FigureArea(box, drawn))
    return sorted(_join_panels(areas, width), key=lambda a: (a.box[1], a.box[0]))


def _join_panels(areas: list[FigureArea], width: float) -> list[FigureArea]:
    """Drawings side by side in one band (panels of one figure, molecules in a row) are one
    figure: they overlap vertically by half the smaller height and stand less than
    ``PANEL_GAP_SHARE`` of the page width apart."""
    areas = list(areas)
    changed = True
    while changed:
        changed = False
        for i, j in itertools.combinations(range(len(areas)), 2):
            a, b = areas[i], areas[j]
            if not (a.drawn and b.drawn):
                continue
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.box, b.box
            band = min(ay1, by1) - max(ay0, by0)
            gap = max(ax0, bx0) - min(ax1, bx1)
            if band >= 0.5 * min(ay1 - ay0, by1 - by0) and gap <= PANEL_GAP_SHARE * width:
                areas[i] = FigureArea(
                    (min(ax0, bx0), min(ay0, by0), max(ax1, bx1), max(ay1, by1)), True
                )
                del areas[j]
                changed = True
                break
    return areas


def _union_box(members) -> Box:
    return (
        min(g.box[0] for g in members),
        min(g.box[1] for g in members),
        max(g.box[2] for g in members),
        max(g.box[3] for g in members),
    )


def _join_rulings(groups: list[tuple[Box, list]], content: PageContent) -> list[tuple[Box, list]]:
    """Horizontal rules of one width stacked within ``RULED_GAP_SHARE`` of the page height
    (a table's top, middle and bottom rules) become one group spanning them. Rules in the
    page's outer bands (under a running head, over a footer) stay apart."""
    width, height = content.width, content.height

    def is_rule(box: Box, members: list) -> bool:
        return (
            len(members) == 1
            and members[0].plain
            and box[3] - box[1] < 2.0
            and box[2] - box[0] >= 0.15 * width
            and RULE_BAND_SHARE * height < box[1] < (1 - RULE_BAND_SHARE) * height
        )

    rules = sorted((g for g in groups if is_rule(*g)), key=lambda g: g[0][1])
    others = [g for g in groups if not is_rule(*g)]
    stacks: list[list[tuple[Box, list]]] = []
    for rule in rules:
        box = rule[0]
        for stack in stacks:
            top = stack[-1][0]
            if (
                abs(box[0] - top[0]) <= 3
                and abs(box[2] - top[2]) <= 3
                and box[1] - top[3] <= RULED_GAP_SHARE * height
            ):
                stack.append(rule)
                break
        else:
            stacks.append([rule])
    joined = []
    for stack in stacks:
        members = [g for _, m in stack for g in m]
        joined.append((_union_box(members), members))
    return others + joined


def _merge_near(groups: list[tuple[Box, list]]) -> list[tuple[Box, list]]:
    """Join drawings whose boxes come within ``MERGE_PT`` (a brace beside a diagram, panels)."""
    groups = list(groups)
    changed = True
    while changed:
        changed = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i][0], groups[j][0]
                if (
                    a[0] - MERGE_PT < b[2]
                    and b[0] - MERGE_PT < a[2]
                    and a[1] - MERGE_PT < b[3]
                    and b[1] - MERGE_PT < a[3]
                ):
                    members = groups[i][1] + groups[j][1]
                    groups[i] = (_union_box(members), members)
                    del groups[j]
                    changed = True
                    break
            if changed:
                break
    return groups
