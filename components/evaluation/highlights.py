"""Highlight images: a page with its heatmap overlaid, the gold box in green, predicted regions in red,
a caption with the question, the gold answer and the predicted answer; and the evaluation's fixed
seeded sample of them (``highlights/`` beside ``metrics.json``)."""

from __future__ import annotations

import json
import random
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


def with_caption(
    image: Image.Image, lines: Sequence[str], max_chars: int | None = None
) -> Image.Image:
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


def highlight_sample(records: list[dict], n: int, seed: int) -> list[dict]:
    """A fixed seeded sample of the boxed questions, drawn by question id alone, never by outcome.

    Every run over the same evaluation set draws the same questions, so two runs compare image
    by image; each image is then labelled hit or miss by this run's own outcome.
    """
    boxed = sorted(
        (r for r in records if r["scores"]["regionops"]["region_hit1"] is not None),
        key=lambda r: _question_id(r),
    )
    return random.Random(seed).sample(boxed, min(n, len(boxed)))


def _question_id(record: dict) -> str:
    question = record.get("question")
    return str(getattr(question, "id", None) or record.get("id"))


def write_highlights(sample: list[dict], corpus, engine, folder: Path) -> list[Path]:
    """One PNG per sampled question (predicted and gold page side by side) and ``sample.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    index: list[dict] = []  # which question each image shows and whether this run hit it
    for rec in sample:
        q, out = rec["question"], rec["outputs"]["regionops"]
        result, qv = out.extra["result"], out.extra["query"]
        kind = "hit" if rec["scores"]["regionops"]["region_hit1"] == 1.0 else "miss"
        panels = []
        pages = list(dict.fromkeys(p for p in (result.page_id, q.page_id) if p is not None))
        for pid in pages:
            if not corpus.has_page(pid):
                continue
            heat = result.heatmaps.get(pid)  # the fused map the ranking used
            if heat is None:
                heat = engine.index.heatmap(
                    pid,
                    engine.index_query(qv, result.question),
                    result.question,
                    engine.params.rag.lexical_weight,
                    engine.params.rag.lexical_scope,
                    engine.params.rag.region_term_weights,
                    engine.params.region_lexical_weight(),
                )
            boxes = [r["box"] for r in result.regions if r["page_id"] == pid]
            label = "gold" if pid == q.page_id else "predicted"
            panels.append(
                draw_highlight(
                    corpus.load_image(corpus.page(pid)),
                    heat,
                    boxes,
                    q.box if pid == q.page_id else None,
                    f"{kind.upper()} {q.id} {label}: {pid}",
                )
            )
        if not panels:
            continue
        height = max(p.size[1] for p in panels)
        canvas = Image.new("RGB", (sum(p.size[0] for p in panels), height), "white")
        x = 0
        for panel in panels:
            canvas.paste(panel, (x, 0))
            x += panel.size[0]
        canvas = with_caption(
            canvas,
            [
                f"Q ({q.type or 'untyped'}): {q.question}",
                f"gold: {' | '.join(q.answers) or '(no answer)'}  on {q.page_id}",
                f"predicted: {result.answer or '(none)'}  on {result.page_id}  [{kind}]",
            ],
        )
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in q.id)[:60]
        # Named by question only: the same file name in two runs shows the same question.
        path = folder / f"{safe}.png"
        canvas.save(path, format="PNG")
        paths.append(path)
        index.append(
            {
                "file": path.name,
                "question_id": q.id,
                "type": q.type,
                "outcome": kind,
                "gold_page": q.page_id,
                "predicted_page": result.page_id,
            }
        )
    (folder / "sample.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return paths
