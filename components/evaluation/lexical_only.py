"""``lexical_only``: the project's BM25+ lexical channel and block map with no learned model.

The bar every learned component must clear. Pages are ranked by the lexical channel's BM25+
page scores (``components.index.lexical.LexicalChannel.page_scores``); the region is picked on
the top page's lexical heatmap (term matches per cell / per layout block, at ``rag.lexical_scope``
with ``rag.region_term_weights``, exactly the lexical half of regionops' fused map) by
``components.regions.extract.extract_regions`` with the same region settings and the same
blocks, so it snaps exactly as regionops snaps; under ``regions.rule: text_blocks`` it, like
regionops, takes the top page's best BM25+ block. No dense vector is read: two indexes built by
different retrievers over the same pages give the same results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from components.config import Params
from components.index.lexical import LexicalChannel
from components.regions.extract import extract_regions


@dataclass
class LexicalResult:
    ranking: list[
        str
    ]  # pages with lexical evidence, best first (empty: no question term is printed anywhere)
    top_page: str | None
    top_box: tuple | None


class LexicalOnly:
    """BM25+ page ranking and lexical-heatmap regions over pages' text layers and blocks."""

    name = "lexical_only"

    def __init__(
        self,
        channel: LexicalChannel,
        page_ids: Sequence[str],
        blocks: Sequence[Sequence],
        params: Params,
    ):
        if len(channel) != len(page_ids) or len(blocks) != len(page_ids):
            raise ValueError(
                f"lexical_only needs one entry per page ({len(channel)} channel pages, "
                f"{len(page_ids)} ids, {len(blocks)} block lists)"
            )
        self.channel, self.page_ids, self.blocks = channel, list(page_ids), list(blocks)
        self._pos = {pid: i for i, pid in enumerate(self.page_ids)}
        self.params = params

    @classmethod
    def from_index(cls, index, params: Params) -> LexicalOnly:
        """Over the pages an index holds: its stored text layers and blocks, and its lexical channel
        (derived from those text layers alone, never from the cell vectors)."""
        ids = index.page_ids
        return cls(index.lexical, ids, [index.meta(pid).blocks for pid in ids], params)

    def has_page(self, page_id: str | None) -> bool:
        return page_id in self._pos

    def region_box(self, question: str, page_id: str) -> tuple | None:
        """The top region's box on ``page_id``'s lexical heatmap, snapped as regionops snaps."""
        pos = self._pos[page_id]
        rag = self.params.rag
        heat = self.channel.heatmaps(
            question, np.array([pos]), rag.lexical_scope, rag.region_term_weights
        )[0]
        regions = extract_regions(
            heat,
            self.params.regions,
            page_id,
            blocks=self.blocks[pos],
            text_scores=self.channel.block_scores(question, pos)
            if self.params.regions.rule == "text_blocks"
            else None,
        )
        return tuple(regions[0].box) if regions else None

    def search(self, question: str) -> LexicalResult:
        scores = self.channel.page_scores(question)
        if not len(scores) or float(scores.max()) <= 0.0:
            return LexicalResult([], None, None)
        order = np.argsort(-scores, kind="stable")
        ranking = [self.page_ids[i] for i in order if scores[i] > 0]
        top = ranking[0]
        return LexicalResult(ranking, top, self.region_box(question, top))
