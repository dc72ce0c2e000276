"""A reader context: one region's text-layer words in reading order plus its refined visual tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from components.data.layout import group_lines, words_in_box
from components.reader.refine import cell_relevance, select_cells
from components.regions.extract import box_to_cells


@dataclass
class Context:
    page_id: str
    box: tuple[float, float, float, float]
    words: list[str]  # reading order: lines top to bottom, words left to right
    visual: np.ndarray  # [<=m, D] refined cell vectors
    is_gold: bool = False  # training/oracle only: this context holds the evidence
    word_lines: list[int] | None = None  # line index of each word (None: one line)

    def lines(self) -> list[list[int]]:
        """Word indices grouped by text line, in reading order."""
        if not self.word_lines:
            return [list(range(len(self.words)))] if self.words else []
        grouped: dict[int, list[int]] = {}
        for i, line in enumerate(self.word_lines):
            grouped.setdefault(line, []).append(i)
        return [grouped[k] for k in sorted(grouped)]

    @property
    def n_visual(self) -> int:
        return len(self.visual)


def reading_order_lines(words: Sequence[Sequence], box: Sequence[float]) -> list[list[str]]:
    """The text of the words ([text, x0, y0, x1, y1]) whose centre lies in ``box``, as lines in reading order."""
    return [[w[0] for w in line] for line in group_lines(words_in_box(words, box))]


def reading_order_words(words: Sequence[Sequence], box: Sequence[float]) -> list[str]:
    return [w for line in reading_order_lines(words, box) for w in line]


def make_context(
    page_id: str,
    box: Sequence[float],
    page_words: Sequence[Sequence],
    page_cells: np.ndarray,
    grid: int,
    m: int,
    mode: str = "refine",
    query_vec: np.ndarray | None = None,
    image_keep: np.ndarray | None = None,
    cell_mask: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    is_gold: bool = False,
) -> Context:
    """Build a context from a box on a page; ``cell_mask`` (bool [G, G]) overrides the box's cells."""
    mask = (cell_mask if cell_mask is not None else box_to_cells(box, grid)).reshape(-1)
    cells = np.asarray(page_cells, dtype=np.float32).reshape(grid * grid, -1)[mask]
    relevance = None
    if mode == "refine" and len(cells) > m > 0:
        relevance = cell_relevance(cells, query_vec, image_keep)
    visual = select_cells(cells, m, mode, relevance, rng)
    box = tuple(float(v) for v in box)
    lines = reading_order_lines(page_words, box)
    return Context(
        page_id,
        box,
        [w for line in lines for w in line],
        visual,
        is_gold,
        [i for i, line in enumerate(lines) for _ in line],
    )
