"""Block recall: the share of gold evidence boxes some layout block matches at IoU >= ``iou_hit``.

Every system's region ends as a layout block (the block baselines retrieve blocks; regionops and
lexical_only snap to them, ``regions.snap: block``), so a gold box no block matches cannot be hit
by any of them: block recall is the ceiling of region hit@1 on a corpus. The blocks are
``components.data.layout.page_blocks``, the ones every system uses.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from components.evaluation.metrics import iou


def _boxes_by_page(corpus_pages_blocks_or_corpus, page_ids: set[str]) -> Mapping[str, Sequence]:
    if isinstance(corpus_pages_blocks_or_corpus, Mapping):
        return corpus_pages_blocks_or_corpus
    from components.data.layout import page_blocks

    corpus = corpus_pages_blocks_or_corpus
    return {pid: [b.box for b in page_blocks(corpus.page(pid))] for pid in page_ids if corpus.has_page(pid)}


def block_recall(corpus_pages_blocks_or_corpus, questions, iou_hit: float) -> dict:
    """``{"overall": share or None, "by_type": {type: {"recall", "n"}}, "n": boxed questions}``.

    The first argument is a ``Corpus`` or a mapping page id -> block boxes ([x0, y0, x1, y1]).
    Only questions with a gold page and box count; a gold page with no blocks (visual-only) or
    missing from the corpus counts as not matched.
    """
    boxed = [q for q in questions if q.page_id is not None and q.box is not None]
    blocks = _boxes_by_page(corpus_pages_blocks_or_corpus, {q.page_id for q in boxed})
    matched: dict[str, list[float]] = defaultdict(list)
    everything: list[float] = []
    for q in boxed:
        hit = float(any(iou(tuple(b), tuple(q.box)) >= iou_hit for b in blocks.get(q.page_id, ())))
        matched[q.type or "untyped"].append(hit)
        everything.append(hit)
    return {
        "overall": sum(everything) / len(everything) if everything else None,
        "by_type": {t: {"recall": sum(v) / len(v), "n": len(v)} for t, v in sorted(matched.items())},
        "n": len(everything),
        "iou_hit": iou_hit,
    }
