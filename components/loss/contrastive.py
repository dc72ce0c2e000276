"""Hybrid supervision losses of the region retriever (docs/design.md §5).

* global: in-batch InfoNCE over page scores (page score = max cell score, or a late-interaction
  score passed in), hard negatives appended;
* local: multi-positive InfoNCE over the gold page's cells (or, with ``local_negatives="candidates"``,
  over the cells of every candidate page, so cues that light up any page's chart cannot satisfy it);
  positives come from the labelled box
  (rasterised to the grid) or, for unlabelled samples after a warm-up, from pseudo-labels: cells
  scoring at least mean + z·std of their own page, computed without gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def global_infonce(page_score: torch.Tensor, targets: torch.Tensor, tau: float) -> torch.Tensor:
    """page_score [B, P] (every query against every candidate page), targets [B] gold column -> scalar."""
    return F.cross_entropy(page_score / tau, targets)


def pseudo_label_mask(cell_score: torch.Tensor, z: float) -> torch.Tensor:
    """[B, N] scores -> bool [B, N]: cells >= mean + z·std of their page; the best cell always counts."""
    with torch.no_grad():
        s = cell_score.detach()
        threshold = s.mean(-1, keepdim=True) + z * s.std(-1, keepdim=True, unbiased=False)
        mask = s >= threshold - 1e-6  # float noise must not split ties on a flat page
        mask.scatter_(-1, s.argmax(-1, keepdim=True), True)
    return mask


def multi_positive_infonce(
    cell_score: torch.Tensor, positives: torch.Tensor, tau: float
) -> torch.Tensor:
    """Per-row loss [B]: mean over positive cells of -log softmax(score / tau) over the page's cells.

    Averaging over positives (rather than -log of their summed probability) asks for every covered
    cell to score high, which is what region extraction needs. Rows without positives give 0.
    """
    log_prob = F.log_softmax(cell_score / tau, dim=-1)
    pos = positives.to(log_prob.dtype)
    count = pos.sum(-1)
    return -(log_prob * pos).sum(-1) / count.clamp_min(1.0)


@dataclass
class LossOutput:
    total: torch.Tensor
    global_: torch.Tensor
    local: torch.Tensor
    n_labelled: int  # samples whose local positives came from a box
    n_pseudo: int  # samples whose local positives came from pseudo-labels

    def as_floats(self) -> dict[str, float]:
        return {
            "loss": float(self.total),
            "loss_global": float(self.global_),
            "loss_local": float(self.local),
            "n_labelled": self.n_labelled,
            "n_pseudo": self.n_pseudo,
        }


def hybrid_loss(
    cell_score: torch.Tensor,
    targets: torch.Tensor,
    box_cells: torch.Tensor,
    has_box: torch.Tensor,
    *,
    tau_global: float,
    tau_local: float,
    lambda_local: float,
    local_mode: str,
    step: int,
    warmup_steps: int,
    pseudo_z: float,
    local_negatives: str = "gold_page",
    page_score: torch.Tensor | None = None,
) -> LossOutput:
    """Total = global + λ·local.

    cell_score [B, P, N]: every query against every candidate page's cells; targets [B] gold page
    column; box_cells bool [B, N] rasterised labelled boxes; has_box bool [B].
    local_mode: none | labelled | hybrid (labelled + pseudo-labels once ``step >= warmup_steps``).
    local_negatives: gold_page (the softmax runs over the gold page's cells) | candidates (over the
    cells of all P candidate pages; positives stay on the gold page).
    page_score [B, P]: what the global loss ranks; None = the best cell's score (RegionRAG).
    """
    if local_negatives not in {"gold_page", "candidates"}:
        raise ValueError(f"unknown local negatives {local_negatives!r} (gold_page | candidates)")
    if local_mode not in {"none", "labelled", "hybrid"}:
        raise ValueError(f"unknown local loss mode {local_mode!r} (none | labelled | hybrid)")
    if page_score is None:
        page_score = cell_score.max(-1).values
    global_ = global_infonce(page_score, targets, tau_global)
    zero = cell_score.new_zeros(())
    if local_mode == "none" or lambda_local == 0:
        return LossOutput(global_, global_, zero, 0, 0)
    gold = cell_score[torch.arange(len(targets), device=targets.device), targets]  # [B, N]
    positives = box_cells & has_box.unsqueeze(-1)
    use = has_box.clone()
    n_pseudo = 0
    if local_mode == "hybrid" and step >= warmup_steps:
        unlabelled = ~has_box
        if unlabelled.any():
            positives = torch.where(
                unlabelled.unsqueeze(-1), pseudo_label_mask(gold, pseudo_z), positives
            )
            use = use | unlabelled
            n_pseudo = int(unlabelled.sum())
    if not use.any():
        return LossOutput(global_, global_, zero, 0, 0)
    if local_negatives == "candidates":
        # Positives sit in the gold page's slice of the flattened [P·N] row; every other cell negative.
        on_gold = F.one_hot(targets[use], cell_score.shape[1]).bool().unsqueeze(-1)  # [U, P, 1]
        wide = on_gold & positives[use].unsqueeze(1)
        local = multi_positive_infonce(
            cell_score[use].flatten(1), wide.flatten(1), tau_local
        ).mean()
    else:
        local = multi_positive_infonce(gold[use], positives[use], tau_local).mean()
    return LossOutput(global_ + lambda_local * local, global_, local, int(has_box.sum()), n_pseudo)
