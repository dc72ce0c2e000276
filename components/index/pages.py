"""What the index keeps per page besides its vectors (``PageMeta``), and what a search returns (``PageHit``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PageMeta:
    page_id: str
    doc: str
    collection: str = "default"
    tags: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0
    # Text layer as [text, x0, y0, x1, y1] rows so answers and region text need no corpus at serve time.
    words: list[list] = field(default_factory=list)
    split: str | None = None
    # Layout blocks as [x0, y0, x1, y1] rows: what region boxes snap to (components.regions.snap).
    blocks: list[list] = field(default_factory=list)
    # The blocks' kinds in the same order (title, page_header, ...); empty in an index saved
    # before they were stored, where no block is taken for the page's title (ADR 35).
    block_kinds: list[str] = field(default_factory=list)
    # Pictures with their match descriptors (components.index.pictures), for image queries; an
    # index saved before they were stored has none and stage 1 falls back to the pixel path.
    pictures: list[dict] = field(default_factory=list)

    @classmethod
    def from_page(cls, page, image=None) -> PageMeta:
        """Metadata of a corpus page; with its rendered ``image`` the page's pictures are described too."""
        from components.data.layout import page_blocks
        from components.index.pictures import page_pictures

        words = [[w.text, *map(float, w.box)] for w in page.words]
        blocks = page_blocks(page)
        return cls(
            page_id=page.id,
            doc=page.doc,
            collection=page.collection,
            tags=list(page.tags),
            width=page.width,
            height=page.height,
            words=words,
            split=page.split,
            blocks=[[float(v) for v in b.box] for b in blocks],
            block_kinds=[b.kind for b in blocks],
            pictures=page_pictures(image, words) if image is not None else [],
        )

    @classmethod
    def coerce(cls, item: Any) -> PageMeta:
        if isinstance(item, PageMeta):
            return item
        if isinstance(item, dict):
            return cls(**item)
        if hasattr(item, "words") and hasattr(item, "doc"):
            return cls.from_page(item)
        raise TypeError(f"cannot make page metadata from {type(item).__name__}")


@dataclass
class PageHit:
    page_id: str
    score: float
    heatmap: np.ndarray  # [G, G] exact cell scores of the query on this page
