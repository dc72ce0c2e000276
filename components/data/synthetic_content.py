"""Build the elements of one synthetic document (title, tables, charts, forms, prose, lists and
entity cards), each with the facts its questions ask about."""

from __future__ import annotations

import random
from dataclasses import dataclass

from components.data import synthetic_vocab as vocab
from components.data.elements import (
    BarChart,
    BulletList,
    EntityCard,
    Fact,
    Form,
    LineChart,
    Paragraph,
    Table,
    Title,
    number_answers,
)
from components.data.synthetic_families import Doc


@dataclass
class Entity:
    name: str
    kind: str
    facts: list[tuple[str, str]]  # (label on the card, value)
    keys: list[str]  # template key per fact
    picture_seed: str


def draw_entity(rng: random.Random, kind: str, used: set[str], seed: int) -> Entity:
    for _ in range(100):
        stem = rng.choice(vocab.SYL_A) + rng.choice(vocab.SYL_B)
        noun = rng.choice(vocab.KIND_NOUNS[kind])
        name = {
            "building": f"{stem} {noun}",
            "bird": f"{rng.choice(vocab.COLOURS)} {stem.capitalize()}{noun}",
            "ship": f"{noun} {stem}",
            "painting": f"The {noun} at {stem}",
        }[kind]
        if name not in used:
            used.add(name)
            break
    year = str(rng.randint(1650, 1990))
    facts = {
        "building": [
            ("Built", year, "built"),
            ("Architect", vocab.person(rng), "architect"),
            ("City", vocab.place(rng), "city"),
        ],
        "bird": [
            ("Wingspan", f"{rng.randint(14, 180)} cm", "wingspan"),
            ("Habitat", rng.choice(vocab.HABITATS), "habitat"),
            ("First described", year, "described"),
        ],
        "ship": [
            ("Launched", year, "launched"),
            ("Home port", vocab.place(rng), "port"),
            ("Length", f"{rng.randint(30, 320)} m", "length"),
        ],
        "painting": [
            ("Painted", year, "painted"),
            ("Artist", vocab.person(rng), "artist"),
            ("Museum", f"{vocab.place(rng)} Museum of Art", "museum"),
        ],
    }[kind]
    return Entity(
        name,
        kind,
        [(label, value) for label, value, _ in facts],
        [f"entity/{kind}/{key}" for _, _, key in facts],
        picture_seed=f"{seed}:{name}",
    )


def entity_fact_answers(value: str) -> list[str]:
    # "120 cm" may be answered "120"
    parts = value.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1] in {"cm", "m"}:
        return [value, parts[0]]
    return [value]


class DocContent:
    """Builds the elements of one document; every value comes from the document's own rng."""

    def __init__(self, doc: Doc, seed: int, entities_used: set[str]):
        self.doc, self.fam = doc, doc.family
        self.rng = random.Random(f"{seed}:doc:{doc.name}")
        self.seed, self.entities_used = seed, entities_used
        self.base = {"company": self.fam.company, "year": str(doc.year)}

    def _fact(self, key: str, answers: list[str], **slots: str) -> Fact:
        return Fact(key=key, slots={**self.base, **slots}, answers=answers)

    def title(self, page: int) -> Title:
        name = vocab.PAGE_TITLES[self.fam.doctype][min(page, 1)]
        return Title(
            f"{self.fam.company} - {name} {self.doc.year}",
            f"Prepared by {vocab.person(self.rng)}, {vocab.place(self.rng)} office",
        )

    def table(self) -> Table:
        rng = self.rng
        cols = ["Q1", "Q2", "Q3", "Q4"]
        rows, facts = [], {}
        for r, (label, syns, (lo, hi)) in enumerate(self.fam.metrics):
            values = [rng.randint(lo, hi) for _ in cols]
            rows.append([label] + [f"{v:,}" for v in values])
            for k, (col, v) in enumerate(zip(cols, values)):
                facts[(r, k + 1)] = self._fact(
                    "table",
                    number_answers(f"{v:,}"),
                    label=label.lower(),
                    syn=rng.choice(syns),
                    col=col,
                )
        return Table(f"Key figures {self.doc.year} (thousands)", ["Metric"] + cols, rows, facts)

    def bar(self) -> BarChart:
        values = [self.rng.randint(120, 9800) for _ in self.fam.regions]
        facts = [
            self._fact("bar", number_answers(f"{v:,}"), region=r)
            for r, v in zip(self.fam.regions, values)
        ]
        return BarChart(
            f"Units shipped by region, {self.doc.year}", self.fam.regions, values, facts
        )

    def line(self) -> LineChart:
        v = self.rng.randint(2000, 60000)
        values = []
        for _ in self.fam.months:
            v = max(500, int(v * self.rng.uniform(0.85, 1.2)))
            values.append(v)
        facts = [
            self._fact("line", number_answers(f"{x:,}"), month=full)
            for (_, full), x in zip(self.fam.months, values)
        ]
        return LineChart(
            f"Monthly active users, {self.doc.year}", [m for m, _ in self.fam.months], values, facts
        )

    def form(self) -> Form:
        rng = self.rng
        contact, number = vocab.person(rng), f"FN-{rng.randint(10000, 99999)}"
        auditor, office = f"{vocab.company(rng).split()[0]} Audit", vocab.place(rng)
        fields = [
            ("Company", self.fam.company, None),
            ("Filing year", str(self.doc.year), None),
            ("Contact person", contact, self._fact("form/contact", [contact])),
            ("Filing number", number, self._fact("form/number", [number])),
            ("Auditor", auditor, self._fact("form/auditor", [auditor])),
            ("Registered office", office, self._fact("form/office", [office])),
        ]
        return Form(f"Annual filing {self.doc.year}", fields)

    def paragraph(self, columns: int) -> Paragraph:
        rng = self.rng
        city, staff = vocab.place(rng), rng.randint(8, 450)
        partner, amount = vocab.company(rng), f"{rng.randint(2, 90)}.{rng.randint(1, 9)}"
        project, lead = rng.choice(vocab.PROJECTS), vocab.person(rng)
        facts = [
            (
                f"In {self.doc.year}, {self.fam.company} opened a new office in {city} with {staff} staff.",
                self._fact("para/office", [str(staff)], city=city),
            ),
            (
                f"{self.fam.company} signed a supply agreement with {partner} worth {amount} million.",
                self._fact("para/deal", [f"{amount} million", amount], partner=partner),
            ),
            (
                f"The {project} project was led by {lead}.",
                self._fact("para/lead", [lead], project=project),
            ),
        ]
        sentences: list[tuple[str, Fact | None]] = [
            (
                rng.choice(vocab.FILLER).format(
                    topic=rng.choice(vocab.TOPICS),
                    q=rng.choice(["Q1", "Q2", "Q3", "Q4"]),
                    company=self.fam.company,
                ),
                None,
            )
            for _ in range(rng.randint(3, 6))
        ]
        for fact in rng.sample(facts, rng.randint(1, 3)):
            sentences.insert(rng.randint(0, len(sentences)), fact)
        return Paragraph(
            rng.choice(["Overview", "Highlights of the year", "Management commentary", None]),
            sentences,
            columns,
        )

    def bullet_list(self) -> BulletList:
        rng = self.rng
        items = [
            rng.choice(vocab.LIST_ITEMS).format(
                city=vocab.place(rng),
                project=rng.choice(vocab.PROJECTS),
                partner=vocab.company(rng),
                n=rng.randint(3, 60),
                p=rng.randint(2, 40),
                topic=rng.choice(vocab.TOPICS),
            )
            for _ in range(rng.randint(3, 5))
        ]
        return BulletList(rng.choice(["Key events", "Milestones", "At a glance"]), items)

    def card(self, slot: int) -> EntityCard:
        kind = self.fam.kinds[slot % len(self.fam.kinds)]
        entity = draw_entity(self.rng, kind, self.entities_used, self.seed)
        facts = [
            Fact(
                key=key,
                slots={**self.base, "name": entity.name},
                answers=entity_fact_answers(value),
                entity=entity,
            )
            for key, (_, value) in zip(entity.keys, entity.facts)
        ]
        return EntityCard(entity, facts)

    def element(self, kind: str, slot: int):
        if kind == "paragraph1":
            return self.paragraph(1)
        if kind == "paragraph2":
            return self.paragraph(2)
        if kind == "card":
            return self.card(slot)
        if kind == "list":
            return self.bullet_list()
        return getattr(self, kind)()
