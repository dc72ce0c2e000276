"""The seeded synthetic corpus (docs/design.md §4): visually rich pages rendered with Pillow, their
text layer, and questions with answers and evidence boxes.

Documents come in *families*: the documents of one family share a company, layout, table rows,
chart categories and form fields, but differ in year, values, people and entities. Sibling pages
are near-duplicates (``Question.hard_negatives``), so keyword matching alone cannot find the
right page. Splits are drawn per family, so near-duplicates never straddle train and test.

Output (all deterministic for a seed + params; no timestamps)::

    images/<doc>/<page>.png, query_images/<question id>.png,
    pages.jsonl, questions.jsonl, manifest.json

This module writes the corpus; the steps live beside it: ``synthetic_vocab`` (word pools),
``synthetic_families`` (families, documents, splits), ``synthetic_content`` (a document's
elements and facts), ``synthetic_pages`` (page layout) and ``synthetic_questions`` (questions).
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from components.config import Params
from components.data.corpus import save_corpus_tables
from components.data.questions import heldout_templates, template_ids
from components.data.render import available_faces, perturbed_query
from components.data.schema import Page, Question, page_id
from components.data.synthetic_content import DocContent
from components.data.synthetic_families import COLLECTION, draw_families
from components.data.synthetic_pages import render_page
from components.data.synthetic_questions import questions_for_page

__all__ = ["COLLECTION", "GENERATOR_VERSION", "generate_corpus"]

GENERATOR_VERSION = 1

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
    families = draw_families(params)
    heldout = heldout_templates(params.seed, params.data.heldout_template_fraction)
    entities_used: set[str] = set()
    pages: list[Page] = []
    raw_questions: list[dict[str, Any]] = []
    docs = [doc for fam in families for doc in fam.docs]
    for doc in _progress(docs, len(docs), "rendering pages"):
        content = DocContent(doc, params.seed, entities_used)
        siblings = [d for d in doc.family.docs if d is not doc]
        for page_no in range(doc.n_pages):
            rendered = render_page(content, page_no)
            image_path = out_dir / rendered.page.image
            image_path.parent.mkdir(parents=True, exist_ok=True)
            rendered.image.save(image_path, format="PNG", compress_level=1)
            pages.append(rendered.page)
            negatives = [page_id(d.name, page_no) for d in siblings if page_no < d.n_pages]
            qrng = random.Random(f"{params.seed}:questions:{rendered.page.id}")
            for q in questions_for_page(
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
