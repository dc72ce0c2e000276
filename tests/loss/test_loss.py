"""Hybrid losses on hand-made tensors with known answers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from components.loss.contrastive import (
    global_infonce,
    hybrid_loss,
    multi_positive_infonce,
    pseudo_label_mask,
)


def test_global_infonce_known_values():
    aligned = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    targets = torch.tensor([0, 1])
    low = global_infonce(aligned, targets, tau=0.02)
    assert float(low) < 1e-6
    # Equal scores: loss = log(number of candidates), whatever tau.
    flat = global_infonce(torch.zeros(2, 3), targets, tau=0.02)
    assert float(flat) == pytest.approx(math.log(3))
    # Wrong page on top: high loss.
    assert float(global_infonce(aligned, torch.tensor([1, 0]), tau=0.02)) > 40


def test_multi_positive_infonce():
    scores = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    pos = torch.tensor([[True, True, False, False]])
    loss = multi_positive_infonce(scores, pos, tau=0.05)
    # Both positives share almost all mass: -log(1/2) each.
    assert float(loss[0]) == pytest.approx(math.log(2), abs=1e-3)
    wrong = multi_positive_infonce(scores, ~pos, tau=0.05)
    assert float(wrong[0]) > 30
    # No positives: zero, not NaN.
    assert float(multi_positive_infonce(scores, torch.zeros_like(pos), tau=0.05)[0]) == 0.0


def test_pseudo_label_mask_is_relative_and_gradient_free():
    scores = torch.tensor(
        [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]],
        requires_grad=True,
    )
    mask = pseudo_label_mask(scores, z=1.5)
    assert not mask.requires_grad
    assert mask[0].tolist() == [False] * 7 + [True]  # only the outlier clears mean + 1.5 std
    assert mask[1].all()  # a flat page: every cell ties the threshold
    # A very high z still keeps the best cell.
    assert pseudo_label_mask(scores, z=100.0)[0].tolist() == [False] * 7 + [True]


def _batch():
    # 2 queries x 2 pages x 4 cells; query 0 -> page 0 (labelled cell 1), query 1 -> page 1 (unlabelled).
    scores = torch.tensor(
        [
            [[0.1, 0.9, 0.0, 0.0], [0.0, 0.2, 0.1, 0.0]],
            [[0.0, 0.1, 0.0, 0.2], [0.0, 0.0, 0.8, 0.0]],
        ],
        requires_grad=True,
    )
    targets = torch.tensor([0, 1])
    box = torch.tensor([[False, True, False, False], [False, False, False, False]])
    has_box = torch.tensor([True, False])
    return scores, targets, box, has_box


def _loss(mode: str, step: int, lam: float = 1.0):
    scores, targets, box, has_box = _batch()
    return hybrid_loss(
        scores,
        targets,
        box,
        has_box,
        tau_global=0.02,
        tau_local=0.25,
        lambda_local=lam,
        local_mode=mode,
        step=step,
        warmup_steps=10,
        pseudo_z=1.0,
    ), scores


def test_hybrid_loss_modes_and_warmup():
    none, _ = _loss("none", 100)
    assert none.n_labelled == 0 and none.local.item() == 0.0
    assert float(none.total.detach()) == pytest.approx(float(none.global_.detach()))

    labelled, _ = _loss("labelled", 100)
    assert labelled.n_labelled == 1 and labelled.n_pseudo == 0
    expected_local = -F.log_softmax(torch.tensor([0.1, 0.9, 0.0, 0.0]) / 0.25, -1)[1]
    assert labelled.local.item() == pytest.approx(float(expected_local), rel=1e-5)

    before, _ = _loss("hybrid", 9)
    assert before.n_pseudo == 0 and before.local.item() == pytest.approx(labelled.local.item())
    after, scores = _loss("hybrid", 10)
    assert after.n_pseudo == 1
    # Pseudo positive of query 1 = its gold page's best cell (index 2): local is the mean of both rows.
    pseudo_local = -F.log_softmax(torch.tensor([0.0, 0.0, 0.8, 0.0]) / 0.25, -1)[2]
    assert after.local.item() == pytest.approx(float((expected_local + pseudo_local) / 2), rel=1e-5)
    assert after.total.item() == pytest.approx((after.global_ + after.local).item(), rel=1e-6)
    after.total.backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0

    half, _ = _loss("labelled", 100, lam=0.5)
    assert half.total.item() == pytest.approx((half.global_ + 0.5 * half.local).item(), rel=1e-6)
    with pytest.raises(ValueError):
        _loss("bogus", 0)


def _one_labelled_query(**local) -> dict:
    """hybrid_loss keywords for one query whose gold page is column 0, its box on cell 0 of two."""
    return {
        "targets": torch.tensor([0]),
        "box_cells": torch.tensor([[True, False]]),
        "has_box": torch.tensor([True]),
        "tau_global": 0.02,
        "step": 0,
        "warmup_steps": 0,
        "pseudo_z": 1.5,
        **local,
    }


def test_candidate_negatives_see_other_pages_cells():
    # One query, two candidate pages of two cells; the gold box is cell 0 of page 0.
    # Page 1's cell 1 scores as high as the gold cell: only the cross-page softmax notices.
    scores = torch.tensor([[[1.0, -1.0], [-1.0, 1.0]]])
    common = _one_labelled_query(tau_local=0.1, lambda_local=1.0, local_mode="labelled")
    on_page = hybrid_loss(scores, **common)
    across = hybrid_loss(scores, **common, local_negatives="candidates")
    # Within the gold page the box cell wins outright; across pages it ties with page 1's cell.
    assert float(on_page.local) < 1e-6
    assert float(across.local) == pytest.approx(math.log(2), abs=1e-3)
    assert float(across.global_) == pytest.approx(float(on_page.global_))
    with pytest.raises(ValueError, match="local negatives"):
        hybrid_loss(scores, **common, local_negatives="everything")


def test_global_loss_ranks_the_page_scores_it_is_given():
    # Max-cell scores put page 1 on top; the given page scores put the gold page 0 there.
    scores = torch.tensor([[[0.1, 0.2], [0.9, 0.0]]])
    common = _one_labelled_query(tau_local=0.25, lambda_local=0.0, local_mode="none")
    by_cell = hybrid_loss(scores, **common)
    given = hybrid_loss(scores, page_score=torch.tensor([[0.8, 0.3]]), **common)
    assert float(by_cell.global_) == pytest.approx(
        float(global_infonce(torch.tensor([[0.2, 0.9]]), common["targets"], 0.02))
    )
    assert float(given.global_) == pytest.approx(
        float(global_infonce(torch.tensor([[0.8, 0.3]]), common["targets"], 0.02))
    )
    assert float(given.global_) < 1e-3 < float(by_cell.global_)
