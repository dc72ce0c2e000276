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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def write_json_atomic(path: Path, payload: Any, sort_keys: bool = False) -> None:
    """Write one JSON document (indented, newline-terminated) via a temp file + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(payload, indent=2, sort_keys=sort_keys) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def jsonl_lines(path: Path) -> list[tuple[int, bytes]]:
    """The non-blank lines of a JSONL file as (1-based line number, raw bytes): the numbering
    the validate stage uses in accepted.json, so a line is never mistaken for another."""
    return [
        (n, line)
        for n, line in enumerate(Path(path).read_bytes().split(b"\n"), start=1)
        if line.strip()
    ]


def _accepted_lines(
    lines: list[tuple[int, bytes]], keep_lines: list[int] | None, keep_ids: list[str], id_of
) -> list[bytes]:
    if keep_lines is not None:
        wanted = set(keep_lines)
        return [raw for n, raw in lines if n in wanted]
    # older accepted.json without line numbers: keep by id, first occurrence only (a duplicate id never sneaks back)
    wanted_ids, seen, out = set(keep_ids), set(), []
    for _, raw in lines:
        try:
            rid = id_of(json.loads(raw))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
        if rid in wanted_ids and rid not in seen:
            seen.add(rid)
            out.append(raw)
    return out


def load_corpus(root: str | Path, accepted: str | Path | None = None) -> Corpus:
    """Load a corpus; with ``accepted`` (the validate stage's accepted.json) keep only accepted records.

    With ``accepted`` only the accepted lines are parsed, so quarantined lines (bad JSON, schema
    violations, duplicates) cannot break loading or come back in.
    """
    root = Path(root)
    pages_file = root / "pages.jsonl"
    if not pages_file.exists():
        raise FileNotFoundError(
            f"{pages_file} not found: run `regionops generate` or `regionops import` first"
        )
    qfile = root / "questions.jsonl"
    page_lines = jsonl_lines(pages_file)
    question_lines = jsonl_lines(qfile) if qfile.exists() else []
    if accepted is None:
        page_raw = [raw for _, raw in page_lines]
        question_raw = [raw for _, raw in question_lines]
    else:
        keep = json.loads(Path(accepted).read_text("utf-8"))
        page_raw = _accepted_lines(
            page_lines, keep.get("page_lines"), keep["pages"], lambda r: f"{r['doc']}#{r['page']}"
        )
        question_raw = _accepted_lines(
            question_lines, keep.get("question_lines"), keep["questions"], lambda r: r["id"]
        )
    pages = [Page.model_validate_json(raw) for raw in page_raw]
    questions = [Question.model_validate_json(raw) for raw in question_raw]
    return Corpus(root=root, pages=pages, questions=questions)


def save_corpus_tables(
    root: str | Path, pages: Iterable[Page], questions: Iterable[Question]
) -> tuple[int, int]:
    """Write pages.jsonl and questions.jsonl atomically (images are written by the producer)."""
    root = Path(root)
    n_pages = write_jsonl_atomic(root / "pages.jsonl", (p.model_dump(mode="json") for p in pages))
    n_questions = write_jsonl_atomic(
        root / "questions.jsonl", (q.model_dump(mode="json") for q in questions)
    )
    return n_pages, n_questions
