"""Paired ratio of per-question hits (the bench's accuracy ratios and their uncertainty)."""

import numpy as np
import pytest

from components.evaluation.paired import paired_ratio


def test_counts_disagreements_and_brackets_the_ratio():
    rng = np.random.default_rng(1)
    reference = rng.random(2000) < 0.3
    variant = reference.copy()
    flip = rng.choice(2000, 60, replace=False)
    variant[flip] = ~variant[flip]
    out = paired_ratio(variant, reference, resamples=500)
    assert out["questions"] == 2000
    assert out["variant_only"] == int((variant & ~reference).sum()) > 0
    assert out["reference_only"] == int((reference & ~variant).sum()) > 0
    assert out["ratio"] == pytest.approx(variant.sum() / reference.sum())
    assert out["ci_low"] < out["ratio"] < out["ci_high"]
    # Paired: only the 60 flipped questions move the ratio, so the interval is far narrower
    # than the same hit rates drawn independently would give.
    assert out["ci_high"] - out["ci_low"] < 0.06


def test_identical_hits_give_a_degenerate_interval_and_more_questions_narrow_it():
    hits = np.arange(300) % 3 == 0
    same = paired_ratio(hits, hits)
    assert same["ratio"] == same["ci_low"] == same["ci_high"] == 1.0
    assert same["variant_only"] == same["reference_only"] == 0
    rng = np.random.default_rng(2)
    widths = []
    for n in (300, 3000):
        ref = rng.random(n) < 0.3
        var = ref & (rng.random(n) < 0.9)
        out = paired_ratio(var, ref, resamples=400)
        widths.append(out["ci_high"] - out["ci_low"])
    assert widths[1] < widths[0] / 2


def test_reference_without_hits_and_mismatched_lengths():
    out = paired_ratio([True, False], [False, False])
    assert out["ratio"] is None and out["ci_low"] is None and out["variant_only"] == 1
    with pytest.raises(ValueError, match="same questions"):
        paired_ratio([True], [True, False])
