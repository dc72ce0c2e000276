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


def test_paired_difference_mean_per_seed_and_interval():
    from components.evaluation.paired import paired_difference

    rng = np.random.default_rng(3)
    reference = rng.random((3, 400)) < 0.5
    variant = reference.copy()
    variant[:, :40] = True  # the variant also gets the first 40 questions right
    got = paired_difference(variant, reference, resamples=500)
    expected = (variant.astype(float) - reference).mean()
    assert got["difference"] == pytest.approx(expected)
    assert got["per_seed"] == pytest.approx(list((variant.astype(float) - reference).mean(1)))
    assert got["variant_only"] == int((variant & ~reference).sum()) and got["reference_only"] == 0
    assert got["ci_low"] <= expected <= got["ci_high"] and got["ci_low"] > 0  # strictly better
    # Identical systems: a zero difference with a zero-width interval.
    same = paired_difference(reference, reference, resamples=200)
    assert same["difference"] == 0 and same["ci_low"] == same["ci_high"] == 0
    # A seed that disagrees widens the interval: seed spread is part of it.
    mixed = variant.astype(float).copy()
    mixed[2] = reference[2] - 0.3 * (rng.random(400) < 0.5)
    wide = paired_difference(mixed, reference, resamples=500)
    assert wide["ci_high"] - wide["ci_low"] > got["ci_high"] - got["ci_low"]
    with pytest.raises(ValueError):
        paired_difference(variant[:, :10], reference)


def test_paired_difference_of_one_seed_is_the_question_bootstrap():
    from components.evaluation.paired import paired_difference

    rng = np.random.default_rng(0)
    a, b = rng.random(300) < 0.6, rng.random(300) < 0.5
    got = paired_difference(a, b, resamples=2000)
    d = a.astype(float) - b
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert got["seeds"] == 1 and got["ci_high"] - got["ci_low"] == pytest.approx(
        2 * 1.96 * se, rel=0.15
    )
