"""Phrase the questions of one rendered synthetic page: facts picked across question types, each
asked with a template, held-out templates never on a train page."""

from __future__ import annotations

import random
from typing import Any

from components.data.elements import Fact
from components.data.questions import TEMPLATES, fill, question_type
from components.data.synthetic_pages import RenderedPage


def questions_for_page(
    rendered: RenderedPage,
    n: int,
    heldout: set[str],
    rng: random.Random,
    hard_negatives: list[str],
) -> list[dict[str, Any]]:
    """Pick up to ``n`` facts of the page (spread over types) and phrase a question for each."""
    page = rendered.page
    is_train = page.split == "train"
    by_type: dict[str, list[tuple[Fact, bool, list[str]]]] = {}
    for fact, _ in rendered.facts:
        variants = [False] + ([True] if fact.key.startswith("entity/") else [])
        for image in variants:
            ids = [
                f"{'image:' if image else ''}{fact.key}/{i}"
                for i in range(len(TEMPLATES[fact.key]))
            ]
            allowed = [t for t in ids if not (is_train and t in heldout)]
            if allowed:
                by_type.setdefault(question_type(fact.key, image), []).append(
                    (fact, image, allowed)
                )
    types = sorted(by_type)
    rng.shuffle(types)
    for t in types:
        rng.shuffle(by_type[t])
    chosen: list[tuple[Fact, bool, list[str]]] = []
    used: set[int] = set()
    while len(chosen) < n and any(by_type[t] for t in types):
        for t in types:
            while by_type[t] and id(by_type[t][-1][0]) in used:
                by_type[t].pop()
            if by_type[t] and len(chosen) < n:
                item = by_type[t].pop()
                used.add(id(item[0]))
                chosen.append(item)
    out = []
    for fact, image, allowed in chosen:
        template_id = rng.choice(allowed)
        phrasing = TEMPLATES[fact.key][int(template_id.rsplit("/", 1)[1])]
        block = page.blocks[fact.slots["_block"]]
        slots = {k: v for k, v in fact.slots.items() if not k.startswith("_")}
        out.append(
            {
                "question": fill(phrasing, slots, image_kind=fact.entity.kind if image else None),
                "answers": list(fact.answers),
                "doc": page.doc,
                "page": page.page,
                "box": list(block.box),
                "type": question_type(fact.key, image),
                "split": page.split,
                "hard_negatives": list(hard_negatives),
                "entity": fact.entity.name if fact.entity is not None else None,
                "template": template_id,
                "heldout_template": template_id in heldout,
                "_answer_box_px": fact.answer_box,
                "_picture_seed": fact.entity.picture_seed if image else None,
            }
        )
    return out
