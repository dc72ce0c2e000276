"""Block-scope term heatmaps summed over each term's blocks (ADR 29) equal the per-block sums."""

from __future__ import annotations

import numpy as np
import pytest

from components.index.lexical import LexicalChannel, tokenize

G = 16
VOCABULARY = ["gamma", "delta", "option", "zeta", "theta", "value", "mode", "limit", "rate"]


def _channel() -> LexicalChannel:
    rng = np.random.default_rng(5)
    pages_words, pages_blocks = [], []
    for _ in range(9):
        n_blocks = int(rng.integers(0, 6))
        # overlapping blocks included: a cell in two blocks takes the larger share
        blocks = [[0.05, 0.15 * b, 0.95, 0.15 * b + 0.25] for b in range(n_blocks)]
        words = [
            [
                str(rng.choice(VOCABULARY)),
                0.1 + 0.1 * w,
                0.15 * b + 0.1,
                0.15 + 0.1 * w,
                0.15 * b + 0.14,
            ]
            for b in range(max(n_blocks, 1))
            for w in range(int(rng.integers(1, 7)))
        ]
        pages_words.append(words)
        pages_blocks.append(blocks)
    return LexicalChannel(pages_words, G, pages_blocks)


def _block_map_term_by_block(channel, question, positions, term_weights) -> np.ndarray:
    """The block map as it was computed before ADR 29: every block tests every question term."""
    terms = sorted(set(tokenize(question)))
    weights = {t: channel._idf(t) for t in terms}
    total = sum(weights.values())
    out = np.zeros((len(positions), G * G), dtype=np.float32)
    for row, pos in enumerate(positions):
        page_weights = (
            channel.within_page_weights(pos, weights) if term_weights == "page" else weights
        )
        for block_cells, block_terms in channel._blocks[pos]:
            share = sum(w for t, w in page_weights.items() if t in block_terms)
            if share > 0:
                out[row, block_cells] = np.maximum(out[row, block_cells], share)
    return (out / total).reshape(-1, G, G) if total > 0 else out.reshape(-1, G, G)


@pytest.mark.parametrize("term_weights", ["corpus", "page"])
@pytest.mark.parametrize("question", ["delta option zeta", "gamma gamma rate", "absent words"])
def test_block_scope_heatmaps_equal_the_per_block_sums_bit_for_bit(question, term_weights):
    channel = _channel()
    positions = np.array([3, 0, 8, 5, 1, 7])
    ours = channel.heatmaps(question, positions, "block", term_weights)
    reference = _block_map_term_by_block(channel, question, positions, term_weights)
    assert np.array_equal(ours, reference)
    assert ours.any() == (question != "absent words")
    mixed = channel.heatmaps(question, positions, "mixed", term_weights)
    cell = channel.heatmaps(question, positions, "cell", term_weights)
    assert np.allclose(mixed, 0.5 * (cell + ours), atol=1e-6)
