"""Text-layer geometry: words into lines, lines into layout blocks.

Blocks come from ``Page.blocks`` when the producer recorded them (the synthetic generator does,
and the importer does for born-digital PDF pages, ``components.data.pdf_layout``); otherwise —
OCR'd and image pages — they are grouped from the words alone: words → line segments (split
at wide horizontal gaps, so columns stay apart) → blocks (segments stacked with a small vertical
gap and overlapping horizontally). The block baselines retrieve these blocks, and region
extraction snaps regions to them (``components.regions.snap``). Words are
``[text, x0, y0, x1, y1]`` rows, boxes normalised with the origin top-left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from statistics import median


def words_in_box(words: Sequence[Sequence], box: Sequence[float]) -> list[Sequence]:
    """Words ([text, x0, y0, x1, y1]) whose centre falls inside ``box``."""
    x0, y0, x1, y1 = box
    out = []
    for w in words:
        cx, cy = (w[1] + w[3]) / 2, (w[2] + w[4]) / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            out.append(w)
    return out


def group_lines(words: Sequence[Sequence]) -> list[list[Sequence]]:
    """Words into lines: a word joins the current line when its vertical centre lies within it."""
    lines: list[list[Sequence]] = []
    for w in sorted(words, key=lambda w: ((w[2] + w[4]) / 2, w[1])):
        cy = (w[2] + w[4]) / 2
        if lines:
            top = min(v[2] for v in lines[-1])
            bottom = max(v[4] for v in lines[-1])
            if top <= cy <= bottom:
                lines[-1].append(w)
                continue
        lines.append([w])
    return [sorted(line, key=lambda w: w[1]) for line in lines]


@dataclass
class TextBlock:
    page_id: str
    text: str
    box: tuple[float, float, float, float]
    kind: str = ""  # the producer's kind (schema.Block.kind); "" for blocks grouped from words


def _union(boxes: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def blocks_from_words(page_id: str, words: Sequence[Sequence]) -> list[TextBlock]:
    """Group [text, x0, y0, x1, y1] words into blocks (see module doc)."""
    if not words:
        return []
    height = median(w[4] - w[2] for w in words) or 1e-3
    segments: list[list[Sequence]] = []
    for line in group_lines(words):
        current = [line[0]]
        for prev, word in pairwise(line):
            if word[1] - prev[3] > 2.0 * height:  # a column gutter, not a word space
                segments.append(current)
                current = []
            current.append(word)
        segments.append(current)
    blocks: list[list[list[Sequence]]] = []  # block -> segments
    for seg in sorted(segments, key=lambda s: (min(w[2] for w in s), min(w[1] for w in s))):
        box = _union([w[1:] for w in seg])
        placed = False
        for block in reversed(blocks):
            last = _union([w[1:] for w in block[-1]])
            gap = box[1] - last[3]
            overlap = min(box[2], last[2]) - max(box[0], last[0])
            if -0.5 * height <= gap <= 1.0 * height and overlap > 0:
                block.append(seg)
                placed = True
                break
        if not placed:
            blocks.append([seg])
    out = []
    for block in blocks:
        ws = [w for seg in block for w in seg]
        text = "\n".join(" ".join(w[0] for w in seg) for seg in block)
        out.append(TextBlock(page_id, text, _union([w[1:] for w in ws])))
    return out


# A heading's words are at least this much taller (median) than the page's median word.
HEADING_SCALE = 1.2


def words_in(box: Sequence[float], words: Sequence) -> list[bool]:
    """Whether each word (a ``Word``) belongs to ``box``: the box holds the word box's centre."""
    x0, y0, x1, y1 = box
    return [
        x0 <= (w.box[0] + w.box[2]) / 2 <= x1 and y0 <= (w.box[1] + w.box[3]) / 2 <= y1
        for w in words
    ]


def heading_block(page) -> TextBlock | None:
    """The page's heading: the block set in the tallest type, when that type is clearly larger
    than the body's (``HEADING_SCALE``); None for a page of one type size or without words.

    A word belongs to the block holding its box's centre (``words_in``); ties go to the block read first.
    """
    if not page.words:
        return None
    heights = [w.box[3] - w.box[1] for w in page.words]
    body = median(heights)
    best, best_height = None, body * HEADING_SCALE
    for block in page_blocks(page):
        inside = [h for h, held in zip(heights, words_in(block.box, page.words)) if held]
        if inside and median(inside) > best_height:
            best, best_height = block, median(inside)
    return best


def page_blocks(page) -> list[TextBlock]:
    """A Page's blocks: recorded layout blocks with text, else blocks grouped from its words."""
    recorded = [b for b in page.blocks if b.text.strip()]
    if recorded:
        return [TextBlock(page.id, b.text, tuple(b.box), b.kind) for b in recorded]
    return blocks_from_words(page.id, [[w.text, *w.box] for w in page.words])
