"""BM25+ from inverted postings (ADR 29): rank-bm25's scores bit for bit, for all or a few documents."""

from __future__ import annotations

import numpy as np
import pytest
from rank_bm25 import BM25Plus

from components.index.bm25_scores import BM25PlusPostings
from components.index.lexical import LexicalChannel, bm25_plus

DOCS = [
    ["gamma", "delta", "delta", "option"],
    ["gamma"],
    [],
    ["epsilon", "delta", "zeta", "zeta", "zeta", "theta"],
    ["option", "value", "gamma", "gamma"],
]
QUERIES = [
    ["delta"],
    ["gamma", "delta", "gamma"],  # a repeated term counts twice, as in rank-bm25
    ["unknown", "zeta"],
    [],
    ["option", "theta", "epsilon", "value"],
]


@pytest.mark.parametrize("terms", QUERIES)
def test_postings_scores_equal_rank_bm25_for_every_document_bit_for_bit(terms):
    bm25 = bm25_plus(DOCS)
    reference = bm25.get_scores(terms)
    ours = BM25PlusPostings(bm25).scores(terms)
    assert ours.dtype == reference.dtype and np.array_equal(ours, reference)


@pytest.mark.parametrize("terms", QUERIES)
def test_postings_scores_equal_rank_bm25_batch_scores_for_a_subset(terms):
    bm25 = BM25Plus([d or ["\x00empty"] for d in DOCS], k1=1.2, b=0.6, delta=0.5)
    docs = [4, 0, 3, 3, 2]  # any order, repeats allowed
    reference = np.asarray(bm25.get_batch_scores(terms, docs))
    assert np.array_equal(BM25PlusPostings(bm25).scores(terms, docs), reference)
    assert BM25PlusPostings(bm25).scores(terms, []).shape == (0,)


def test_postings_refuse_document_numbers_outside_the_collection():
    postings = BM25PlusPostings(bm25_plus(DOCS))
    with pytest.raises(IndexError, match="outside"):
        postings.scores(["gamma"], [0, 5])
    with pytest.raises(IndexError, match="outside"):
        postings.scores(["gamma"], [-1])


def _channel() -> LexicalChannel:
    rng = np.random.default_rng(3)
    vocabulary = ["gamma", "delta", "option", "zeta", "theta", "value", "mode", "limit"]
    pages_words, pages_blocks = [], []
    for p in range(7):
        n_blocks = int(rng.integers(0, 5))  # a page without layout blocks included
        blocks = [[0.05, 0.2 * b, 0.95, 0.2 * b + 0.15] for b in range(n_blocks)]
        words = []
        for b in range(max(n_blocks, 1)):
            for w in range(int(rng.integers(1, 6))):
                y = 0.2 * b + 0.05
                word = str(rng.choice(vocabulary))
                words.append([word, 0.1 + 0.1 * w, y, 0.15 + 0.1 * w, y + 0.04])
        pages_words.append(words)
        pages_blocks.append(blocks)
    return LexicalChannel(pages_words, 16, pages_blocks)


def _rank_bm25_block_scores(channel: LexicalChannel, question: str, pos: int) -> np.ndarray:
    """Block scoring as it was before ADR 29: rank-bm25's get_batch_scores on the page's blocks."""
    from components.index.lexical import tokenize

    postings, offsets = channel._blocks_bm25()
    n, terms = len(channel._block_tokens[pos]), tokenize(question)
    if not n or not terms:
        return np.zeros(n)
    bm25 = postings.bm25
    raw = np.asarray(bm25.get_batch_scores(terms, list(range(offsets[pos], offsets[pos] + n))))
    floor = sum(float(bm25.idf.get(t, 0.0)) * bm25.delta for t in terms)
    return np.maximum(raw - floor, 0.0)


@pytest.mark.parametrize(
    ("question", "printed"),
    [("delta option", True), ("zeta zeta limit", True), ("nothing here", False), ("the", False)],
)
def test_pages_block_scores_equal_rank_bm25_block_scores_page_by_page(question, printed):
    channel = _channel()
    positions = [5, 0, 2, 6, 1]
    batch = channel.pages_block_scores(question, positions)
    assert len(batch) == len(positions)
    for pos, scores in zip(positions, batch):
        assert np.array_equal(scores, _rank_bm25_block_scores(channel, question, pos))
        assert np.array_equal(channel.block_scores(question, pos), scores)
    assert any(s.max(initial=0.0) > 0 for s in batch) == printed
    assert channel.pages_block_scores(question, []) == []


def test_page_scores_equal_rank_bm25_page_scores():
    channel = _channel()
    for question in ("delta option", "zeta theta mode", "absent"):
        from components.index.lexical import tokenize

        terms = tokenize(question)
        reference = (
            np.asarray(channel._bm25.get_scores(terms), dtype=np.float32)
            if terms
            else np.zeros(len(channel), dtype=np.float32)
        )
        assert np.array_equal(channel.page_scores(question), reference)
