"""Two-stage retrieval for questions with a query image (RORA-VLM, docs/design.md §5).

1. The query image retrieves the entity's picture by image similarity (no text channel: "this
   building" names nothing): by default against the picture descriptors stored in the index
   (components.index.pictures, ADR 8); with ``rag.image_stage_one: pixels``, or on an index saved
   before pictures were stored, through the retriever's pixel path (dense heatmaps).
2. The entity name is read from the text layer: the first line of the best region, or, when the
   region holds no words (a picture), the first line just below it (where captions and card
   titles sit), within the region's columns.
3. "this <kind>" in the question is replaced by that name.
4. The rewritten question runs the normal text-query region retrieval (dense + lexical).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from components.data.layout import group_lines, words_in_box
from components.text import rewrite_question


def entity_name_near(words: Sequence[Sequence], box: Sequence[float]) -> str:
    """The first text line of ``box``, or the first line below it overlapping its columns; "" if none."""
    inside = group_lines(words_in_box(words, box))
    if inside:  # the whole printed line, though the region may cover only part of it
        return " ".join(w[0] for w in _whole_line(words, inside[0]))
    x0, _, x1, y1 = box
    below = [w for w in words if w[2] >= y1 - 1e-6 and min(w[3], x1) - max(w[1], x0) > 0]
    lines = group_lines(below)
    return " ".join(w[0] for w in lines[0]) if lines else ""


def _whole_line(
    words: Sequence[Sequence], seed: list[Sequence], max_gap: float = 0.02
) -> list[Sequence]:
    """``seed`` words grown along their line by neighbours at most ``max_gap`` apart (one column)."""
    top, bottom = min(w[2] for w in seed), max(w[4] for w in seed)
    row = sorted((w for w in words if top <= (w[2] + w[4]) / 2 <= bottom), key=lambda w: w[1])
    ids = {id(w) for w in seed}
    idx = [i for i, w in enumerate(row) if id(w) in ids]
    if not idx:
        return seed
    lo, hi = min(idx), max(idx)
    while lo > 0 and row[lo][1] - row[lo - 1][3] <= max_gap:
        lo -= 1
    while hi < len(row) - 1 and row[hi + 1][1] - row[hi][3] <= max_gap:
        hi += 1
    return row[lo : hi + 1]


@dataclass
class TwoStageTrace:
    entity: str  # name read in stage 1 ("" when stage 1 found nothing)
    entity_page: str | None
    entity_box: tuple[float, float, float, float] | None
    rewritten: str
    method: str = "pixels"  # how stage 1 matched the image: "pictures" or "pixels"
    score: float | None = None  # the best match's similarity


def stage_one(engine, image, question: str) -> TwoStageTrace:
    """Image -> entity region -> entity name -> rewritten question."""
    if engine.params.rag.image_stage_one == "pictures" and len(engine.index.pictures):
        return _stage_one_pictures(engine.index, image, question)
    return _stage_one_pixels(engine, image, question)


def _stage_one_pictures(index, image, question: str) -> TwoStageTrace:
    """The best-matching stored picture; the name is the caption line below it (or its own text)."""
    matches = index.pictures.search(image, 1)
    if not matches:
        return TwoStageTrace("", None, None, question, "pictures")
    best = matches[0]
    name = entity_name_near(index.meta(best.page_id).words, best.box)
    return TwoStageTrace(
        name,
        best.page_id,
        tuple(best.box),
        rewrite_question(question, name),
        "pictures",
        best.score,
    )


def _stage_one_pixels(engine, image, question: str) -> TwoStageTrace:
    """The retriever's pooled pixel vector against the index's cells (no picture descriptors needed)."""
    from components.model.encode import encode_image_queries

    image_vec = encode_image_queries(engine.retriever, [image])[0]
    hits = engine.index.search(
        image_vec, engine.params.index.candidates, candidates=engine.params.index.candidates
    )  # image only: no lexical channel
    regions = engine.regions_for(hits, 1)
    if not regions:
        return TwoStageTrace("", None, None, question, "pixels")
    best = regions[0]
    name = entity_name_near(engine.index.meta(best.page_id).words, best.box)
    return TwoStageTrace(
        name,
        best.page_id,
        tuple(best.box),
        rewrite_question(question, name),
        "pixels",
        float(best.score),
    )


def image_query_cells(retriever, image) -> np.ndarray:
    """[G*G, D] cell vectors of a query image through the pixel path (no text layer)."""
    import torch

    from components.model.featurize import image_to_pixels

    retriever.eval()
    pixels = image_to_pixels(image, retriever.params.image_size).unsqueeze(0)
    n = retriever.grid * retriever.grid
    empty = torch.zeros(1, n, 1, dtype=torch.long)
    no_text = torch.zeros(1, n, retriever.text.config.hidden_size) if retriever.contextual else None
    with torch.inference_mode():
        return retriever.encode_cells(pixels, empty, no_text)[0].float().numpy()
