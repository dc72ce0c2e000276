"""One answerer for every evaluated system: the served answerer over a system's top regions.

The served model answers with its bundled span reader or, without one, with the text-layer
heuristic (``registry.answerer``, ADR 10). In evaluation every system (regionops, its ablations,
the block baselines, lexical_only, page_level) hands its ranked regions (page + box) to this
same answerer, which answers as the engine serves: the reader reads the top
``reader.contexts`` of them (text layer inside each box + the box's cell vectors), the
heuristic reads the top one. So the same boxes give the same answer whichever system found
them, and answer scores differ only by where the systems looked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.rag.answer import answer_from_region
from components.regions.extract import Region
from components.regions.grid import box_to_cells


class RegionAnswerer:
    """``answer(question, page_id, box, query_vec)`` by the reader when given, else the text layer."""

    def __init__(self, index, reader=None):
        self.index, self.reader = (
            index,
            reader,
        )  # reader: a components.reader.answerer.ReaderAnswerer

    @property
    def kind(self) -> str:
        return "reader" if self.reader is not None else "text"

    def answer(
        self,
        question: str,
        page_id: str | None,
        box: Sequence[float] | None,
        query_vec: np.ndarray | None = None,
        more: Sequence[tuple[str, Sequence[float]]] = (),
    ) -> str:
        """The answer read from ``box`` on ``page_id`` (and, by the reader, the next ranked regions
        ``more``); "" when there is no region or the page is not indexed.

        ``query_vec`` only steers the reader's visual-token refinement: pass the same vector for
        every system of one question (the question's query vector).
        """
        if page_id is None or box is None or not self.index.has_page(page_id):
            return ""
        if self.reader is None:
            return answer_from_region(question, self.index.meta(page_id).words, _rounded(box))
        ranked = [
            (page_id, box),
            *((p, b) for p, b in more if p is not None and self.index.has_page(p)),
        ]
        regions = []
        for pid, b in ranked[: self.reader.p.contexts]:
            b = _rounded(b)
            cells = box_to_cells(b, self.index.grid)
            regions.append(Region(pid, b, 0.0, int(cells.sum()), cells))
        contexts = self.reader.region_contexts(regions, query_vec, seed=0)
        return self.reader.answer(question, contexts).answer


def _rounded(box: Sequence[float]) -> tuple[float, ...]:
    # Boxes rounded as the engine reports them (6 decimals, sub-pixel), so equal reported boxes read alike.
    return tuple(round(float(v), 6) for v in box)
