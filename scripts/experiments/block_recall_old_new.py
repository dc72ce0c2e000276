"""Block recall of an imported corpus: its recorded PDF layout blocks vs the word grouping.

Usage (from the repository root): PYTHONPATH=. python scripts/experiments/block_recall_old_new.py CORPUS_DIR
[QUESTIONS_JSONL] [--json OUT]

"new" scores the blocks the importer recorded (``components.data.pdf_layout``); "old" scores
the same pages with their blocks removed, so ``page_blocks`` falls back to ``blocks_from_words``.
Both against the questions' gold boxes (``components.evaluation.block_recall``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from components.data.schema import Page
from components.evaluation.block_recall import block_recall, read_questions


def main(corpus: Path, questions: Path | None = None) -> dict:
    pages = [
        Page.model_validate_json(line)
        for line in (corpus / "pages.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]
    qs = read_questions(questions or corpus / "questions.jsonl")
    old_pages = [p.model_copy(update={"blocks": []}) for p in pages]
    new, old = block_recall(pages, qs), block_recall(old_pages, qs)
    rows = {"overall": (old["overall"], new["overall"])}
    rows.update({k: (old["by_type"][k], v) for k, v in new["by_type"].items()})
    for name, (o, n) in rows.items():
        print(
            f"{name:12s} n={n['n']:4d}  old recall={o['recall']}  new recall={n['recall']}"
            f"  (mean best IoU {o['mean_best_iou']} -> {n['mean_best_iou']})"
        )
    return {"old": old, "new": new}


if __name__ == "__main__":
    args = sys.argv[1:]
    out = None
    if "--json" in args:
        at = args.index("--json")
        out, args = Path(args[at + 1]), args[:at] + args[at + 2 :]
    result = main(Path(args[0]), Path(args[1]) if len(args) > 1 else None)
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
