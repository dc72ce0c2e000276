"""Highlight images: a page with its heatmap overlaid, the gold box in green, predicted regions in red,
and a caption with the question, the gold answer and the predicted answer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# A small perceptual ramp (dark blue → cyan → yellow → red) for the heatmap overlay.
_RAMP = np.array([[30, 30, 120], [0, 170, 200], [250, 220, 40], [220, 30, 30]], dtype=np.float32)


def colourise(heatmap: np.ndarray) -> np.ndarray:
    """[G, G] scores → [G, G, 3] uint8 colours, scaled to the page's own min..max."""
    h = np.asarray(heatmap, dtype=np.float32)
    span = float(h.max() - h.min())
    t = (h - h.min()) / span if span > 0 else np.zeros_like(h)
    pos = t * (len(_RAMP) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(_RAMP) - 2)
    frac = (pos - lo)[..., None]
    return (_RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac).astype(np.uint8)


def _px(box: Sequence[float], size: tuple[int, int]) -> list[float]:
    w, h = size
    return [box[0] * w, box[1] * h, box[2] * w, box[3] * h]


def draw_highlight(
    page: Image.Image,
    heatmap: np.ndarray | None,
    predicted: Sequence[Sequence[float]],
    gold: Sequence[float] | None,
    title: str = "",
    alpha: float = 0.4,
) -> Image.Image:
    img = page.convert("RGB")
    if heatmap is not None:
        overlay = Image.fromarray(colourise(heatmap)).resize(img.size, Image.Resampling.NEAREST)
        img = Image.blend(img, overlay, alpha)
    draw = ImageDraw.Draw(img)
    width = max(2, img.size[0] // 200)
    for rank, box in enumerate(predicted):
        draw.rectangle(_px(box, img.size), outline=(220, 0, 0), width=width if rank else width + 1)
    if gold is not None:
        draw.rectangle(_px(gold, img.size), outline=(0, 170, 0), width=width)
    if title:
        draw.rectangle([0, 0, img.size[0], 14], fill=(255, 255, 255))
        draw.text((2, 1), title[:120], fill=(0, 0, 0))
    return img


def with_caption(image: Image.Image, lines: Sequence[str], max_chars: int | None = None) -> Image.Image:
    """``image`` above a white strip with ``lines`` (question, gold answer, predicted answer), each
    wrapped to the image width, so a reviewer reads the case without opening any other file."""
    import textwrap

    width = image.size[0]
    chars = max_chars or max(20, width // 6)  # PIL's default bitmap font is ~6 px per character
    wrapped = [part for line in lines for part in (textwrap.wrap(line, chars) or [""])]
    strip = Image.new("RGB", (width, 6 + 12 * len(wrapped)), "white")
    draw = ImageDraw.Draw(strip)
    for i, line in enumerate(wrapped):
        draw.text((3, 3 + 12 * i), line, fill=(0, 0, 0))
    canvas = Image.new("RGB", (width, image.size[1] + strip.size[1]), "white")
    canvas.paste(image.convert("RGB"), (0, 0))
    canvas.paste(strip, (0, image.size[1]))
    return canvas


def save_highlight(path: Path, *args, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_highlight(*args, **kwargs).save(path, format="PNG")
    return path
