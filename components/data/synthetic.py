"""The seeded synthetic corpus (docs/design.md §4): visually rich pages rendered with Pillow, their
text layer, and questions with answers and evidence boxes.

Documents come in *families*: the documents of one family share a company, layout, table rows,
chart categories and form fields, but differ in year, values, people and entities. Sibling pages
are near-duplicates (``Question.hard_negatives``), so keyword matching alone cannot find the
right page. Splits are drawn per family, so near-duplicates never straddle train and test.

Output (all deterministic for a seed + params; no timestamps)::

    images/<doc>/<page>.png, query_images/<question id>.png,
    pages.jsonl, questions.jsonl, manifest.json

Over 400 lines on purpose: the page templates (tables, charts, forms, prose) and their question
writers share one seeded layout model; each template is a short function.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import Params
from components.data.corpus import save_corpus_tables
from components.data.elements import (
    BarChart,
    BulletList,
    EntityCard,
    Fact,
    Form,
    LineChart,
    Paragraph,
    Style,
    Table,
    Title,
    number_answers,
)
from components.data.questions import (
    TEMPLATES,
    fill,
    heldout_templates,
    question_type,
    template_ids,
)
from components.data.render import Canvas, available_faces, perturbed_query
from components.data.schema import Block, Page, Question, Word, page_id

GENERATOR_VERSION = 1
COLLECTION = "synthetic"

# --- vocabulary -------------------------------------------------------------------------------

_SYL_A = [
    "Nor",
    "Alt",
    "Bel",
    "Cor",
    "Dal",
    "Est",
    "Fen",
    "Gar",
    "Hal",
    "Ist",
    "Jun",
    "Kel",
    "Lum",
    "Mar",
    "Nev",
    "Ost",
    "Pra",
    "Quin",
    "Ros",
    "Sol",
    "Tor",
    "Ulv",
    "Ver",
    "Wen",
    "Yar",
    "Zel",
    "Bram",
    "Cask",
]
_SYL_B = [
    "vale",
    "bridge",
    "mont",
    "stead",
    "wick",
    "haven",
    "ford",
    "gate",
    "field",
    "crest",
    "moor",
    "ley",
]
_CO_TYPE = [
    "Group",
    "Holdings",
    "Industries",
    "Partners",
    "Logistics",
    "Energy",
    "Systems",
    "Works",
]
_PLACE_A = [
    "Ar",
    "Bel",
    "Cal",
    "Dor",
    "El",
    "Fal",
    "Gor",
    "Hel",
    "Ith",
    "Kar",
    "Lor",
    "Mor",
    "Nal",
    "Or",
    "Pel",
    "Ral",
    "Sor",
    "Tal",
    "Ul",
    "Val",
]
_PLACE_B = ["mouth", "stad", "heim", "dale", "port", "burg", "wick", "ton", "mere", "by"]
_FIRST = [
    "Ada",
    "Bruno",
    "Clara",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Keiko",
    "Lars",
    "Maya",
    "Nils",
    "Olga",
    "Pavel",
    "Rosa",
    "Samir",
    "Tessa",
    "Viktor",
    "Wanda",
    "Yusuf",
]
_LAST = [
    "Albers",
    "Brandt",
    "Costa",
    "Dahl",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Holm",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Sato",
    "Tanaka",
]
_PROJECTS = [
    "Atlas",
    "Beacon",
    "Cobalt",
    "Delta",
    "Ember",
    "Falcon",
    "Granite",
    "Harbor",
    "Ion",
    "Juniper",
    "Keystone",
    "Lantern",
    "Meridian",
    "Nimbus",
    "Orchid",
    "Pioneer",
    "Quartz",
    "Ridge",
    "Summit",
]
_HABITATS = [
    "wetlands",
    "coastal cliffs",
    "pine forest",
    "open grassland",
    "river valleys",
    "mountain scrub",
    "mangroves",
    "tundra",
    "reed beds",
    "oak woodland",
]
_TOPICS = [
    "customer service",
    "supply chain resilience",
    "digital tools",
    "staff training",
    "energy efficiency",
    "regional expansion",
    "product quality",
    "data security",
    "logistics costs",
    "partner networks",
]
_FILLER = [
    "The board reviewed {topic} at its {q} meeting.",
    "Management expects {topic} to improve further next year.",
    "{company} continued to invest in {topic} across all sites.",
    "Progress on {topic} was discussed with shareholders in {q}.",
    "A new committee now oversees {topic} and reports twice a year.",
    "Several teams were reorganised to focus on {topic}.",
    "External advisers assessed {topic} and found no material issues.",
]
_LIST_ITEMS = [
    "Expanded operations into {city}",
    "Launched the {project} programme",
    "Renewed the contract with {partner}",
    "Hired {n} new engineers",
    "Reduced waste by {p} percent",
    "Opened a training centre in {city}",
    "Completed the audit of {topic}",
    "Moved the archive to {city}",
]
# page label, paraphrases used by questions, value range
_METRICS = [
    ("Revenue", ["income", "sales", "turnover"], (2000, 90000)),
    ("Operating cost", ["operating expenses", "running costs"], (1000, 60000)),
    ("Net profit", ["net earnings", "bottom line"], (100, 9000)),
    ("Headcount", ["number of employees", "staff size"], (40, 5000)),
    ("Customers", ["client count", "number of clients"], (300, 80000)),
    ("Capital expenditure", ["capex", "investment spending"], (100, 20000)),
    ("Energy use", ["energy consumption", "power usage"], (50, 9000)),
    ("Orders", ["purchase orders", "bookings"], (100, 40000)),
]
_REGIONS = ["North", "South", "East", "West", "Central", "Coastal", "Highland"]
_MONTHS = [
    ("Jan", "January"),
    ("Feb", "February"),
    ("Mar", "March"),
    ("Apr", "April"),
    ("May", "May"),
    ("Jun", "June"),
    ("Jul", "July"),
    ("Aug", "August"),
]
_KIND_NOUNS = {
    "building": ["Tower", "Hall", "Castle", "Library", "Observatory", "Abbey", "Lighthouse"],
    "bird": ["bill", "wing", "crest", "tail", "finch", "warbler"],
    "ship": ["MS", "SS", "HMS"],
    "painting": ["Harvest", "Storm", "Garden", "Harbour", "Feast", "Bridge", "Orchard"],
}
_COLOURS = [
    "Amber",
    "Azure",
    "Crimson",
    "Dusky",
    "Golden",
    "Ivory",
    "Olive",
    "Russet",
    "Slate",
    "Violet",
]
_DOC_PLANS = {
    # doc type -> row pool (each row: 1-3 elements side by side)
    "report": [["paragraph2"], ["table"], ["bar"], ["line"], ["bar", "form"], ["list", "card"]],
    "filing": [["form"], ["paragraph1"], ["table"], ["form", "list"], ["line"], ["paragraph2"]],
    "catalogue": [
        ["card", "card"],
        ["card", "card", "card"],
        ["paragraph2"],
        ["list", "card"],
        ["card", "bar"],
    ],
    "bulletin": [
        ["paragraph2"],
        ["card", "bar"],
        ["line"],
        ["form", "card"],
        ["table"],
        ["list", "form"],
    ],
}
_PAGE_TITLES = {
    "report": ["Annual report", "Operations review"],
    "filing": ["Annual filing", "Supplementary statement"],
    "catalogue": ["Collection catalogue", "Catalogue, continued"],
    "bulletin": ["News bulletin", "Bulletin, part two"],
}


def _place(rng: random.Random) -> str:
    return rng.choice(_PLACE_A) + rng.choice(_PLACE_B)


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _company(rng: random.Random) -> str:
    return f"{rng.choice(_SYL_A)}{rng.choice(_SYL_B)} {rng.choice(_CO_TYPE)}"


# --- entities ---------------------------------------------------------------------------------


@dataclass
class Entity:
    name: str
    kind: str
    facts: list[tuple[str, str]]  # (label on the card, value)
    keys: list[str]  # template key per fact
    picture_seed: str


def _entity(rng: random.Random, kind: str, used: set[str], seed: int) -> Entity:
    for _ in range(100):
        stem = rng.choice(_SYL_A) + rng.choice(_SYL_B)
        noun = rng.choice(_KIND_NOUNS[kind])
        name = {
            "building": f"{stem} {noun}",
            "bird": f"{rng.choice(_COLOURS)} {stem.capitalize()}{noun}",
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
            ("Architect", _person(rng), "architect"),
            ("City", _place(rng), "city"),
        ],
        "bird": [
            ("Wingspan", f"{rng.randint(14, 180)} cm", "wingspan"),
            ("Habitat", rng.choice(_HABITATS), "habitat"),
            ("First described", year, "described"),
        ],
        "ship": [
            ("Launched", year, "launched"),
            ("Home port", _place(rng), "port"),
            ("Length", f"{rng.randint(30, 320)} m", "length"),
        ],
        "painting": [
            ("Painted", year, "painted"),
            ("Artist", _person(rng), "artist"),
            ("Museum", f"{_place(rng)} Museum of Art", "museum"),
        ],
    }[kind]
    return Entity(
        name,
        kind,
        [(label, value) for label, value, _ in facts],
        [f"entity/{kind}/{key}" for _, _, key in facts],
        picture_seed=f"{seed}:{name}",
    )


def _entity_fact_answers(value: str) -> list[str]:
    # "120 cm" may be answered "120"
    parts = value.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1] in {"cm", "m"}:
        return [value, parts[0]]
    return [value]


# --- families and documents -------------------------------------------------------------------


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


def _family(
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
    doctype = rng.choice(sorted(_DOC_PLANS))
    company = _company(rng)
    for _ in range(100):
        if company not in companies:
            break
        company = _company(rng)
    else:  # the name space (~2.7k) is used up, as in 10k-page bench corpora: number the repeat
        base, k = company, 2
        while f"{base} {k}" in companies:
            k += 1
        company = f"{base} {k}"
    companies.add(company)
    n_pages = rng.randint(1, params.data.max_pages_per_doc)
    plans = []
    for _ in range(n_pages):
        pool = list(_DOC_PLANS[doctype])
        rng.shuffle(pool)
        plans.append(pool[: rng.randint(3, 4)])
    return Family(
        index=index,
        company=company,
        doctype=doctype,
        style=style,
        size=(w, h),
        plans=plans,
        metrics=rng.sample(_METRICS, rng.randint(4, 5)),
        regions=rng.sample(_REGIONS, rng.randint(4, 5)),
        months=_MONTHS[: rng.randint(5, 7)],
        kinds=rng.sample(sorted(_KIND_NOUNS), 2),
        base_year=rng.randint(2008, 2021),
    )


def _families(params: Params) -> list[Family]:
    """Group n_docs documents into families of 1-3 near-duplicate documents."""
    rng = random.Random(f"{params.seed}:families")
    faces = available_faces()
    families: list[Family] = []
    companies: set[str] = set()
    remaining = params.data.n_docs
    while remaining > 0:
        size = min(remaining, rng.choice([1, 2, 2, 3]))
        fam = _family(
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


# --- elements per document --------------------------------------------------------------------


class _DocContent:
    """Builds the elements of one document; every value comes from the document's own rng."""

    def __init__(self, doc: Doc, seed: int, entities_used: set[str]):
        self.doc, self.fam = doc, doc.family
        self.rng = random.Random(f"{seed}:doc:{doc.name}")
        self.seed, self.entities_used = seed, entities_used
        self.base = {"company": self.fam.company, "year": str(doc.year)}

    def _fact(self, key: str, answers: list[str], **slots: str) -> Fact:
        return Fact(key=key, slots={**self.base, **slots}, answers=answers)

    def title(self, page: int) -> Title:
        name = _PAGE_TITLES[self.fam.doctype][min(page, 1)]
        return Title(
            f"{self.fam.company} - {name} {self.doc.year}",
            f"Prepared by {_person(self.rng)}, {_place(self.rng)} office",
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
        contact, number = _person(rng), f"FN-{rng.randint(10000, 99999)}"
        auditor, office = f"{_company(rng).split()[0]} Audit", _place(rng)
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
        city, staff = _place(rng), rng.randint(8, 450)
        partner, amount = _company(rng), f"{rng.randint(2, 90)}.{rng.randint(1, 9)}"
        project, lead = rng.choice(_PROJECTS), _person(rng)
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
                rng.choice(_FILLER).format(
                    topic=rng.choice(_TOPICS),
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
            rng.choice(_LIST_ITEMS).format(
                city=_place(rng),
                project=rng.choice(_PROJECTS),
                partner=_company(rng),
                n=rng.randint(3, 60),
                p=rng.randint(2, 40),
                topic=rng.choice(_TOPICS),
            )
            for _ in range(rng.randint(3, 5))
        ]
        return BulletList(rng.choice(["Key events", "Milestones", "At a glance"]), items)

    def card(self, slot: int) -> EntityCard:
        kind = self.fam.kinds[slot % len(self.fam.kinds)]
        entity = _entity(self.rng, kind, self.entities_used, self.seed)
        facts = [
            Fact(
                key=key,
                slots={**self.base, "name": entity.name},
                answers=_entity_fact_answers(value),
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


# --- rendering --------------------------------------------------------------------------------


@dataclass
class _RenderedPage:
    page: Page
    image: Any
    facts: list[tuple[Fact, str]]  # fact, block kind
    blocks_px: list[tuple[int, int, int, int]]


def _render_page(content: _DocContent, page_no: int) -> _RenderedPage:
    fam = content.fam
    w, h = fam.size
    style = fam.style
    canvas = Canvas(w, h)
    margin = int(0.06 * min(w, h))
    gap = max(4, int(0.03 * min(w, h)))
    blocks: list[Block] = []
    facts: list[tuple[Fact, str]] = []
    y = float(margin)
    slot = 0
    rows = [[content.title(page_no)]]
    for row in fam.plans[page_no]:
        elems = []
        for kind in row:
            elems.append(content.element(kind, slot))
            slot += kind == "card"
        rows.append(elems)
    for elems in rows:
        width = (w - 2 * margin - gap * (len(elems) - 1)) / len(elems)
        height = max(e.measure(width, style) for e in elems)
        if y + height > h - margin:
            continue  # does not fit: the next (smaller) row may
        for k, elem in enumerate(elems):
            first_word = len(canvas.words)
            drawn = elem.draw(canvas, margin + k * (width + gap), y, width, style)
            text = " ".join(t for t, _ in canvas.words[first_word:])
            blocks.append(Block(kind=drawn.kind, text=text, box=canvas.normalise(drawn.box)))
            facts += [(f, drawn.kind) for f in drawn.facts]
            # the fact's element box (question box) is the block box
            for f in drawn.facts:
                f.slots.setdefault("_block", len(blocks) - 1)
        y += height + gap
    words = [Word(text=t, box=canvas.normalise(b)) for t, b in canvas.words]
    page = Page(
        doc=content.doc.name,
        page=page_no,
        image=f"images/{content.doc.name}/{page_no}.png",
        width=w,
        height=h,
        words=words,
        blocks=blocks,
        collection=COLLECTION,
        split=fam.split,  # type: ignore[arg-type]
        tags=[COLLECTION, fam.doctype],
        meta={
            "family": fam.index,
            "layout": ["+".join(r) for r in fam.plans[page_no]],
            "font": style.face,
            "year": content.doc.year,
        },
    )
    return _RenderedPage(page, canvas.image, facts, [])


# --- questions --------------------------------------------------------------------------------


def _questions_for_page(
    rendered: _RenderedPage,
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


# --- the corpus -------------------------------------------------------------------------------

_OUTPUTS = ("images", "query_images", "pages.jsonl", "questions.jsonl", "manifest.json")


def _clear(out_dir: Path) -> None:
    """Remove what a previous run wrote (a DVC out is regenerated whole); leave anything else alone."""
    for name in _OUTPUTS:
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def _progress(iterable, total: int, description: str):
    if sys.stderr.isatty():
        from rich.progress import track

        return track(iterable, total=total, description=description)
    return iterable


def generate_corpus(params: Params, out_dir: Path) -> dict[str, Any]:
    """Render the synthetic corpus into ``out_dir``; return a summary with counts and pages/s."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir)
    families = _families(params)
    heldout = heldout_templates(params.seed, params.data.heldout_template_fraction)
    entities_used: set[str] = set()
    pages: list[Page] = []
    raw_questions: list[dict[str, Any]] = []
    docs = [doc for fam in families for doc in fam.docs]
    for doc in _progress(docs, len(docs), "rendering pages"):
        content = _DocContent(doc, params.seed, entities_used)
        siblings = [d for d in doc.family.docs if d is not doc]
        for page_no in range(doc.n_pages):
            rendered = _render_page(content, page_no)
            image_path = out_dir / rendered.page.image
            image_path.parent.mkdir(parents=True, exist_ok=True)
            rendered.image.save(image_path, format="PNG", compress_level=1)
            pages.append(rendered.page)
            negatives = [page_id(d.name, page_no) for d in siblings if page_no < d.n_pages]
            qrng = random.Random(f"{params.seed}:questions:{rendered.page.id}")
            for q in _questions_for_page(
                rendered, params.data.questions_per_page, heldout, qrng, negatives
            ):
                q["_size"] = (rendered.page.width, rendered.page.height)
                raw_questions.append(q)

    # labelled flag: a fixed share of train questions keeps its box for training
    train_idx = [i for i, q in enumerate(raw_questions) if q["split"] == "train"]
    random.Random(f"{params.seed}:labelled").shuffle(train_idx)
    n_labelled = round(params.data.labelled_fraction * len(train_idx))
    unlabelled = set(train_idx[n_labelled:])

    questions: list[Question] = []
    query_dir = out_dir / "query_images"
    for i, raw in enumerate(raw_questions):
        qid = f"syn-{i:05d}"
        w, h = raw.pop("_size")
        px = raw.pop("_answer_box_px")
        picture_seed = raw.pop("_picture_seed")
        if px is not None:
            raw["answer_box"] = [
                round(max(0.0, px[0] / w), 5),
                round(max(0.0, px[1] / h), 5),
                round(min(1.0, px[2] / w), 5),
                round(min(1.0, px[3] / h), 5),
            ]
        if picture_seed is not None:
            query_dir.mkdir(parents=True, exist_ok=True)
            image = perturbed_query(
                picture_seed, (160, 96), random.Random(f"{params.seed}:query:{qid}")
            )
            image.save(query_dir / f"{qid}.png", format="PNG", compress_level=1)
            raw["query_image"] = f"query_images/{qid}.png"
        questions.append(Question(id=qid, labelled=i not in unlabelled, **raw))

    save_corpus_tables(out_dir, pages, questions)
    seconds = time.perf_counter() - started
    splits = {
        s: {
            "docs": sum(len(f.docs) for f in families if f.split == s),
            "pages": sum(p.split == s for p in pages),
            "questions": sum(q.split == s for q in questions),
        }
        for s in ("train", "val", "test")
    }
    types: dict[str, int] = {}
    for q in questions:
        types[q.type or "none"] = types.get(q.type or "none", 0) + 1
    counts = {
        "docs": len(docs),
        "families": len(families),
        "pages": len(pages),
        "questions": len(questions),
        "splits": splits,
        "types": dict(sorted(types.items())),
        "labelled": sum(q.split == "train" and q.labelled for q in questions),
        "unlabelled": len(unlabelled),
        "image_queries": sum(q.query_image is not None for q in questions),
        "heldout_template_questions": sum(bool(q.meta.get("heldout_template")) for q in questions),
        "entities": len(entities_used),
    }
    manifest = {
        "generator": "components.data.synthetic",
        "version": GENERATOR_VERSION,
        "seed": params.seed,
        "data": params.data.model_dump(mode="json"),
        "fonts": sorted({p.meta["font"] for p in pages}),
        "fonts_available": available_faces(),
        "collection": COLLECTION,
        "counts": counts,
        "templates": {"total": len(template_ids()), "heldout": sorted(heldout)},
    }
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", "utf-8"
    )
    return {
        **counts,
        "corpus_dir": str(out_dir),
        "seconds": round(seconds, 3),
        "pages_per_s": round(len(pages) / seconds, 1) if seconds > 0 else None,
    }
