"""``lexical_only``: regionops's lexical channel alone, with no learned model.

The served system fuses two channels (ADR 2): the retriever's dense cell scores and the lexical
channel (BM25+ page scores, and each question term's idf share mapped onto the layout blocks that
print it). ``lexical_only`` keeps the second: the page is the best BM25+ page, its heatmap is the
channel's term map at ``rag.lexical_scope`` with ``rag.region_term_weights``, and the region is
extracted and snapped to a layout block by the same ``regions.*`` settings as the served system.
What the learned model adds is the served system's score minus this one, on the same questions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from components.config import Params
from components.index.lexical import LexicalChannel
from components.regions.extract import extract_regions


class LexicalOnly:
    """Top page and top region of a question from the text layers of ``metas`` (PageMeta-like:
    ``page_id``, ``words``, ``blocks``) on a ``grid`` x ``grid`` cell map."""

    def __init__(self, metas: Sequence, grid: int, params: Params):
        self.metas, self.params = list(metas), params
        self.channel = LexicalChannel([m.words for m in self.metas], grid, [m.blocks for m in self.metas])

    @classmethod
    def of_index(cls, index, params: Params) -> LexicalOnly:
        """Over the pages an index holds (its text layers and layout blocks, not its vectors)."""
        return cls(index.metas, index.grid, params)

    def answer(self, question: str) -> tuple[str, tuple | None] | None:
        """(page id, top region box) of the best BM25+ page; None when no page shares a term with
        the question; a None box when the term map lights up no region on that page."""
        top = self.channel.top_pages(question, 1)
        if len(top) == 0:
            return None
        meta, rag = self.metas[int(top[0])], self.params.rag
        heat = self.channel.heatmaps(question, top[:1], rag.lexical_scope, rag.region_term_weights)[0]
        regions = extract_regions(heat, self.params.regions, meta.page_id, blocks=meta.blocks)
        return meta.page_id, (tuple(regions[0].box) if regions else None)

    def timed_answer(self, question: str) -> tuple[float, tuple[str, tuple | None] | None]:
        """Milliseconds from the question text to its top region, and ``answer``'s result."""
        t0 = time.perf_counter()
        top = self.answer(question)
        return (time.perf_counter() - t0) * 1e3, top
