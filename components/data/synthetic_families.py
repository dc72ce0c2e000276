"""Draw the synthetic corpus's document families (shared company, layout and style; near-duplicate
documents) and split them into train, val and test by family."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from components.config import Params
from components.data import synthetic_vocab as vocab
from components.data.elements import Style
from components.data.render import available_faces

COLLECTION = "synthetic"


@dataclass
class Family:
    index: int
    company: str
    doctype: str
    style: Style
    size: tuple[int, int]
    plans: list[list[list[str]]]  # page -> rows -> element kinds
    metrics: list[tuple[str, list[str], tuple[int, int]]]
    regions: list[str]
    months: list[tuple[str, str]]
    kinds: list[str]
    base_year: int
    docs: list[Doc] = field(default_factory=list)
    split: str = "train"


@dataclass
class Doc:
    family: Family
    name: str
    year: int
    n_pages: int


def draw_family(
    index: int, params: Params, rng: random.Random, faces: list[str], companies: set[str]
) -> Family:
    w, h = params.data.page_size
    if rng.random() < 0.15:  # some landscape documents: several page sizes and aspect ratios
        w, h = h, w
    scale = min(w, h) / 612
    face = rng.choice([f for f in faces if not f.endswith("-bold")])
    size = max(6, round(rng.uniform(8.5, 10.5) * scale))
    style = Style(
        face=face,
        size=size,
        title_size=max(9, round(size * rng.uniform(1.6, 2.0))),
        accent=rng.choice(
            [(30, 70, 140), (150, 40, 40), (30, 110, 70), (110, 60, 130), (170, 100, 20)]
        ),
    )
    doctype = rng.choice(sorted(vocab.DOC_PLANS))
    company = vocab.company(rng)
    for _ in range(100):
        if company not in companies:
            break
        company = vocab.company(rng)
    else:  # the name space (~2.7k) is used up, as in 10k-page bench corpora: number the repeat
        base, k = company, 2
        while f"{base} {k}" in companies:
            k += 1
        company = f"{base} {k}"
    companies.add(company)
    n_pages = rng.randint(1, params.data.max_pages_per_doc)
    plans = []
    for _ in range(n_pages):
        pool = list(vocab.DOC_PLANS[doctype])
        rng.shuffle(pool)
        plans.append(pool[: rng.randint(3, 4)])
    return Family(
        index=index,
        company=company,
        doctype=doctype,
        style=style,
        size=(w, h),
        plans=plans,
        metrics=rng.sample(vocab.METRICS, rng.randint(4, 5)),
        regions=rng.sample(vocab.REGIONS, rng.randint(4, 5)),
        months=vocab.MONTHS[: rng.randint(5, 7)],
        kinds=rng.sample(sorted(vocab.KIND_NOUNS), 2),
        base_year=rng.randint(2008, 2021),
    )


def draw_families(params: Params) -> list[Family]:
    """Group n_docs documents into families of 1-3 near-duplicate documents."""
    rng = random.Random(f"{params.seed}:families")
    faces = available_faces()
    families: list[Family] = []
    companies: set[str] = set()
    remaining = params.data.n_docs
    while remaining > 0:
        size = min(remaining, rng.choice([1, 2, 2, 3]))
        fam = draw_family(
            len(families),
            params,
            random.Random(f"{params.seed}:family:{len(families)}"),
            faces,
            companies,
        )
        families.append(fam)
        remaining -= size
        for k in range(size):
            fam.docs.append(Doc(fam, "", fam.base_year + k, len(fam.plans)))
    # doc names are numbered in corpus order
    n = 0
    for fam in families:
        for doc in fam.docs:
            doc.name = f"{COLLECTION}/{fam.doctype}_{n:04d}"
            n += 1
    _assign_splits(families, params, rng)
    return families


def _assign_splits(families: list[Family], params: Params, rng: random.Random) -> None:
    """Split by family (so near-duplicates stay together), aiming at the doc fractions in params."""
    order = list(families)
    rng.shuffle(order)
    total = sum(len(f.docs) for f in families)
    targets = {"test": params.data.test_fraction * total, "val": params.data.val_fraction * total}
    counts = {"test": 0, "val": 0}
    for fam in order:
        fam.split = "train"
        for split in ("test", "val"):
            # take the family while it brings the split closer to its target
            if targets[split] > 0 and abs(counts[split] + len(fam.docs) - targets[split]) < abs(
                counts[split] - targets[split]
            ):
                fam.split = split
                counts[split] += len(fam.docs)
                break
