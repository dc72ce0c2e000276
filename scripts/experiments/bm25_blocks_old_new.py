"""BM25 over layout blocks on an imported corpus: recorded PDF blocks vs the word grouping.

Usage (from the repository root): PYTHONPATH=. python scripts/experiments/bm25_blocks_old_new.py CORPUS_DIR

For every labelled question (gold page and box): page hit@1 (the best block's page is the gold
page) and region hit@1 (also IoU(best block, gold box) >= 0.5), with ``BM25Blocks`` over all
pages' blocks (``components.evaluation.baselines``), once with the recorded blocks ("new") and
once with ``blocks_from_words`` ("old").
"""

from __future__ import annotations

import sys
from pathlib import Path

from components.data.layout import page_blocks
from components.data.schema import Page
from components.evaluation.baselines import BM25Blocks
from components.evaluation.block_recall import read_questions
from components.evaluation.metrics import iou


def hits(pages: list[Page], questions) -> tuple[float, float, int]:
    bm25 = BM25Blocks([b for p in pages for b in page_blocks(p)])
    page_hits = region_hits = n = 0
    for q in questions:
        if q.box is None or q.page_id is None:
            continue
        n += 1
        top = bm25.search(q.question, k=1)
        if top and top[0].page_id == q.page_id:
            page_hits += 1
            region_hits += iou(top[0].block.box, q.box) >= 0.5
    return page_hits / n, region_hits / n, n


def main(corpus: Path) -> None:
    pages = [
        Page.model_validate_json(line)
        for line in (corpus / "pages.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]
    questions = read_questions(corpus / "questions.jsonl")
    for name, subset in (
        ("old", [p.model_copy(update={"blocks": []}) for p in pages]),
        ("new", pages),
    ):
        page_hit, region_hit, n = hits(subset, questions)
        print(f"{name}: n={n} page hit@1={page_hit:.4f} region hit@1={region_hit:.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
