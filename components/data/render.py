"""Pillow drawing primitives for synthetic pages: fonts, a canvas that records every word's box,
text wrapping, and procedurally drawn entity pictures.

The canvas draws word by word so that each word of the text layer carries the box it really
occupies on the page (``FreeTypeFont.getbbox`` = ``ImageDraw.textbbox`` at the origin).
"""

from __future__ import annotations

import colorsys
import importlib.util
import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFont

PxBox = tuple[int, int, int, int]


def _bundled_font_dir() -> Path:
    """matplotlib's copy of DejaVu (found without importing matplotlib).

    A pip-installed copy gives the same glyphs on every machine, so the same seed renders the
    same bytes anywhere; /usr/share/fonts depends on the OS and its font packages.
    """
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent")
    return Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf"


FONT_DIR = _bundled_font_dir()
# Font faces by role. Each role names a DejaVu file; the Pillow built-in font is the fallback,
# so the generator still works (deterministically) where the fonts are missing.
_FACES = {
    "sans": "DejaVuSans.ttf",
    "sans-bold": "DejaVuSans-Bold.ttf",
    "serif": "DejaVuSerif.ttf",
    "serif-bold": "DejaVuSerif-Bold.ttf",
    "oblique": "DejaVuSans-Oblique.ttf",
    "mono": "DejaVuSansMono.ttf",
}
BUILTIN = "pillow-default"


def available_faces() -> list[str]:
    """Face names usable on this machine, in a fixed order (the built-in font is always there)."""
    faces = [BUILTIN]
    faces += [name for name, file in _FACES.items() if (FONT_DIR / file).is_file()]
    return faces


@lru_cache(maxsize=512)
def font(face: str, size: int) -> ImageFont.FreeTypeFont:
    size = max(5, int(size))
    file = _FACES.get(face)
    if file and (FONT_DIR / file).is_file():
        return ImageFont.truetype(str(FONT_DIR / file), size)
    return ImageFont.load_default(size=size)  # scalable (FreeType) in Pillow >= 10.1


def bold_of(face: str) -> str:
    bold = {
        "sans": "sans-bold",
        "serif": "serif-bold",
        "oblique": "sans-bold",
        "mono": "sans-bold",
    }.get(face, face)
    return bold if bold in available_faces() else face


@lru_cache(maxsize=512)
def line_height(face: str, size: int) -> int:
    ascent, descent = font(face, size).getmetrics()
    return ascent + descent


@lru_cache(maxsize=65536)
def text_width(face: str, size: int, text: str) -> float:
    return font(face, size).getlength(text)


def wrap(text: str, face: str, size: int, width: float) -> list[list[tuple[str, int]]]:
    """Greedy word wrap; returns lines of (word, index of the word in ``text.split()``)."""
    space = text_width(face, size, " ")
    lines: list[list[tuple[str, int]]] = []
    line: list[tuple[str, int]] = []
    used = 0.0
    for i, word in enumerate(text.split()):
        w = text_width(face, size, word)
        if line and used + space + w > width:
            lines.append(line)
            line, used = [], 0.0
        used += (space if line else 0.0) + w
        line.append((word, i))
    if line:
        lines.append(line)
    return lines


def union(boxes: list[PxBox]) -> PxBox:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


@dataclass
class Canvas:
    """A page being drawn, with the words drawn so far and their pixel boxes."""

    width: int
    height: int
    background: tuple[int, int, int] = (255, 255, 255)
    words: list[tuple[str, PxBox]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.image = Image.new("RGB", (self.width, self.height), self.background)
        self.draw = ImageDraw.Draw(self.image)

    def word(
        self, x: float, y: float, text: str, face: str, size: int, fill=(20, 20, 20)
    ) -> PxBox | None:
        """Draw one word with its top-left at (x, y); record and return its ink box."""
        f = font(face, size)
        xi, yi = round(x), round(y)
        l, t, r, b = f.getbbox(text)
        if r <= l or b <= t:
            return None
        self.draw.text((xi, yi), text, font=f, fill=fill)
        box = (max(0, xi + l), max(0, yi + t), min(self.width, xi + r), min(self.height, yi + b))
        if box[2] <= box[0] or box[3] <= box[1]:
            return None
        self.words.append((text, box))
        return box

    def line(
        self, x: float, y: float, text: str, face: str, size: int, fill=(20, 20, 20)
    ) -> list[PxBox]:
        """Draw a line of words; return the boxes of the words drawn."""
        space = text_width(face, size, " ")
        boxes = []
        for w in text.split():
            box = self.word(x, y, w, face, size, fill)
            if box:
                boxes.append(box)
            x += text_width(face, size, w) + space
        return boxes

    def normalise(self, box: PxBox) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = box
        return (
            round(max(0.0, x0 / self.width), 5),
            round(max(0.0, y0 / self.height), 5),
            round(min(1.0, x1 / self.width), 5),
            round(min(1.0, y1 / self.height), 5),
        )


# --- entity pictures ---------------------------------------------------------------------------


def _colour(rng: random.Random, light: float | None = None) -> tuple[int, int, int]:
    h, s = rng.random(), 0.45 + 0.5 * rng.random()
    v = light if light is not None else 0.35 + 0.6 * rng.random()
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def entity_picture(seed: str, size: tuple[int, int]) -> Image.Image:
    """A picture unique to ``seed``: a two-colour background with a seeded arrangement of shapes.

    Drawn in a resolution-independent way (shapes are placed in unit coordinates), so the
    same entity looks the same at any size; large coloured shapes survive crop, scale and
    colour jitter, which is what the image-query path needs.
    """
    rng = random.Random(f"entity-picture:{seed}")
    w, h = size
    img = Image.new("RGB", (w, h), _colour(rng, light=0.92))
    d = ImageDraw.Draw(img)
    band = _colour(rng, light=0.75)
    style = rng.randrange(3)
    if style == 0:  # horizontal bands
        for k in range(0, 6, 2):
            d.rectangle([0, k * h / 6, w, (k + 1) * h / 6], fill=band)
    elif style == 1:  # diagonal stripes
        step = max(4, w // 6)
        for k in range(-h, w, step * 2):
            d.polygon([(k, 0), (k + step, 0), (k + step + h, h), (k + h, h)], fill=band)
    else:  # lower half ground
        d.rectangle([0, h * 0.6, w, h], fill=band)
    for _ in range(rng.randint(3, 5)):
        kind = rng.choice(["circle", "rect", "triangle", "star", "ring"])
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        r = rng.uniform(0.1, 0.28) * min(w, h)
        fill = _colour(rng)
        if kind == "circle":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif kind == "ring":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(r / 3)))
        elif kind == "rect":
            d.rectangle([cx - r, cy - r * 0.7, cx + r, cy + r * 0.7], fill=fill)
        elif kind == "triangle":
            d.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
        else:
            pts = []
            for k in range(10):
                rad = r if k % 2 == 0 else r * 0.45
                ang = math.pi * k / 5 - math.pi / 2
                pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang)))
            d.polygon(pts, fill=fill)
    d.rectangle([0, 0, w - 1, h - 1], outline=(60, 60, 60))
    return img


def perturbed_query(seed: str, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """An image query for an entity: a random crop of its picture, rescaled and colour-jittered."""
    base = entity_picture(seed, (size[0] * 2, size[1] * 2))
    bw, bh = base.size
    frac = rng.uniform(0.65, 0.9)
    cw, ch = int(bw * frac), int(bh * frac)
    x0, y0 = rng.randint(0, bw - cw), rng.randint(0, bh - ch)
    crop = base.crop((x0, y0, x0 + cw, y0 + ch))
    scale = rng.uniform(0.5, 1.2)
    crop = crop.resize(
        (max(16, int(size[0] * scale)), max(16, int(size[1] * scale))), Image.Resampling.BILINEAR
    )
    crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.8, 1.2))
    crop = ImageEnhance.Contrast(crop).enhance(rng.uniform(0.8, 1.2))
    crop = ImageEnhance.Color(crop).enhance(rng.uniform(0.7, 1.3))
    return crop
