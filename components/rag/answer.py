"""Region-text answerer: an extractive heuristic over a region's text layer.

This is the stop-gap answerer, to be replaced by the trained span reader of issue 7. It:
  1. takes the words whose centre lies inside the region box, grouped into lines in reading
     order (top-to-bottom, then left-to-right);
  2. if a "key: value" line's key shares a word stem with the question, answers its value;
  3. else scores value-like words (numbers, years, codes) not already in the question by how
     close they sit to the question's words: same line (fewer words between = better) or same
     column under a matching header word (tables); the expected type (year for "when", number
     for "how many") filters the candidates;
  4. else falls back to the best-overlapping line minus the question's words.
It has no notion of "no answer" beyond an empty region; ANLS/EM figures it produces measure
retrieval + this heuristic, not a reader.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from components.data.layout import group_lines, words_in_box
from components.text import content_tokens, stem


def region_text(words: Sequence[Sequence], box: Sequence[float]) -> str:
    return "\n".join(" ".join(w[0] for w in line) for line in group_lines(words_in_box(words, box)))


def answer_from_text_lines(question: str, lines: list[str]) -> str:
    """The best line's answer span (see module doc); "" when there is no text."""
    lines = [line for line in lines if line.strip()]
    if not lines:
        return ""
    q = content_tokens(question)
    overlaps = [len(q & content_tokens(line)) for line in lines]
    best = lines[max(range(len(lines)), key=lambda i: (overlaps[i], -i))]
    if ":" in best:
        key, _, value = best.partition(":")
        if value.strip() and (not q or q & content_tokens(key) or not content_tokens(key)):
            return value.strip()
    rest = [t for t in best.split() if t.lower().strip(".,:;") not in q]
    return " ".join(rest).strip(" :;") or best.strip()


YEAR = re.compile(r"^(1[5-9]|20)\d\d$")
NUMBER = re.compile(r"^[$€£]?-?\d[\d,.]*%?$")


def _expected(question: str):
    q = question.lower()
    if q.startswith("when") or "what year" in q or "which year" in q or "in which year" in q:
        return lambda t: bool(YEAR.match(t.strip(".,")))
    if re.search(r"\bhow (many|much)\b|\bwhat (number|amount|income|revenue|value)\b", q):
        return lambda t: bool(NUMBER.match(t.strip(".,")))
    return lambda t: any(ch.isdigit() for ch in t)


def answer_from_words(question: str, words: Sequence[Sequence]) -> str:
    """Answer from [text, x0, y0, x1, y1] words (see the module doc for the steps)."""
    lines = group_lines(words)
    if not lines:
        return ""
    q_stems = {stem(t) for t in content_tokens(question)}
    # 2. key: value lines whose key matches the question.
    best_kv, best_overlap = None, 0
    for line in lines:
        text = " ".join(w[0] for w in line)
        key, sep, value = text.partition(":")
        if sep and value.strip():
            overlap = len(q_stems & {stem(t) for t in content_tokens(key)})
            if overlap > best_overlap:
                best_kv, best_overlap = value.strip(), overlap
    if best_kv is not None:
        return best_kv
    # 3. value-like words near the question's words.
    matched = [
        (li, wi, w)
        for li, line in enumerate(lines)
        for wi, w in enumerate(line)
        if stem(w[0]) in q_stems
    ]
    fits = _expected(question)
    best, best_score = None, 0.0
    for li, line in enumerate(lines):
        for wi, w in enumerate(line):
            if stem(w[0]) in q_stems or not fits(w[0]):
                continue
            score = 0.0
            for mli, mwi, m in matched:
                if mli == li:
                    score += 1.0 / (1 + abs(mwi - wi))
                elif min(w[3], m[3]) - max(w[1], m[1]) > 0:  # same column as a matching word
                    score += 1.0
            if score > best_score:
                best, best_score = w[0], score
    if best is None:  # nothing near the question's words: the first value of the expected type
        best = next(
            (w[0] for line in lines for w in line if stem(w[0]) not in q_stems and fits(w[0])), None
        )
    if best is not None:
        return best.strip(",;:")
    # 4. fallback: the best line minus the question's words.
    return answer_from_text_lines(question, [" ".join(w[0] for w in line) for line in lines])


def answer_from_region(question: str, words: Sequence[Sequence], box: Sequence[float]) -> str:
    return answer_from_words(question, words_in_box(words, box))
