"""Lay one synthetic page out: the rows of its document's elements drawn on a canvas become the
page record (words, blocks) and its image, with the facts each block holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.data.elements import Fact
from components.data.render import Canvas
from components.data.schema import Block, Page, Word
from components.data.synthetic_content import DocContent
from components.data.synthetic_families import COLLECTION


@dataclass
class RenderedPage:
    page: Page
    image: Any
    facts: list[tuple[Fact, str]]  # fact, block kind
    blocks_px: list[tuple[int, int, int, int]]


def render_page(content: DocContent, page_no: int) -> RenderedPage:
    fam = content.fam
    w, h = fam.size
    style = fam.style
    canvas = Canvas(w, h)
    margin = int(0.06 * min(w, h))
    gap = max(4, int(0.03 * min(w, h)))
    blocks: list[Block] = []
    facts: list[tuple[Fact, str]] = []
    y = float(margin)
    slot = 0
    rows = [[content.title(page_no)]]
    for row in fam.plans[page_no]:
        elems = []
        for kind in row:
            elems.append(content.element(kind, slot))
            slot += kind == "card"
        rows.append(elems)
    for elems in rows:
        width = (w - 2 * margin - gap * (len(elems) - 1)) / len(elems)
        height = max(e.measure(width, style) for e in elems)
        if y + height > h - margin:
            continue  # does not fit: the next (smaller) row may
        for k, elem in enumerate(elems):
            first_word = len(canvas.words)
            drawn = elem.draw(canvas, margin + k * (width + gap), y, width, style)
            text = " ".join(t for t, _ in canvas.words[first_word:])
            blocks.append(Block(kind=drawn.kind, text=text, box=canvas.normalise(drawn.box)))
            facts += [(f, drawn.kind) for f in drawn.facts]
            # the fact's element box (question box) is the block box
            for f in drawn.facts:
                f.slots.setdefault("_block", len(blocks) - 1)
        y += height + gap
    words = [Word(text=t, box=canvas.normalise(b)) for t, b in canvas.words]
    page = Page(
        doc=content.doc.name,
        page=page_no,
        image=f"images/{content.doc.name}/{page_no}.png",
        width=w,
        height=h,
        words=words,
        blocks=blocks,
        collection=COLLECTION,
        split=fam.split,  # type: ignore[arg-type]
        tags=[COLLECTION, fam.doctype],
        meta={
            "family": fam.index,
            "layout": ["+".join(r) for r in fam.plans[page_no]],
            "font": style.face,
            "year": content.doc.year,
        },
    )
    return RenderedPage(page, canvas.image, facts, [])
