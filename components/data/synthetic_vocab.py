"""The word pools and name drawers the synthetic corpus (``components.data.synthetic``) writes its
companies, places, people, metrics, sentences and page plans from."""

from __future__ import annotations

import random

SYL_A = [
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
SYL_B = [
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
CO_TYPE = [
    "Group",
    "Holdings",
    "Industries",
    "Partners",
    "Logistics",
    "Energy",
    "Systems",
    "Works",
]
PLACE_A = [
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
PLACE_B = ["mouth", "stad", "heim", "dale", "port", "burg", "wick", "ton", "mere", "by"]
FIRST = [
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
LAST = [
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
PROJECTS = [
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
HABITATS = [
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
TOPICS = [
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
FILLER = [
    "The board reviewed {topic} at its {q} meeting.",
    "Management expects {topic} to improve further next year.",
    "{company} continued to invest in {topic} across all sites.",
    "Progress on {topic} was discussed with shareholders in {q}.",
    "A new committee now oversees {topic} and reports twice a year.",
    "Several teams were reorganised to focus on {topic}.",
    "External advisers assessed {topic} and found no material issues.",
]
LIST_ITEMS = [
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
METRICS = [
    ("Revenue", ["income", "sales", "turnover"], (2000, 90000)),
    ("Operating cost", ["operating expenses", "running costs"], (1000, 60000)),
    ("Net profit", ["net earnings", "bottom line"], (100, 9000)),
    ("Headcount", ["number of employees", "staff size"], (40, 5000)),
    ("Customers", ["client count", "number of clients"], (300, 80000)),
    ("Capital expenditure", ["capex", "investment spending"], (100, 20000)),
    ("Energy use", ["energy consumption", "power usage"], (50, 9000)),
    ("Orders", ["purchase orders", "bookings"], (100, 40000)),
]
REGIONS = ["North", "South", "East", "West", "Central", "Coastal", "Highland"]
MONTHS = [
    ("Jan", "January"),
    ("Feb", "February"),
    ("Mar", "March"),
    ("Apr", "April"),
    ("May", "May"),
    ("Jun", "June"),
    ("Jul", "July"),
    ("Aug", "August"),
]
KIND_NOUNS = {
    "building": ["Tower", "Hall", "Castle", "Library", "Observatory", "Abbey", "Lighthouse"],
    "bird": ["bill", "wing", "crest", "tail", "finch", "warbler"],
    "ship": ["MS", "SS", "HMS"],
    "painting": ["Harvest", "Storm", "Garden", "Harbour", "Feast", "Bridge", "Orchard"],
}
COLOURS = [
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
DOC_PLANS = {
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
PAGE_TITLES = {
    "report": ["Annual report", "Operations review"],
    "filing": ["Annual filing", "Supplementary statement"],
    "catalogue": ["Collection catalogue", "Catalogue, continued"],
    "bulletin": ["News bulletin", "Bulletin, part two"],
}


def place(rng: random.Random) -> str:
    return rng.choice(PLACE_A) + rng.choice(PLACE_B)


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def company(rng: random.Random) -> str:
    return f"{rng.choice(SYL_A)}{rng.choice(SYL_B)} {rng.choice(CO_TYPE)}"
