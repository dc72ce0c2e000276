"""The sparse channel of retrieval: BM25 over page text, and exact-term heatmaps on the grid.

Real retrieval systems fuse sparse and dense evidence (docs/design.md §5). Here the sparse side
does two things: it proposes candidate pages the dense faiss stage may have missed, and
it maps the query's terms onto the grid cells whose words contain them, so the heatmap
can light up exactly where a rare term (a name, a year, a row label) is printed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from rank_bm25 import BM25Plus

from components.index.bm25_scores import BM25PlusPostings

_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
# Question words and glue carry no evidence of where an answer is printed.
STOPWORDS = frozenset(
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
        "been",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "as",
        "does",
        "did",
        "do",
        "has",
        "have",
        "had",
        "than",
        "per",
        "into",
        "about",
        "value",
        "shown",
        "listed",
        "according",
        "page",
        "document",
        "give",
        "tell",
        "me",
    ]
)


def tokenize(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS and len(t) > 1]


def bm25_plus(documents: Sequence[Sequence[str]]) -> BM25Plus | None:
    """BM25+ over tokenised documents (``tokenize``): the one BM25 of the project, shared by the
    lexical channel (pages) and the ``bm25_blocks`` baseline (blocks), so the two differ only in
    what a document is. BM25+ keeps every idf positive (Okapi zeroes or negates terms in half the
    documents or more). An empty document gets a placeholder token no query has (rank-bm25 needs
    non-empty documents); None when there are no documents."""
    docs = [list(d) or ["\x00empty"] for d in documents]
    return BM25Plus(docs) if docs else None


SCOPES = ("cell", "block", "mixed")
TERM_WEIGHTS = ("corpus", "page", "page_context")
# Blocks that name the page rather than hold an answer: the synthetic generator's title and the
# PDF importer's running header and footer (components.data.pdf_layout). Under
# ``page_context`` term weights their terms are the context of every block on the page (ADR 35).
PAGE_CONTEXT_KINDS = frozenset({"title", "page_header", "page_footer"})


def _cells_of_box(box: Sequence[float], grid: int) -> np.ndarray:
    from components.regions.grid import box_to_cells

    return np.flatnonzero(box_to_cells(tuple(box), grid))


class LexicalChannel:
    """BM25 page scores and term-match heatmaps over pages' text layers.

    ``pages_words[i]`` holds page i's words as ``[text, x0, y0, x1, y1]`` rows (normalised boxes);
    ``pages_blocks[i]`` (optional) page i's layout blocks as ``[x0, y0, x1, y1]``;
    ``pages_block_kinds[i]`` (optional) their kinds, in the same order (``PAGE_CONTEXT_KINDS``).

    Two scopes of term matching: ``cell`` gives each cell the idf share of the question's terms
    printed in that cell (peaks where a term is printed); ``block`` gives every cell of a layout
    block the share printed anywhere in the block (a row label and its column header count
    together, as in BM25 over blocks); ``mixed`` averages the two.
    """

    def __init__(
        self,
        pages_words: Sequence[Sequence[Sequence]],
        grid: int,
        pages_blocks: Sequence[Sequence[Sequence[float]]] | None = None,
        pages_block_kinds: Sequence[Sequence[str]] | None = None,
    ):
        self.grid = grid
        # per page: the terms printed in its title, running header or footer blocks
        self._context_terms: list[frozenset[str]] = []
        self._cells: list[dict[str, set[int]]] = []
        # per page: [(cell indices, terms in the block)]
        self._blocks: list[list[tuple[np.ndarray, frozenset[str]]]] = []
        self._term_blocks: list[dict[str, list[int]]] = []
        # per page, per layout block (in the page's block order): the tokens printed in it
        self._block_tokens: list[list[list[str]]] = []
        self._block_bm25: tuple[BM25PlusPostings | None, np.ndarray] | None = None
        docs: list[list[str]] = []
        for i, words in enumerate(pages_words):
            blocks = list(pages_blocks[i]) if pages_blocks is not None else []
            block_terms: list[set[str]] = [set() for _ in blocks]
            block_tokens: list[list[str]] = [[] for _ in blocks]
            cells: dict[str, set[int]] = defaultdict(set)
            tokens: list[str] = []
            for text, x0, y0, x1, y1 in words:
                # A word belongs to the cell under its centre, as in the cell encoder.
                col = min(int((x0 + x1) / 2 * grid), grid - 1)
                row = min(int((y0 + y1) / 2 * grid), grid - 1)
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                inside = [
                    b
                    for b, (bx0, by0, bx1, by1) in enumerate(blocks)
                    if bx0 <= cx <= bx1 and by0 <= cy <= by1
                ]
                for token in tokenize(str(text)):
                    cells[token].add(row * grid + col)
                    tokens.append(token)
                    for b in inside:
                        block_terms[b].add(token)
                        block_tokens[b].append(token)
            self._block_tokens.append(block_tokens)
            kinds = list(pages_block_kinds[i]) if pages_block_kinds is not None else []
            if kinds and len(kinds) != len(blocks):
                raise ValueError(f"page {i}: {len(kinds)} block kinds for {len(blocks)} blocks")
            self._context_terms.append(
                frozenset(
                    term
                    for kind, terms in zip(kinds, block_terms)
                    if kind in PAGE_CONTEXT_KINDS
                    for term in terms
                )
            )
            self._cells.append(dict(cells))
            self._blocks.append(
                [
                    (_cells_of_box(box, grid), frozenset(terms))
                    for box, terms in zip(blocks, block_terms)
                    if terms
                ]
            )
            # term -> the entries of self._blocks[i] printing it, so a question's block shares
            # are summed over its terms' blocks instead of testing every term on every block
            term_blocks: dict[str, list[int]] = defaultdict(list)
            for b, (_, terms) in enumerate(self._blocks[-1]):
                for term in terms:
                    term_blocks[term].append(b)
            self._term_blocks.append(dict(term_blocks))
            docs.append(tokens)
        self._bm25 = bm25_plus(docs)
        self._page_postings = BM25PlusPostings(self._bm25) if self._bm25 is not None else None

    @classmethod
    def from_metas(cls, metas: Sequence, grid: int) -> LexicalChannel:
        """The channel over pages' stored metadata (``PageMeta``: words, blocks and their kinds),
        the one construction of the index, the benchmarks and training's views of a corpus."""
        return cls(
            [m.words for m in metas],
            grid,
            [m.blocks for m in metas],
            [m.block_kinds for m in metas],
        )

    def __len__(self) -> int:
        return len(self._cells)

    def _idf(self, token: str) -> float:
        return max(float(self._bm25.idf.get(token, 0.0)), 0.0) if self._bm25 else 0.0

    def page_scores(self, question: str) -> np.ndarray:
        terms = tokenize(question)
        if not terms or self._bm25 is None:
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(self._page_postings.scores(terms), dtype=np.float32)

    def top_pages(self, question: str, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """Positions of the ``n`` best BM25 pages with a positive score (within ``allowed``)."""
        scores = self.page_scores(question)
        if allowed is not None:
            mask = np.full(len(scores), -np.inf, dtype=np.float32)
            mask[allowed] = 0.0
            scores = scores + mask
        order = np.argsort(-scores, kind="stable")[:n]
        return order[scores[order] > 0]

    def _blocks_bm25(self) -> tuple[BM25PlusPostings | None, np.ndarray]:
        """BM25+ with every layout block of every page as a document (built on first use), and
        each page's first block's document number."""
        if self._block_bm25 is None:
            sizes = [len(blocks) for blocks in self._block_tokens]
            offsets = (
                np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
                if sizes
                else np.zeros(0, np.int64)
            )
            bm25 = bm25_plus([t for blocks in self._block_tokens for t in blocks])
            self._block_bm25 = (BM25PlusPostings(bm25) if bm25 is not None else None, offsets)
        return self._block_bm25

    def block_scores(self, question: str, pos: int) -> np.ndarray:
        """BM25+ of each layout block of page ``pos`` (its block order) for ``question``, over
        blocks as documents of the whole channel (``bm25_blocks``' scoring, read on one page);
        0 for a block that prints no question term."""
        return self.pages_block_scores(question, [pos])[0]

    def pages_block_scores(self, question: str, positions: Sequence[int]) -> list[np.ndarray]:
        """``block_scores`` of each page in ``positions``, in one pass over the question's
        postings: the cost grows with those pages' blocks, not with the channel's (ADR 29)."""
        sizes = [len(self._block_tokens[pos]) for pos in positions]
        terms = tokenize(question)
        postings, offsets = self._blocks_bm25()
        if not sum(sizes) or not terms or postings is None:
            return [np.zeros(n, dtype=np.float64) for n in sizes]
        docs = np.concatenate(
            [np.arange(offsets[pos], offsets[pos] + n) for pos, n in zip(positions, sizes)]
        )
        bm25 = postings.bm25
        # BM25+ adds idf·delta for every query term, printed or not: a block printing none scores 0.
        floor = sum(float(bm25.idf.get(t, 0.0)) * bm25.delta for t in terms)
        scores = np.maximum(postings.scores(terms, docs) - floor, 0.0)
        return np.split(scores, np.cumsum(sizes)[:-1])

    def within_page_weights(
        self, pos: int, weights: dict[str, float], context: bool = False
    ) -> dict[str, float]:
        """``weights`` scaled by how few of page ``pos``'s blocks print each term.

        A company name or a year printed in the title, the chart caption and the table header
        tells pages apart but not regions on the page; a row label printed once does. A term
        printed in df of the page's blocks weighs 1/df (chosen on val over log and BM25-style
        damping; ADR 9). With ``context``, a term the page's title, running header or footer
        prints (``PAGE_CONTEXT_KINDS``) counts as printed in every block: the name of the
        document is the context of each of its regions, as a passage retriever prepends the
        title to every passage, so it no longer draws the region pick to the title (ADR 35).
        """
        blocks = self._blocks[pos]
        if len(blocks) <= 1:
            return weights
        named = self._context_terms[pos] if context else frozenset()
        out = {}
        for term, weight in weights.items():
            df = len(blocks) if term in named else sum(1 for _, terms in blocks if term in terms)
            out[term] = weight / df if df else weight
        return out

    def heatmaps(
        self,
        question: str,
        positions: np.ndarray,
        scope: str = "cell",
        term_weights: str = "corpus",
    ) -> np.ndarray:
        """[len(positions), G, G]: the idf share (0..1) of the question's terms matched per cell,
        at ``scope`` cell, block or mixed (see the class doc); ``term_weights="page"`` scales
        each term by ``within_page_weights`` (the share's denominator stays the corpus total),
        ``"page_context"`` likewise with the page's title and running header as context."""
        if scope not in SCOPES:
            raise ValueError(f"unknown lexical scope {scope!r} ({' | '.join(SCOPES)})")
        if term_weights not in TERM_WEIGHTS:
            raise ValueError(f"unknown term weights {term_weights!r} ({' | '.join(TERM_WEIGHTS)})")
        terms = sorted(set(tokenize(question)))
        weights = {t: self._idf(t) for t in terms}
        total = sum(weights.values())
        g2 = self.grid * self.grid
        cell_map = np.zeros((len(positions), g2), dtype=np.float32)
        block_map = np.zeros((len(positions), g2), dtype=np.float32)
        if total <= 0:
            return cell_map.reshape(-1, self.grid, self.grid)
        for row, pos in enumerate(np.asarray(positions, dtype=np.int64)):
            page_weights = (
                weights
                if term_weights == "corpus"
                else self.within_page_weights(pos, weights, term_weights == "page_context")
            )
            if scope != "block":
                cells = self._cells[pos]
                for term, weight in page_weights.items():
                    for cell in cells.get(term, ()):
                        cell_map[row, cell] += weight
            if scope != "cell":
                # Each block's share adds its terms' weights in page_weights' order, as summing
                # over the terms it prints would (the same floats, the same order; ADR 29).
                shares: dict[int, float] = {}
                blocks_of = self._term_blocks[pos]
                for term, weight in page_weights.items():
                    for b in blocks_of.get(term, ()):
                        shares[b] = shares.get(b, 0) + weight
                blocks = self._blocks[pos]
                for b, share in shares.items():
                    if share > 0:
                        block_cells = blocks[b][0]
                        block_map[row, block_cells] = np.maximum(block_map[row, block_cells], share)
        out = {"cell": cell_map, "block": block_map, "mixed": 0.5 * (cell_map + block_map)}[scope]
        return (out / total).reshape(-1, self.grid, self.grid)
