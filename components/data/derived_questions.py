"""Questions derived from a real PDF's text layer and layout, with gold highlight boxes.

Deterministic for a seed. Kinds (the record's ``type``):

- ``cloze``: a sentence of a paragraph with its most salient term blanked; answer the term;
  gold unit the paragraph.
- ``definition``: the term of a definition/option-list entry, asked from its description;
  gold unit the whole entry (term + description).
- ``caption``: "Which figure/table shows <caption words>?"; answer "Figure N" / "Table N";
  gold unit the figure or table area united with its caption.
- ``heading``: which section title covers a sentence of the paragraph under it; answer the
  title; gold unit the heading.

Units come from ``components.data.gold_units`` (pdfminer.six), never from the project's own
block grouping, so block recall against them is a fair check. Records follow the questions
JSONL of docs/data-contract.md (``components.data.schema.Question``). A candidate that would make
a degenerate question is skipped and counted under ``"<kind>: <reason>"``; nothing is dropped
silently.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from components.data.gold_units import PageUnits, Unit, clean, page_units
from components.text import ENGLISH_FUNCTION_WORDS

KINDS = ("cloze", "definition", "caption", "heading")
SENTENCE_WORDS = (
    8,
    40,
)  # a cloze/heading sentence: long enough to pin the page, short enough to read
TERM_MAX_WORDS = 6
SNIPPET_WORDS = 20  # how much of a description or caption the question quotes
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*[A-Za-z0-9]")
_COMMENT = re.compile(r"/\*|\*/|(?<!:)//")  # a program listing's comment: no definition list
_SECTION_NUMBER = re.compile(r"^(?:chapter\s+)?[\dA-Z]?[\d.]*\d\.?\s+", re.IGNORECASE)


@dataclass
class Derivation:
    questions: list[dict] = field(default_factory=list)
    skips: Counter = field(default_factory=Counter)  # "<kind>: <reason>" -> count


def squash(text: str) -> str:
    """Case and whitespace folded away: how an answer is looked up in a text layer."""
    return re.sub(r"\s+", "", clean(text)).casefold()


def text_layer(pdf_path: str | Path, pages: Iterable[int]) -> dict[int, str]:
    """The text layer the importer reads (pdfium), per 0-based page."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(pdf_path))
    try:
        out = {}
        for i in pages:
            page = pdf[i]
            textpage = page.get_textpage()
            out[i] = clean(textpage.get_text_range())
            textpage.close()
            page.close()
        return out
    finally:
        pdf.close()


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _prose(sentence: str) -> bool:
    """Mostly words: code, formulas and tables of numbers make no fill-in-the-blank."""
    tokens = sentence.split()
    lo, hi = SENTENCE_WORDS
    wordy = sum(bool(re.fullmatch(r"[A-Za-z][a-z'’\-]*[,.;:]?", t)) for t in tokens)
    return lo <= len(tokens) <= hi and wordy >= 0.7 * len(tokens)


def _wordy(text: str) -> bool:
    tokens = text.split()
    return sum(bool(re.fullmatch(r"[A-Za-z][a-z'’\-]*[,.;:]?", t)) for t in tokens) >= 0.6 * len(
        tokens
    )


def salient_term(sentence: str, frequency: Counter) -> str | None:
    """The sentence's rarest content word on the page (ties: the longer, then the first);
    it must occur once in the sentence so the blank is unambiguous."""
    # whitespace words with outer punctuation stripped: a piece of a URL or path is no term
    tokens = [w.strip(".,;:!?()[]{}\"'‘’“”") for w in sentence.split()]
    counts = Counter(t.casefold() for t in tokens)
    best, best_key = None, None
    for pos, tok in enumerate(tokens):
        low = tok.casefold()
        if (
            pos == 0
            or len(tok) < 4
            or low in ENGLISH_FUNCTION_WORDS
            or counts[low] > 1
            or not _TOKEN.fullmatch(tok)
        ):
            continue
        key = (frequency[low], -len(tok), pos)
        if best_key is None or key < best_key:
            best, best_key = tok, key
    return best


def ruled(rect, graphics) -> bool:
    """A table cell: thin horizontal rules just above and just below, across the text."""
    x0, top, x1, bottom = rect
    height = max(bottom - top, 1.0)
    rules = [
        g for g in graphics if g[3] - g[1] < 2.0 and min(g[2], x1) - max(g[0], x0) > 0.5 * (x1 - x0)
    ]
    above = any(top - 0.6 * height - 6 <= g[3] <= top + 1 for g in rules)
    below = any(bottom - 1 <= g[1] <= bottom + 0.6 * height + 6 for g in rules)
    return above and below


def _snippet(text: str, n: int = SNIPPET_WORDS) -> str:
    words = text.split()
    return " ".join(words[:n]) + (" ..." if len(words) > n else "")


def _candidates(pu: PageUnits, layer: str) -> list[tuple[str, Unit, dict] | tuple[str, str]]:
    """Every question a page offers, or (kind, skip reason)."""
    frequency = Counter(t.casefold() for t in _TOKEN.findall(layer))
    out: list = []
    for idx, unit in enumerate(pu.units):
        if unit.kind in ("paragraph", "entry") and ruled(unit.rect, pu.graphics):
            out.append(
                ("cloze" if unit.kind == "paragraph" else "definition", "inside a ruled table")
            )
            continue
        if unit.kind == "paragraph":
            good = [s for s in sentences(unit.text) if _prose(s)]
            if not good:
                out.append(("cloze", "no prose sentence of 8-40 words"))
                continue
            sentence = good[0] if len(good) == 1 else good[len(good) // 2]
            term = salient_term(sentence, frequency)
            if term is None:
                out.append(("cloze", "no salient term"))
                continue
            blanked = re.sub(rf"(?<![\w-]){re.escape(term)}(?![\w-])", "___", sentence, count=1)
            out.append(
                (
                    "cloze",
                    unit,
                    {
                        "question": f"Fill in the blank: {blanked}",
                        "answer": term,
                        "key": sentence,
                        "idx": idx,
                    },
                )
            )
        elif unit.kind == "entry":
            term = (unit.term or "").strip(" :.")
            if not term:
                out.append(("definition", "no term found"))
                continue
            if len(term.split()) > TERM_MAX_WORDS or len(term) > 50:
                out.append(("definition", "term too long"))
                continue
            description = unit.text[len(unit.term or "") :].strip(" :-\u2013\u2014")
            if _COMMENT.search(unit.text) or re.search(r"[=;]", term):
                out.append(("definition", "code, not a definition"))
                continue
            if len(description.split()) < 4:
                out.append(("definition", "description under 4 words"))
                continue
            noun = "option" if term.startswith("-") else "term"
            quote = _snippet(sentences(description)[0])
            if not _wordy(quote):
                out.append(("definition", "description is not prose"))
                continue
            out.append(
                (
                    "definition",
                    unit,
                    {
                        "question": f'Which {noun} is described as "{quote}"?',
                        "answer": term,
                        "key": description,
                        "idx": idx,
                    },
                )
            )
        elif unit.kind == "caption":
            if unit.area is None:
                out.append(("caption", "no figure/table area next to the caption"))
                continue
            words = re.sub(r"^(Figure|Fig\.|Table)\s*[\d.]+\s*[:.]\s*", "", unit.text).rstrip(" .")
            if len(words.split()) < 3:
                out.append(("caption", "caption under 3 words"))
                continue
            what = "table" if unit.term.startswith("Table") else "figure"
            out.append(
                (
                    "caption",
                    unit,
                    {
                        "question": f"Which {what} shows {_snippet(words, 15)}?",
                        "answer": unit.term,
                        "key": unit.text,
                        "idx": idx,
                    },
                )
            )
        elif unit.kind == "heading":
            title = _SECTION_NUMBER.sub("", unit.text).strip()
            if not 2 <= len(title.split()) <= 10:
                out.append(("heading", "title not 2-10 words"))
                continue
            after = pu.units[idx + 1] if idx + 1 < len(pu.units) else None
            body = (
                [s for s in sentences(after.text) if _prose(s)]
                if after and after.kind == "paragraph"
                else []
            )
            if not body:
                out.append(("heading", "no prose paragraph under the heading"))
                continue
            out.append(
                (
                    "heading",
                    unit,
                    {
                        "question": f'Which section covers "{_snippet(body[0], 25)}"?',
                        "answer": title,
                        "key": body[0],
                        "idx": idx,
                    },
                )
            )
    return out


def _labelled(qid: str, seed: int, fraction: float) -> bool:
    u = int(hashlib.sha256(f"{seed}:{qid}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return u < fraction


def derive_page(
    pu: PageUnits,
    layer: str,
    doc: str,
    seed: int,
    labelled_fraction: float,
    max_per_page: int,
    seen: set[str],
    result: Derivation,
) -> None:
    """Add one page's questions to ``result`` (``seen``: normalised sentences already asked)."""
    picked: dict[str, list[tuple[Unit, dict]]] = {k: [] for k in KINDS}
    layer_key = squash(layer)
    for cand in _candidates(pu, layer):
        if len(cand) == 2:
            result.skips[f"{cand[0]}: {cand[1]}"] += 1
            continue
        kind, unit, q = cand
        answer = q["answer"]
        if squash(answer) not in layer_key:
            reason = "answer not on the text layer"
        elif re.search(rf"(?<!\w){re.escape(answer.casefold())}(?!\w)", q["question"].casefold()):
            reason = "answer in the question"
        elif squash(q["key"]) in seen:
            reason = "duplicate evidence (seen on another page)"
        else:
            box = pu.norm(unit.rect)
            if not (box[0] < box[2] and box[1] < box[3]):
                reason = "degenerate box"
            else:
                seen.add(squash(q["key"]))
                picked[kind].append((unit, {**q, "box": box}))
                continue
        result.skips[f"{kind}: {reason}"] += 1
    rng = random.Random(f"{seed}:{doc}:{pu.page}")
    order = list(KINDS)
    rng.shuffle(order)
    for kind in order:
        rng.shuffle(picked[kind])
    chosen: list[tuple[str, dict]] = []
    while len(chosen) < max_per_page and any(picked.values()):
        for kind in order:  # round robin over kinds: a page's questions are of varied kinds
            if picked[kind] and len(chosen) < max_per_page:
                chosen.append((kind, picked[kind].pop()[1]))
    for kind in KINDS:
        if picked[kind]:
            result.skips[f"{kind}: over the page's question quota"] += len(picked[kind])
    for kind, q in sorted(chosen, key=lambda kq: kq[1]["idx"]):
        qid = f"{doc}#{pu.page}:{kind}:{q['idx']}"
        result.questions.append(
            {
                "id": qid,
                "question": q["question"],
                "answers": [q["answer"]],
                "doc": doc,
                "page": pu.page,
                "box": list(q["box"]),
                "type": kind,
                "labelled": _labelled(qid, seed, labelled_fraction),
            }
        )


def derive_questions(
    pdf_path: str | Path,
    doc: str,
    seed: int,
    labelled_fraction: float = 0.5,
    max_per_page: int = 4,
    pages: Iterable[int] | None = None,
    seen: set[str] | None = None,
) -> Derivation:
    """Derive questions from ``pages`` (0-based; all when None) of one PDF named ``doc`` (its
    path relative to the docs root). Pass one ``seen`` set across a collection so a sentence
    repeated on another page (running heads, boilerplate) is asked once."""
    result = Derivation()
    seen = set() if seen is None else seen
    from pdfminer.psexceptions import PSException

    try:
        units = page_units(pdf_path, pages)
    except PSException:  # the file's structure, not one page, is broken: nothing to ask
        result.skips["doc: pdfminer cannot read the PDF"] += 1
        return result
    layers = text_layer(pdf_path, [pu.page for pu in units])
    for pu in units:
        if pu.error is not None:
            reason = (
                "rotated page" if pu.error == "rotated page" else "pdfminer cannot lay out the page"
            )
            result.skips[f"page: {reason}"] += 1
            continue
        if not pu.rows:
            result.skips["page: no text lines"] += 1
            continue
        derive_page(pu, layers[pu.page], doc, seed, labelled_fraction, max_per_page, seen, result)
    return result
