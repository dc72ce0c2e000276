"""Block recall: how many gold highlight boxes some layout block matches (IoU >= a threshold).

The retriever, region snapping and the reader all work on ``components.data.layout.page_blocks``;
a gold unit no block matches cannot be returned as a region however good the model is. This
measures that ceiling against gold units derived independently of those blocks
(``components.data.derived_questions``), overall and per question kind.

CLI: ``python -m components.evaluation.block_recall CORPUS_DIR [--questions FILE] [--json OUT]``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from components.data.layout import page_blocks
from components.data.schema import Page, Question
from components.evaluation.metrics import iou

IOU_THRESHOLD = 0.5


def _summary(best: list[float], threshold: float) -> dict:
    n = len(best)
    matched = sum(b >= threshold for b in best)
    return {
        "n": n,
        "matched": matched,
        "recall": round(matched / n, 4) if n else None,
        "mean_best_iou": round(sum(best) / n, 4) if n else None,
    }


def block_recall(
    pages: Iterable[Page],
    questions: Iterable[Question],
    threshold: float = IOU_THRESHOLD,
    misses: list[dict] | None = None,
) -> dict:
    """Share of questions whose gold box some block of its page matches at IoU >= ``threshold``.

    Questions without a box are counted under ``no_box``, ones whose page is not in ``pages``
    under ``page_missing``; neither enters the recall. ``misses``, when given, receives each
    unmatched question with its closest block, to look at.
    """
    by_id = {p.id: p for p in pages}
    blocks_of: dict[str, list] = {}
    best_all: list[float] = []
    best_by_type: dict[str, list[float]] = defaultdict(list)
    no_box = page_missing = 0
    for q in questions:
        if q.box is None:
            no_box += 1
            continue
        page = by_id.get(q.page_id or "")
        if page is None:
            page_missing += 1
            continue
        if page.id not in blocks_of:
            blocks_of[page.id] = page_blocks(page)
        scored = [(iou(b.box, q.box), b) for b in blocks_of[page.id]]
        best, block = max(scored, key=lambda sb: sb[0], default=(0.0, None))
        if misses is not None and best < threshold:
            misses.append(
                {
                    "id": q.id,
                    "type": q.type,
                    "doc": q.doc,
                    "page": q.page,
                    "box": list(q.box),
                    "best_iou": round(best, 4),
                    "best_block": list(block.box) if block else None,
                }
            )
        best_all.append(best)
        best_by_type[q.type or "untyped"].append(best)
    return {
        "threshold": threshold,
        "overall": _summary(best_all, threshold),
        "by_type": {k: _summary(v, threshold) for k, v in sorted(best_by_type.items())},
        "no_box": no_box,
        "page_missing": page_missing,
    }


def read_questions(path: Path) -> list[Question]:
    return [
        Question.model_validate_json(line)
        for line in Path(path).read_text("utf-8").splitlines()
        if line.strip()
    ]


def main(
    corpus: Annotated[
        Path, typer.Argument(help="corpus folder (pages.jsonl from `regionops import`)")
    ],
    questions: Annotated[
        Path | None, typer.Option(help="questions JSONL (default: the corpus's questions.jsonl)")
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="IoU a block needs to match a gold box")
    ] = IOU_THRESHOLD,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the result here")
    ] = None,
    misses_out: Annotated[
        Path | None,
        typer.Option(
            "--misses", help="write the unmatched questions (JSONL, with their closest block) here"
        ),
    ] = None,
) -> None:
    """Print block recall of a corpus's blocks against its questions' gold boxes."""
    pages = [
        Page.model_validate_json(line)
        for line in (corpus / "pages.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]
    misses: list[dict] = []
    result = block_recall(
        pages, read_questions(questions or corpus / "questions.jsonl"), threshold, misses
    )
    if misses_out is not None:
        misses_out.parent.mkdir(parents=True, exist_ok=True)
        misses_out.write_text("".join(json.dumps(m) + "\n" for m in misses), "utf-8")
    text = json.dumps(result, indent=2)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n", "utf-8")
    typer.echo(text)


if __name__ == "__main__":
    typer.run(main)
