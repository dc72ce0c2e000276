"""Paired comparison of a variant's per-question hits with a reference's on the same questions.

The bench reports each storage mode's R@1 as a ratio to exact search. On a few hundred questions
that ratio moves by several points between runs (ADR 11), so a single number cannot say whether
a bar is met. Both are measured on the same questions, so the uncertainty is paired: a bootstrap
over questions resamples (variant, reference) pairs together, and the questions where the two
disagree are counted (only those move the ratio).
"""

from __future__ import annotations

import numpy as np


def paired_ratio(
    variant: np.ndarray,
    reference: np.ndarray,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """mean(variant) / mean(reference) with a paired percentile-bootstrap interval and disagreement counts.

    ``variant`` and ``reference`` are per-question hits (bool or 0/1) on the same questions.
    ``ratio`` and the interval bounds are None when the reference never hits.
    """
    v = np.asarray(variant, dtype=bool).ravel()
    r = np.asarray(reference, dtype=bool).ravel()
    if v.shape != r.shape:
        raise ValueError(f"paired hits need the same questions: {v.shape} vs {r.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    out = {
        "questions": len(v),
        "variant_only": int(
            (v & ~r).sum()
        ),  # questions the variant gets right and the reference not
        "reference_only": int((r & ~v).sum()),
        "ratio": float(v.sum() / r.sum()) if r.any() else None,
        "ci_low": None,
        "ci_high": None,
        "ci_level": level,
        "resamples": resamples,
    }
    if not r.any() or resamples < 1:
        return out
    rng = np.random.default_rng(seed)
    ratios = np.empty(resamples)
    # Resample in blocks of rows to bound the index matrix at large question counts.
    block = max(1, 2_000_000 // len(v))
    for start in range(0, resamples, block):
        rows = rng.integers(0, len(v), size=(min(block, resamples - start), len(v)))
        ref_hits = r[rows].sum(1)
        ratios[start : start + len(rows)] = np.where(
            ref_hits > 0, v[rows].sum(1) / np.maximum(ref_hits, 1), np.nan
        )
    ratios = ratios[~np.isnan(ratios)]
    tail = (1 - level) / 2 * 100
    out["ci_low"], out["ci_high"] = (float(x) for x in np.percentile(ratios, [tail, 100 - tail]))
    return out


def paired_difference(
    variant: np.ndarray,
    reference: np.ndarray,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """mean(variant) − mean(reference) over seeds × questions, with a two-level bootstrap interval.

    ``variant`` and ``reference`` are per-question scores [seeds, questions]: row s of each comes
    from the models trained with seed s, column j is the same question everywhere. Each resample
    draws seeds with replacement, then questions with replacement (the same questions for every
    drawn seed), so the interval carries both the seed-to-seed and the question sampling spread.
    With one seed it is the paired question bootstrap.
    """
    v = np.atleast_2d(np.asarray(variant, dtype=np.float64))
    r = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    if v.shape != r.shape:
        raise ValueError(f"paired scores need the same seeds and questions: {v.shape} vs {r.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n_seeds, n_q = v.shape
    diff = v - r
    out = {
        "seeds": n_seeds,
        "questions": n_q,
        "difference": float(diff.mean()) if diff.size else None,
        "per_seed": [float(x) for x in diff.mean(1)] if n_q else [],
        "variant_only": int((v > r).sum()),
        "reference_only": int((r > v).sum()),
        "ci_low": None,
        "ci_high": None,
        "ci_level": level,
        "resamples": resamples,
    }
    if not diff.size or resamples < 1:
        return out
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    # Resamples in blocks, so the [seeds, block, questions] gather stays bounded.
    block = max(1, 2_000_000 // (n_q * n_seeds))
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        picks = rng.integers(0, n_q, size=(size, n_q))
        per_seed = (
            diff[:, picks].mean(2).T
        )  # [size, seeds]: each seed's mean difference on those questions
        seeds = rng.integers(0, n_seeds, size=(size, n_seeds))
        stats[start : start + size] = np.take_along_axis(per_seed, seeds, 1).mean(1)
    tail = (1 - level) / 2 * 100
    out["ci_low"], out["ci_high"] = (float(x) for x in np.percentile(stats, [tail, 100 - tail]))
    return out
