"""MaxSim in the index's exact stage (ADR 28): a query given as its token vectors.

A model trained with ``train.global_score: late_interaction`` records ``page_score: maxsim`` in
its export; serving then hands the index a ``TokenQuery`` instead of the mean query vector. The
candidate stage still searches with the mean of the token vectors (the pooled / centroid / stored
stages index one vector per page or cell, and a page's best cell for the mean vector is a cheap
proxy of its MaxSim score); only the exact stage scores each candidate page by MaxSim over its
stored cells, and derives its heatmap from the same per-token scores
(``components.model.late_interaction``): the heatmap's peak is the MaxSim page score.

Storage modes: float16 cells are scored exactly, widened block by block without a float32 copy;
every other mode (pq, pq_residual, binary) scores the candidate rows' decoded cells, i.e. the same
reconstruction the mode's own max_cell scores approximate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from components.index.float16_scores import float16_token_scores
from components.index.storage_modes import StorageMode
from components.model.late_interaction import HEATMAP_RULES, maxsim_heatmaps


@dataclass(frozen=True)
class TokenQuery:
    """A question as its real (unpadded) token vectors, float32 [L, dim], and the heatmap rule."""

    tokens: np.ndarray
    heatmap_rule: str = "mean"

    def __post_init__(self) -> None:
        tokens = np.ascontiguousarray(self.tokens, dtype=np.float32)
        if tokens.ndim != 2 or tokens.shape[0] == 0:
            raise ValueError(f"a token query needs [L >= 1, dim] token vectors, got {tokens.shape}")
        if not np.isfinite(tokens).all():
            raise ValueError("token query vectors hold NaN or inf")
        if self.heatmap_rule not in HEATMAP_RULES:
            raise ValueError(
                f"unknown maxsim heatmap rule {self.heatmap_rule!r} ({' | '.join(HEATMAP_RULES)})"
            )
        object.__setattr__(self, "tokens", tokens)

    @property
    def dim(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def vector(self) -> np.ndarray:
        """The mean query vector [dim] (what the candidate stage searches with)."""
        return self.tokens.mean(0)


def candidate_vector(query) -> np.ndarray:
    """The one vector the candidate stage searches with: a TokenQuery's mean, else the query itself."""
    vector = query.vector if isinstance(query, TokenQuery) else query
    return np.asarray(vector, dtype=np.float32).reshape(-1)


def token_scores(storage: StorageMode, positions: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """float32 [len(positions), L, G*G]: every token's score on every cell of the given rows."""
    positions = np.asarray(positions, dtype=np.int64)
    if storage.name == "float16":
        scores = float16_token_scores(storage.codes[positions], tokens)  # [P, N, L]
    else:
        scores = storage.decode(positions) @ tokens.T
    return np.ascontiguousarray(scores.transpose(0, 2, 1), dtype=np.float32)


def maxsim_maps(
    storage: StorageMode, positions: np.ndarray, query: TokenQuery, grid: int
) -> np.ndarray:
    """[len(positions), G, G] heatmaps whose peaks are the pages' MaxSim scores."""
    if query.dim != storage.dim:
        raise ValueError(f"query has {query.dim} dims, the index holds {storage.dim}")
    scores = torch.from_numpy(token_scores(storage, positions, query.tokens))
    maps = maxsim_heatmaps(scores, None, query.heatmap_rule).numpy()
    return maps.reshape(-1, grid, grid).astype(np.float32, copy=False)
