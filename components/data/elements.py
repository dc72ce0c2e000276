"""Page elements of the synthetic corpus: each one measures itself, draws itself on a Canvas and
reports the facts it holds (answer + answer box) so that questions can be asked about it.

Every element is drawn word by word through the Canvas, so the text layer is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from components.data.render import (
    Canvas,
    PxBox,
    bold_of,
    entity_picture,
    line_height,
    text_width,
    union,
    wrap,
)


@dataclass(frozen=True)
class Style:
    face: str
    size: int  # body font size in px
    title_size: int
    accent: tuple[int, int, int]

    @property
    def bold(self) -> str:
        return bold_of(self.face)

    @property
    def lh(self) -> int:
        return line_height(self.face, self.size) + max(1, self.size // 5)


@dataclass
class Fact:
    """Something a question can ask about: template key, template slots, answers, answer box."""

    key: str
    slots: dict[str, str]
    answers: list[str]
    answer_box: PxBox | None = None
    entity: Any = None  # the Entity for entity facts


@dataclass
class Drawn:
    kind: str
    box: PxBox
    facts: list[Fact] = field(default_factory=list)


def number_answers(text: str) -> list[str]:
    """Accept a number with or without thousands separators."""
    plain = text.replace(",", "")
    return [text] if plain == text else [text, plain]


class Title:
    kind = "title"

    def __init__(self, text: str, subtitle: str | None = None):
        self.text, self.subtitle = text, subtitle

    def _lines(self, width: float, style: Style):
        lines = wrap(self.text, style.bold, style.title_size, width)
        sub = wrap(self.subtitle, style.face, style.size, width) if self.subtitle else []
        return lines, sub

    def measure(self, width: float, style: Style) -> float:
        lines, sub = self._lines(width, style)
        return (
            len(lines) * line_height(style.bold, style.title_size) * 1.15 + len(sub) * style.lh + 2
        )

    def draw(self, c: Canvas, x: float, y: float, width: float, style: Style) -> Drawn:
        lines, sub = self._lines(width, style)
        boxes: list[PxBox] = []
        tlh = line_height(style.bold, style.title_size) * 1.15
        for line in lines:
            boxes += c.line(
                x, y, " ".join(w for w, _ in line), style.bold, style.title_size, fill=style.accent
            )
            y += tlh
        for line in sub:
            boxes += c.line(
                x, y, " ".join(w for w, _ in line), style.face, style.size, fill=(90, 90, 90)
            )
            y += style.lh
        return Drawn(self.kind, union(boxes))


class Paragraph:
    """Running text in one or more columns; fact sentences carry questions."""

    kind = "paragraph"

    def __init__(self, heading: str | None, sentences: list[tuple[str, Fact | None]], columns: int):
        self.heading, self.sentences, self.columns = heading, sentences, columns

    def _layout(self, width: float, style: Style):
        gap = style.size * 1.5
        colw = (width - gap * (self.columns - 1)) / self.columns
        text = " ".join(s for s, _ in self.sentences)
        lines = wrap(text, style.face, style.size, colw)
        per_col = math.ceil(len(lines) / self.columns)
        return colw, gap, lines, per_col

    def measure(self, width: float, style: Style) -> float:
        _, _, _, per_col = self._layout(width, style)
        return (style.lh if self.heading else 0) + per_col * style.lh

    def draw(self, c: Canvas, x: float, y: float, width: float, style: Style) -> Drawn:
        colw, gap, lines, per_col = self._layout(width, style)
        boxes: list[PxBox] = []
        if self.heading:
            boxes += c.line(x, y, self.heading, style.bold, style.size)
            y += style.lh
        # word index -> sentence index, to box each fact sentence
        owner: list[int] = []
        for si, (s, _) in enumerate(self.sentences):
            owner += [si] * len(s.split())
        sentence_boxes: dict[int, list[PxBox]] = {}
        space = text_width(style.face, style.size, " ")
        for li, line in enumerate(lines):
            col, row = divmod(li, per_col)
            lx, ly = x + col * (colw + gap), y + row * style.lh
            for word, wi in line:
                box = c.word(lx, ly, word, style.face, style.size)
                if box:
                    boxes.append(box)
                    sentence_boxes.setdefault(owner[wi], []).append(box)
                lx += text_width(style.face, style.size, word) + space
        facts = []
        for si, (_, fact) in enumerate(self.sentences):
            if fact is not None and si in sentence_boxes:
                fact.answer_box = union(sentence_boxes[si])
                facts.append(fact)
        return Drawn(self.kind, union(boxes), facts)


class Table:
    kind = "table"

    def __init__(
        self,
        caption: str,
        header: list[str],
        rows: list[list[str]],
        facts: dict[tuple[int, int], Fact],
    ):
        self.caption, self.header, self.rows, self.facts = caption, header, rows, facts

    def _row_h(self, style: Style) -> float:
        return style.lh * 1.35

    def measure(self, width: float, style: Style) -> float:
        return style.lh + (len(self.rows) + 1) * self._row_h(style) + 2

    def draw(self, c: Canvas, x: float, y: float, width: float, style: Style) -> Drawn:
        boxes = c.line(x, y, self.caption, style.bold, style.size)
        y += style.lh
        rh = self._row_h(style)
        first = width * 0.36
        other = (width - first) / max(1, len(self.header) - 1)
        col_x = [x] + [x + first + k * other for k in range(len(self.header) - 1)] + [x + width]
        top = y
        pad = style.size * 0.35
        c.draw.rectangle(
            [x, y, x + width, y + rh], fill=tuple(min(255, v + 170) for v in style.accent)
        )
        facts = []
        for r, row in enumerate([self.header] + self.rows):
            ry = y + r * rh
            for k, cell in enumerate(row):
                face = style.bold if r == 0 or k == 0 else style.face
                cx = col_x[k] + pad
                if k > 0:  # right-align numbers
                    cx = col_x[k + 1] - pad - text_width(face, style.size, cell)
                boxes += c.line(cx, ry + (rh - style.lh) / 2 + 1, cell, face, style.size)
                fact = self.facts.get((r - 1, k))
                if fact is not None:
                    fact.answer_box = (int(col_x[k]), int(ry), int(col_x[k + 1]), int(ry + rh))
                    facts.append(fact)
            c.draw.line([x, ry + rh, x + width, ry + rh], fill=(150, 150, 150))
        c.draw.rectangle([x, top, x + width, top + rh * (len(self.rows) + 1)], outline=(90, 90, 90))
        for cx in col_x[1:-1]:
            c.draw.line([cx, top, cx, top + rh * (len(self.rows) + 1)], fill=(150, 150, 150))
        boxes.append((int(x), int(top), int(x + width), int(top + rh * (len(self.rows) + 1))))
        return Drawn(self.kind, union(boxes), facts)


class BarChart:
    kind = "bar_chart"

    def __init__(self, caption: str, labels: list[str], values: list[int], facts: list[Fact]):
        self.caption, self.labels, self.values, self.facts = caption, labels, values, facts

    def _plot_h(self, width: float, style: Style) -> float:
        return max(style.lh * 4, width * 0.42)

    def measure(self, width: float, style: Style) -> float:
        return style.lh * 3 + self._plot_h(width, style)

    def draw(self, c: Canvas, x: float, y: float, width: float, style: Style) -> Drawn:
        boxes = c.line(x, y, self.caption, style.bold, style.size)
        y += style.lh
        ph = self._plot_h(width, style)
        base = y + style.lh + ph
        c.draw.line([x, base, x + width, base], fill=(60, 60, 60))
        slot = width / len(self.values)
        top = max(self.values)
        small = max(5, style.size - 1)
        for k, (label, value) in enumerate(zip(self.labels, self.values)):
            bh = ph * value / top
            bx0, bx1 = x + slot * (k + 0.18), x + slot * (k + 0.82)
            c.draw.rectangle([bx0, base - bh, bx1, base], fill=style.accent)
            vw = text_width(style.face, small, str(value))
            vbox = c.line(
                (bx0 + bx1 - vw) / 2, base - bh - style.lh, f"{value:,}", style.face, small
            )
            lw = text_width(style.face, small, label)
            lbox = c.line(x + slot * (k + 0.5) - lw / 2, base + 2, label, style.face, small)
            bar_box = (int(bx0), int(base - bh), int(bx1 + 1), int(base + 1))
            boxes += vbox + lbox + [bar_box]
            self.facts[k].answer_box = union(vbox + lbox + [bar_box])
        return Drawn(self.kind, union(boxes), list(self.facts))


class LineChart:
    kind = "line_chart"

    def __init__(self, caption: str, labels: list[str], values: list[int], facts: list[Fact]):
        self.caption, self.labels, self.values, self.facts = caption, labels, values, facts

    def _plot_h(self, width: float, style: Style) -> float:
        return max(style.lh * 4, width * 0.32)

    def measure(self, width: float, style: Style) -> float:
        return style.lh * 3 + self._plot_h(width, style)

    def draw(self, c: Canvas, x: float, y: float, width: float, style: Style) -> Drawn:
        boxes = c.line(x, y, self.caption, style.bold, style.size)
        y += style.lh * 2
        ph = self._plot_h(width, style)
        base = y + ph
        lo, hi = min(self.values) * 0.8, max(self.values) * 1.05
        c.draw.line([x, base, x + width, base], fill=(60, 60, 60))
        slot = width / len(self.values)
        pts = [
            (x + slot * (k + 0.5), base - ph * (v - lo) / (hi - lo))
            for k, v in enumerate(self.values)
        ]
        c.draw.line(pts, fill=style.accent, width=max(1, style.size // 4))
        small = max(5, style.size - 1)
        for k, ((px, py), label, value) in enumerate(zip(pts, self.labels, self.values)):
            r = max(2, style.size // 4)
            c.draw.ellipse([px - r, py - r, px + r, py + r], fill=style.accent)
            text = f"{value:,}"
            vbox = c.line(
                px - text_width(style.face, small, text) / 2,
                py - r - style.lh,
                text,
                style.face,
                small,
            )
            lbox = c.line(
                px - text_width(style.face, small, label) / 2, base + 2, label, style.face, small
            )
            boxes += vbox + lbox
            point = (int(px - r), int(py - r), int(px + r + 1), int(py + r + 1))
            self.facts[k].answer_box = union(vbox + lbox + [point])
        boxes.append((int(x), int(y - style.lh), int(x + width), int(base + 1)))
        return Drawn(self.kind, union(boxes), list(self.facts))


class Form:
    kind = "form"

    def __init__(self, heading: str, fields: list[tuple[str, str, Fact | None]]):
        self.heading, self.fields = heading, fields

    def measure(self, width: float, style: Style) -> float:
        return style.lh * 1.2 + len(self.fields) * style.lh * 1.5 + 4

    def draw(self, c: Canvas, x: float, y: float, width: float, style: Style) -> Drawn:
        top = y
        boxes = c.line(x + 3, y + 2, self.heading, style.bold, style.size)
        y += style.lh * 1.2 + 2
        label_w = width * 0.45
        facts = []
        for label, value, fact in self.fields:
            boxes += c.line(
                x + 3, y + style.lh * 0.25, f"{label}:", style.face, style.size, fill=(80, 80, 80)
            )
            c.draw.rectangle(
                [x + label_w, y, x + width - 3, y + style.lh * 1.3], outline=(170, 170, 170)
            )
            vbox = c.line(x + label_w + 3, y + style.lh * 0.25, value, style.face, style.size)
            boxes += vbox
            if fact is not None and vbox:
                fact.answer_box = (
                    int(x + label_w),
                    int(y),
                    int(x + width - 2),
                    int(y + style.lh * 1.3 + 1),
                )
                facts.append(fact)
            y += style.lh * 1.5
        frame = (int(x), int(top), int(x + width), int(y + 2))
        c.draw.rectangle(list(frame), outline=style.accent)
        boxes.append(frame)
        return Drawn(self.kind, union(boxes), facts)


class BulletList:
    kind = "list"

    def __init__(self, heading: str, items: list[str]):
        self.heading, self.items = heading, items

    def _lines(self, width: float, style: Style):
        return [wrap(item, style.face, style.size, width - style.size * 1.5) for item in self.items]

    def measure(self, width: float, style: Style) -> float:
        return style.lh + sum(len(lines) for lines in self._lines(width, style)) * style.lh

    def draw(self, c: Canvas, x: float, y: float, width: float, style: Style) -> Drawn:
        boxes = c.line(x, y, self.heading, style.bold, style.size)
        y += style.lh
        indent = style.size * 1.5
        for lines in self._lines(width, style):
            r = max(1, style.size // 6)
            cy = y + style.lh / 2
            c.draw.ellipse([x + 2, cy - r, x + 2 + 2 * r, cy + r], fill=style.accent)
            for line in lines:
                boxes += c.line(x + indent, y, " ".join(w for w, _ in line), style.face, style.size)
                y += style.lh
        return Drawn(self.kind, union(boxes))


class EntityCard:
    """A picture unique to the entity, its name, kind and facts."""

    kind = "entity_card"

    def __init__(self, entity: Any, facts: list[Fact]):
        self.entity, self.facts = entity, facts

    def _pic_h(self, width: float) -> int:
        return int(width * 0.6)

    def _lines(self, width: float, style: Style):
        return [f"{label}: {value}" for label, value in self.entity.facts]

    def measure(self, width: float, style: Style) -> float:
        name_lines = wrap(self.entity.name, style.bold, style.size, width - 6)
        return self._pic_h(width) + 8 + (len(name_lines) + 1 + len(self.entity.facts)) * style.lh

    def draw(self, c: Canvas, x: float, y: float, width: float, style: Style) -> Drawn:
        pic_w, pic_h = int(width) - 6, self._pic_h(width)
        top = y
        c.image.paste(
            entity_picture(self.entity.picture_seed, (pic_w, pic_h)), (int(x + 3), int(y + 3))
        )
        picture = (int(x + 3), int(y + 3), int(x + 3 + pic_w), int(y + 3 + pic_h))
        y += pic_h + 6
        boxes = [picture]
        for line in wrap(self.entity.name, style.bold, style.size, width - 6):
            boxes += c.line(x + 3, y, " ".join(w for w, _ in line), style.bold, style.size)
            y += style.lh
        boxes += c.line(
            x + 3, y, self.entity.kind.capitalize(), style.face, style.size, fill=(100, 100, 100)
        )
        y += style.lh
        for (label, value), fact in zip(self.entity.facts, self.facts):
            fbox = c.line(x + 3, y, f"{label}: {value}", style.face, style.size)
            boxes += fbox
            if fbox:
                fact.answer_box = union(fbox)
            y += style.lh
        frame = (int(x), int(top), int(x + width), int(y + 2))
        c.draw.rectangle(list(frame), outline=(120, 120, 120))
        boxes.append(frame)
        return Drawn(self.kind, union(boxes), [f for f in self.facts if f.answer_box])
