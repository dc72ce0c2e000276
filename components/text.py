"""Text helpers shared across layers: answer normalisation and scores (EM, ANLS), question tokens
and stems, and the entity rewrite of an image question.

They sit at the bottom of the import layers (tests/platform/test_import_layers.py), so the reader, the
retriever's training, the RAG engine and the evaluation use one definition each instead of
importing each other for them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

ANLS_THRESHOLD = 0.5

# ----------------------------------------------------------------------------- answers
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalise_answer(text: str) -> str:
    """SQuAD-style: lowercase, drop punctuation and articles, collapse whitespace."""
    text = _ARTICLES.sub(" ", str(text).lower().translate(_PUNCT))
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float | None:
    if not answers:
        return None
    pred = normalise_answer(prediction)
    return float(any(pred == normalise_answer(a) for a in answers))


def anls(
    prediction: str, answers: Sequence[str], threshold: float = ANLS_THRESHOLD
) -> float | None:
    """DocVQA ANLS for one question: max over gold answers of 1 - NL if NL < threshold, else 0.

    Strings are compared lowercased with surrounding/multiple whitespace collapsed, as in the
    DocVQA evaluation script; NL is the Levenshtein distance over the longer length.
    """
    if not answers:
        return None
    pred = " ".join(str(prediction).lower().split())
    best = 0.0
    for gold in answers:
        g = " ".join(str(gold).lower().split())
        nl = Levenshtein.normalized_distance(pred, g)
        best = max(best, 1.0 - nl if nl < threshold else 0.0)
    return best


# ----------------------------------------------------------------------------- question words
TOKEN = re.compile(r"[\w][\w.,%$/-]*", re.UNICODE)
STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "how",
        "many",
        "much",
        "does",
        "do",
        "did",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "as",
        "per",
        "value",
        "shown",
        "listed",
        "give",
        "tell",
        "me",
        "please",
        "according",
        "page",
        "document",
    ]
)


def tokens(text: str) -> list[str]:
    return [t.lower().strip(".,") for t in TOKEN.findall(text)]


def content_tokens(text: str) -> set[str]:
    return {t for t in tokens(text) if t and t not in STOP}


def stem(token: str) -> str:
    return token.lower().strip(".,:;?")[:5]


# ----------------------------------------------------------------------------- image questions
_THIS = re.compile(r"\b(this|that|the shown|the pictured)\s+(\w+)", re.IGNORECASE)


def rewrite_question(question: str, name: str) -> str:
    """'When was this building built?' + 'Castle of Good Hope' -> 'When was Castle of Good Hope built?'.

    Without a "this <noun>" phrase the name is appended in parentheses, so it still reaches retrieval.
    """
    name = " ".join(str(name).split())
    if not name:
        return question
    rewritten, n = _THIS.subn(name, question, count=1)
    return rewritten if n else f"{question} ({name})"


# ----------------------------------------------------------------------------- English function words
# Wider than STOP (which drops question-template words such as "page" or "value" from question
# stems): never the blanked term of a derived cloze question, and their share of a page's words
# tells an English page when real documents are picked.
ENGLISH_FUNCTION_WORDS = frozenset(
    (
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "either",
        "else",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "here",
        "how",
        "however",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "may",
        "might",
        "more",
        "most",
        "must",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "one",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "shall",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "thus",
        "to",
        "too",
        "under",
        "until",
        "up",
        "upon",
        "use",
        "used",
        "uses",
        "using",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    )
)
