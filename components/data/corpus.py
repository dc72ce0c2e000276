"""Read and write a corpus folder: ``pages.jsonl``, ``questions.jsonl`` and the page images.

Layout of a corpus root::

    pages.jsonl        one Page per line
    questions.jsonl    one Question per line
    images/...         rendered pages (Page.image is relative to the root)
    query_images/...   image queries (Question.query_image is relative to the root)
    manifest.json      counts and provenance
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from PIL import Image

from components.data.schema import Page, Question


class UnsafePathError(ValueError):
    """A path taken from data points outside its root."""


def safe_join(root: Path, relative: str) -> Path:
    """Join a data-supplied relative path to ``root``; refuse anything that escapes it."""
    root = Path(root).resolve()
    if not relative or os.path.isabs(relative):
        raise UnsafePathError(f"path {relative!r} must be relative to {root}")
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise UnsafePathError(f"path {relative!r} escapes {root}")
    return target


def write_jsonl_atomic(path: Path, records: Iterable[dict]) -> int:
    """Write records to ``path`` via a temp file + rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


@dataclass
class Corpus:
    root: Path
    pages: list[Page]
    questions: list[Question] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self._by_id = {p.id: p for p in self.pages}

    def page(self, page_id: str) -> Page:
        return self._by_id[page_id]

    def has_page(self, page_id: str) -> bool:
        return page_id in self._by_id

    def image_path(self, page: Page) -> Path:
        return safe_join(self.root, page.image)

    def load_image(self, page: Page) -> Image.Image:
        with Image.open(self.image_path(page)) as img:
            return img.convert("RGB")

    def query_image_path(self, question: Question) -> Path | None:
        return safe_join(self.root, question.query_image) if question.query_image else None

    def questions_in(self, split: str) -> list[Question]:
        return [q for q in self.questions if q.split == split]

    def pages_in(self, split: str) -> list[Page]:
        return [p for p in self.pages if p.split == split]


def load_corpus(root: str | Path, accepted: str | Path | None = None) -> Corpus:
    """Load a corpus; with ``accepted`` (the validate stage's accepted.json) keep only accepted records."""
    root = Path(root)
    pages_file = root / "pages.jsonl"
    if not pages_file.exists():
        raise FileNotFoundError(f"{pages_file} not found: run `regionops generate` or `regionops import` first")
    pages = [Page.model_validate_json(line) for line in pages_file.read_text("utf-8").splitlines() if line.strip()]
    questions: list[Question] = []
    qfile = root / "questions.jsonl"
    if qfile.exists():
        questions = [Question.model_validate_json(line) for line in qfile.read_text("utf-8").splitlines() if line.strip()]
    if accepted is not None:
        keep = json.loads(Path(accepted).read_text("utf-8"))
        page_ids, question_ids = set(keep["pages"]), set(keep["questions"])
        pages = [p for p in pages if p.id in page_ids]
        questions = [q for q in questions if q.id in question_ids]
    return Corpus(root=root, pages=pages, questions=questions)


def save_corpus_tables(root: str | Path, pages: Iterable[Page], questions: Iterable[Question]) -> tuple[int, int]:
    """Write pages.jsonl and questions.jsonl atomically (images are written by the producer)."""
    root = Path(root)
    n_pages = write_jsonl_atomic(root / "pages.jsonl", (p.model_dump(mode="json") for p in pages))
    n_questions = write_jsonl_atomic(root / "questions.jsonl", (q.model_dump(mode="json") for q in questions))
    return n_pages, n_questions
