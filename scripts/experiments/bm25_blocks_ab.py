"""BM25 over the layout blocks of two imported corpora of the same documents, on question sets.

Usage (from the repository root):

    PYTHONPATH=. python scripts/experiments/bm25_blocks_ab.py CORPUS_A CORPUS_B QUESTIONS [QUESTIONS ...]

Each corpus is an import (``pages.jsonl`` with recorded blocks) of the same documents, e.g. by
two checkouts' layout code; for every questions file, page hit@1 and region hit@1 of
``BM25Blocks`` over each corpus's blocks (``scripts/experiments/bm25_blocks_old_new.hits``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from components.data.schema import Page
from components.evaluation.block_recall import read_questions
from scripts.experiments.bm25_blocks_old_new import hits


def pages_of(corpus: Path) -> list[Page]:
    return [
        Page.model_validate_json(line)
        for line in (corpus / "pages.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]


def main(a: Path, b: Path, question_files: list[Path]) -> None:
    corpora = {a.name: pages_of(a), b.name: pages_of(b)}
    for qfile in question_files:
        questions = read_questions(qfile)
        for name, pages in corpora.items():
            page_hit, region_hit, n = hits(pages, questions)
            print(
                f"{qfile}  blocks={name}: n={n} page hit@1={page_hit:.4f} region hit@1={region_hit:.4f}"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
