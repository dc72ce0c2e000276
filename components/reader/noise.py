"""Noise injection for reader training (RORA-VLM): a share ρ of the k contexts are distractors.

Non-distractor contexts are the gold block and other blocks of the gold page (what a correct
retrieval returns around the evidence). Distractors are blocks of other pages: hard negatives
(near-duplicate pages the generator or the retriever names) for a share of them, random other
pages for the rest. The number of distractors per example is ⌊ρk⌋ plus one with probability
frac(ρk), so the expected share is exactly ρ; the gold context is always kept unless the example
is drawn as a "no answer" example. Positions are shuffled.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

Slot = tuple[str, tuple[float, float, float, float]]  # (page id, box)


@dataclass(frozen=True)
class NoiseSpec:
    k: int
    rho: float
    hard_share: float = 0.5
    no_answer_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.k < 1 or not 0 <= self.rho <= 1 or not 0 <= self.hard_share <= 1:
            raise ValueError(f"bad noise spec {self}: k >= 1, rho and hard_share in [0, 1]")
        if not 0 <= self.no_answer_fraction < 1:
            raise ValueError(f"no_answer_fraction must be in [0, 1), got {self.no_answer_fraction}")

    def n_distractors(self, rng: random.Random) -> int:
        exact = self.rho * self.k
        n = math.floor(exact) + (rng.random() < exact - math.floor(exact))
        return min(n, self.k - 1)  # the gold context stays


def sample_contexts(
    gold: Slot,
    same_page: list[Slot],
    hard_pool: list[Slot],
    random_pool: list[Slot],
    spec: NoiseSpec,
    rng: random.Random,
) -> tuple[list[Slot], list[bool], int]:
    """Shuffled k slots, which of them is gold, and how many are distractors.

    ``same_page``: the gold page's other blocks; ``hard_pool``/``random_pool``: blocks of other pages.
    """
    if not random_pool and not hard_pool:
        raise ValueError("no distractor pool: noise injection needs blocks of other pages")
    no_answer = spec.no_answer_fraction > 0 and rng.random() < spec.no_answer_fraction
    n_noise = spec.k if no_answer else spec.n_distractors(rng)
    clean = (
        []
        if no_answer
        else [gold] + rng.sample(same_page, min(len(same_page), spec.k - 1 - n_noise))
    )
    # Too few blocks on the gold page: the remaining slots are distractors too.
    n_noise = spec.k - len(clean)
    noise: list[Slot] = []
    for _ in range(n_noise):
        use_hard = hard_pool and (not random_pool or rng.random() < spec.hard_share)
        pool = hard_pool if use_hard else random_pool
        noise.append(pool[rng.randrange(len(pool))])
    slots = clean + noise
    gold_flags = [i == 0 and not no_answer for i in range(len(slots))]
    order = list(range(len(slots)))
    rng.shuffle(order)
    return [slots[i] for i in order], [gold_flags[i] for i in order], n_noise
