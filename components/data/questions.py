"""Question templates of the synthetic corpus, keyed by the kind of fact they ask about.

Part of the templates paraphrase the page's wording (the page says "Revenue", the question
asks for "income"), so keyword overlap alone does not find the evidence. A share of template
ids is held out of train (``heldout_template_fraction``) to test generalisation to new phrasings.
"""

from __future__ import annotations

import random

# key -> phrasings. Slots are filled from the Fact; entity templates use {name}.
TEMPLATES: dict[str, list[str]] = {
    "table": [
        "What was the {label} of {company} in {col} {year}?",
        "What {syn} did {company} report for {col} {year}?",
        "According to the {year} report of {company}, what was the {syn} in {col}?",
        "Give the {col} {year} figure for {syn} at {company}.",
    ],
    "bar": [
        "How many units did {company} ship to the {region} region in {year}?",
        "What was the shipment volume of {company} for {region} in {year}?",
        "How many deliveries went to {region} according to the {year} figures of {company}?",
    ],
    "line": [
        "How many monthly active users did {company} have in {month} {year}?",
        "What was the size of the user base of {company} in {month} {year}?",
        "How many people used the service of {company} in {month} {year}?",
    ],
    "form/contact": [
        "Who was the contact person on the {year} filing of {company}?",
        "Who is named as the point of contact in the {year} filing of {company}?",
    ],
    "form/number": [
        "What is the filing number of the {year} annual filing of {company}?",
        "Which reference number was given to the {year} filing of {company}?",
    ],
    "form/auditor": [
        "Which firm audited {company} in {year}?",
        "Who was the auditor of {company} according to its {year} filing?",
    ],
    "form/office": [
        "Where was the registered office of {company} in {year}?",
        "In which city was {company} registered in {year}?",
    ],
    "para/office": [
        "How many staff worked at the {city} office that {company} opened in {year}?",
        "How many employees did the new {city} office of {company} have in {year}?",
    ],
    "para/deal": [
        "What was the value of the supply agreement between {company} and {partner}?",
        "How much was the {partner} contract of {company} worth?",
    ],
    "para/lead": [
        "Who led the {project} project at {company}?",
        "Who headed the {project} initiative of {company}?",
    ],
    "entity/building/built": [
        "In which year was {name} built?",
        "When was {name} constructed?",
        "What is the construction year of {name}?",
    ],
    "entity/building/architect": ["Who was the architect of {name}?", "Who designed {name}?"],
    "entity/building/city": ["In which city is {name} located?", "Where does {name} stand?"],
    "entity/bird/wingspan": [
        "What is the wingspan of {name}?",
        "How wide are the wings of {name}?",
    ],
    "entity/bird/habitat": ["What is the habitat of {name}?", "Where does {name} live?"],
    "entity/bird/described": [
        "In which year was {name} first described?",
        "When was {name} first recorded by scientists?",
    ],
    "entity/ship/launched": [
        "In which year was {name} launched?",
        "When did {name} first go to sea?",
    ],
    "entity/ship/port": ["What is the home port of {name}?", "Where is {name} based?"],
    "entity/ship/length": ["How long is {name}?", "What is the length of {name}?"],
    "entity/painting/painted": ["In which year was {name} painted?", "When was {name} created?"],
    "entity/painting/artist": ["Who painted {name}?", "Which artist made {name}?"],
    "entity/painting/museum": ["Which museum holds {name}?", "Where is {name} on display?"],
}


def question_type(key: str, image: bool) -> str:
    """The ``Question.type`` of a template key."""
    if key.startswith("entity/"):
        return "entity_image" if image else "entity"
    return {"table": "table", "bar": "chart", "line": "chart", "form": "form", "para": "paragraph"}[
        key.split("/")[0]
    ]


def template_ids() -> list[str]:
    """Every template id: ``<key>/<n>`` for text questions, ``image:<key>/<n>`` for image queries."""
    ids = [f"{key}/{n}" for key, phrasings in TEMPLATES.items() for n in range(len(phrasings))]
    ids += [
        f"image:{key}/{n}"
        for key, phrasings in TEMPLATES.items()
        if key.startswith("entity/")
        for n in range(len(phrasings))
    ]
    return sorted(ids)


def heldout_templates(seed: int, fraction: float) -> set[str]:
    """The template ids that appear only in val/test."""
    ids = template_ids()
    k = round(fraction * len(ids))
    return set(random.Random(f"{seed}:heldout-templates").sample(ids, k))


def fill(template: str, slots: dict[str, str], image_kind: str | None = None) -> str:
    """Fill a template; for an image query the entity's name becomes "this <kind>"."""
    values = dict(slots)
    if image_kind is not None:
        values["name"] = f"this {image_kind}"
    text = template.format(**values)
    return text[0].upper() + text[1:]
