"""Late interaction (ColBERT's MaxSim) over a page's cells, and the heatmap derived from it (ADR 28).

One rule for training, the index's exact stage and serving: each query token takes its best cell
on the page and the page scores the mean of those maxima. The heatmap a page's regions come from
is derived from the same per-token cell scores, then shifted so that its peak equals the page's
MaxSim score; the index's contract "a page's score is its (fused) heatmap's peak" then holds
under both rules, and the lexical channel is added to this map exactly as it is to max_cell's.

Heatmap rules (``rag.maxsim_heatmap``):
  mean  a cell's mean over the query tokens of its score (= its score for the mean query vector,
        the max_cell heatmap up to the shift);
  vote  a cell's share of the MaxSim score: the mean over tokens of the token's best score where
        the cell is that token's best cell, else 0; the mean map breaks ties among the rest.
"""

from __future__ import annotations

from typing import Literal

import torch

PAGE_SCORE_RULES = ("max_cell", "maxsim")
PageScoreRule = Literal["max_cell", "maxsim"]
HEATMAP_RULES = ("mean", "vote")
# The vote map's tie-break: small enough never to reorder two cells a token voted for
# (scores are cosines in [-1, 1], so the mean term moves a cell by at most 2e-3).
_VOTE_TIE_BREAK = 1e-3


def page_score_rule(global_score: str) -> PageScoreRule:
    """The served page-score rule of a model trained with ``train.global_score``."""
    rules = {"max_cell": "max_cell", "late_interaction": "maxsim"}
    if global_score not in rules:
        raise ValueError(
            f"unknown train.global_score {global_score!r} (max_cell | late_interaction)"
        )
    return rules[global_score]


def token_cell_scores(tokens: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """tokens [..., L, D] x cells [P, N, D] -> [..., P, L, N] dot products."""
    return torch.einsum("...ld,pnd->...pln", tokens, cells)


def _token_weights(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-token weights [..., 1, L] that average over real tokens (mask [..., L]; None: all real)."""
    length = scores.shape[-2]
    if mask is None:
        mask = torch.ones(scores.shape[:-3] + (length,), dtype=scores.dtype, device=scores.device)
    mask = mask.to(scores.dtype)
    return (mask / mask.sum(-1, keepdim=True).clamp_min(1.0)).unsqueeze(-2)


def maxsim_page_scores(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token cell scores [..., P, L, N] -> MaxSim page scores [..., P] (mean over real tokens
    of each token's best cell)."""
    weights = _token_weights(scores, mask)
    return (scores.max(-1).values * weights).sum(-1)


def maxsim_heatmaps(
    scores: torch.Tensor, mask: torch.Tensor | None = None, rule: str = "mean"
) -> torch.Tensor:
    """Per-token cell scores [..., P, L, N] -> heatmaps [..., P, N] whose peak is the MaxSim score."""
    if rule not in HEATMAP_RULES:
        raise ValueError(f"unknown maxsim heatmap rule {rule!r} ({' | '.join(HEATMAP_RULES)})")
    weights = _token_weights(scores, mask).unsqueeze(-1)  # [..., 1, L, 1]
    mean = (scores * weights).sum(-2)  # [..., P, N]
    if rule == "mean":
        heat = mean
    else:
        best = scores.max(-1, keepdim=True)
        won = torch.zeros_like(scores).scatter_(-1, best.indices, best.values)
        heat = (won * weights).sum(-2) + _VOTE_TIE_BREAK * mean
    page = maxsim_page_scores(scores, mask)
    return heat + (page - heat.max(-1).values).unsqueeze(-1)
