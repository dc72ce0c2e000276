#!/usr/bin/env python
"""Check derived gold boxes against the imported text layer: per question type, the share of
questions whose answer's words (consecutive words of the page's pdfium text layer, as
``regionops import`` wrote them) lie inside the gold box.

    python scripts/experiments/gold_answer_check.py CORPUS_DIR    # a corpus from `regionops import`

A low share means the gold unit misses its own evidence (a unit cut too small or misplaced).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

# this checkout's components, not an installed copy's
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.data.gold_units import clean

SLACK = 0.003  # normalised: rounding of word and unit boxes


def answer_inside(words: list[dict], answer: str, box: list[float]) -> bool:
    tokens = [clean(t).casefold() for t in answer.split()]
    texts = [clean(w["text"]).casefold() for w in words]
    x0, y0, x1, y1 = box

    def inside(w: dict) -> bool:
        b = w["box"]
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        return x0 - SLACK <= cx <= x1 + SLACK and y0 - SLACK <= cy <= y1 + SLACK

    for i in range(len(texts) - len(tokens) + 1):
        if all(tok in texts[i + k] for k, tok in enumerate(tokens)) and all(
            inside(words[i + k]) for k in range(len(tokens))
        ):
            return True
    return False


def main(corpus: Path) -> None:
    pages = {}
    for line in (corpus / "pages.jsonl").read_text("utf-8").splitlines():
        p = json.loads(line)
        pages[f"{p['doc']}#{p['page']}"] = p["words"]
    held, total = Counter(), Counter()
    for line in (corpus / "questions.jsonl").read_text("utf-8").splitlines():
        q = json.loads(line)
        if q.get("box") is None or not q.get("answers"):
            continue
        total[q["type"]] += 1
        held[q["type"]] += answer_inside(
            pages[f"{q['doc']}#{q['page']}"], q["answers"][0], q["box"]
        )
    print(
        json.dumps(
            {
                t: {"n": n, "held": held[t], "share": round(held[t] / n, 4)}
                for t, n in sorted(total.items())
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
