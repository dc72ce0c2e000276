"""Block-scope lexical heatmaps of the ranking (ADR 29): summed over each term's blocks (served)
against every block testing every question term (before), on the real pages replicated as
``make bench`` does: bit-equal maps, and milliseconds per question of each, alternated.

``python -m scripts.experiments.lexical_heatmaps_old_new --work .regionops/realdev --n 200``
(``--work``: the imported corpus folder the profile script caches).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from components.bench.corpus import spread
from components.bench.real import replicated
from components.data.corpus import load_corpus
from components.index.lexical import LexicalChannel, tokenize
from components.index.region_index import PageMeta


def per_block(channel: LexicalChannel, question: str, positions: np.ndarray) -> np.ndarray:
    """The block map before ADR 29 (corpus term weights, as the ranking uses)."""
    terms = sorted(set(tokenize(question)))
    weights = {t: channel._idf(t) for t in terms}
    total = sum(weights.values())
    g2 = channel.grid * channel.grid
    out = np.zeros((len(positions), g2), dtype=np.float32)
    if total <= 0:
        return out.reshape(-1, channel.grid, channel.grid)
    for row, pos in enumerate(positions):
        for block_cells, block_terms in channel._blocks[pos]:
            share = sum(w for t, w in weights.items() if t in block_terms)
            if share > 0:
                out[row, block_cells] = np.maximum(out[row, block_cells], share)
    return (out / total).reshape(-1, channel.grid, channel.grid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--candidates", type=int, default=144)
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    corpus = load_corpus(args.work / "corpus")
    metas, _ = replicated(
        [PageMeta.from_page(p) for p in corpus.pages], np.zeros((len(corpus.pages), 1)), args.pages
    )
    channel = LexicalChannel.from_metas(metas, 16)
    rng = np.random.default_rng(0)
    texts = [q.question for q in spread([q for q in corpus.questions if q.question], args.n)]
    new_ms, old_ms, equal = [], [], 0
    load = os.getloadavg()
    for i, text in enumerate(texts):
        positions = rng.choice(len(metas), args.candidates, replace=False)
        runs = {}
        for name in ("new", "old") if i % 2 == 0 else ("old", "new"):
            t0 = time.perf_counter()
            runs[name] = (
                channel.heatmaps(text, positions, "block")
                if name == "new"
                else per_block(channel, text, positions)
            )
            (new_ms if name == "new" else old_ms).append((time.perf_counter() - t0) * 1e3)
        equal += bool(np.array_equal(runs["new"], runs["old"]))
    print(
        json.dumps(
            {
                "questions": len(texts),
                "pages": len(metas),
                "candidates": args.candidates,
                "bit_equal": equal,
                "served_p50_ms": round(float(np.median(new_ms)), 3),
                "before_p50_ms": round(float(np.median(old_ms)), 3),
                "loadavg": [load, os.getloadavg()],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
