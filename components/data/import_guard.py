"""Guards of an import: what it may read, where it may write, what it may replace.

* The collection name becomes a folder name, so it must be a slug.
* The output folder must not overlap ``--docs`` (either way) and may hold only what an import
  writes (``OUTPUTS``); the corpus is built in a temporary sibling and swapped in complete.
* A file or link under ``--docs`` that resolves outside it is quarantined, never read.
* Strings UTF-8 cannot encode (lone surrogates from JSON escapes or non-UTF-8 file names) are
  found before they reach a writer, and escaped for the quarantine record.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from components.data.quarantine import Quarantine

log = logging.getLogger(__name__)

# What an import writes into its output folder; anything else there is someone else's.
OUTPUTS = (
    "images",
    "query_images",
    "pages.jsonl",
    "questions.jsonl",
    "manifest.json",
    "quarantine",
    "import_report.json",
)

# A collection name is also a folder name (data/imports/<name>) and a tag: a slug, never a path.
_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ESCAPES_ROOT = "path escapes the root"


class UnsafeImportError(ValueError):
    """The import's folders or name would overwrite or delete data it did not write."""


def check_collection_name(name: str) -> str:
    if not _COLLECTION_RE.match(name) or ".." in name:
        raise UnsafeImportError(
            f"collection name {name!r} must be a slug: letters, digits, '.', '_', '-' "
            "(at most 64, starting with a letter or digit, no '..'); it names a folder"
        )
    return name


def unencodable(value: Any) -> str | None:
    """The first string in ``value`` that UTF-8 cannot encode (a lone surrogate), escaped; else None."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            exc.object[max(0, exc.start - 20) : exc.end + 20]
            .encode("utf-8", "backslashreplace")
            .decode()
        )
    return None


def printable(value: Any) -> Any:
    """``value`` made safe to write as UTF-8 JSON: lone surrogates become ``\\udxxx`` text."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable(v) for v in value]
    return value


def check_folders(docs_dir: Path, out_dir: Path, questions: Path | None) -> None:
    """Refuse an output folder that overlaps --docs (either way) or holds files the import did not write."""
    out = out_dir.resolve()
    if out == docs_dir or docs_dir in out.parents:
        raise UnsafeImportError(f"the output folder {out_dir} must not be inside --docs {docs_dir}")
    if out in docs_dir.parents:
        raise UnsafeImportError(
            f"--docs {docs_dir} is inside the output folder {out_dir}: writing the corpus there "
            "would replace the documents being imported"
        )
    if questions is not None and out in Path(questions).resolve().parents:
        log.info(
            "--questions %s is inside the output folder; it is read before the swap", questions
        )
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS)
        if foreign:
            raise UnsafeImportError(
                f"the output folder {out_dir} holds files an import did not write "
                f"({', '.join(foreign[:5])}): give a new or empty folder, or a previous import's"
            )
    elif out.exists():
        raise UnsafeImportError(f"the output folder {out_dir} exists and is not a folder")


def swap_in(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` (a previous import, or nothing) by the complete ``staging`` folder.

    Two renames on one filesystem; a crash between them leaves the previous import intact at
    ``.<name>.previous-*`` next to the new one, nothing lost.
    """
    previous = None
    if out_dir.exists():
        previous = out_dir.with_name(f".{out_dir.name}.previous-{uuid.uuid4().hex[:8]}")
        os.replace(out_dir, previous)
    os.replace(staging, out_dir)
    if previous is not None:
        shutil.rmtree(previous)  # holds only import outputs (check_folders refused anything else)


def document_files(
    docs_dir: Path, suffixes: set[str], quarantine: Quarantine
) -> tuple[list[Path], list[Path]]:
    """Supported and unsupported files under ``docs_dir``; a link resolving outside it is quarantined."""
    supported: list[Path] = []
    unsupported: list[Path] = []
    for path in sorted(docs_dir.rglob("*")):
        resolved = path.resolve()
        if resolved != docs_dir and docs_dir not in resolved.parents:
            rel = path.relative_to(docs_dir).as_posix()
            quarantine.add(
                "documents",
                ESCAPES_ROOT,
                printable(f"{rel} links to {resolved}, outside {docs_dir}"),
                doc=printable(rel),
            )
            continue
        if not path.is_file():
            continue
        (supported if path.suffix.lower() in suffixes else unsupported).append(path)
    return supported, unsupported


def staging_folder(out_dir: Path) -> Path:
    """A fresh hidden sibling of ``out_dir`` (same filesystem, so the swap is a rename)."""
    staging = out_dir.with_name(f".{out_dir.name}.importing-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    return staging
