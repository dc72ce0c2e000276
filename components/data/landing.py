"""The landing folder: new documents dropped by users, taken in once each, then merged into the corpus.

Two steps, so that DVC sees the new data as a change of a versioned input:

* ``ingest_landing`` (called by the ``retrain`` flow) hashes every file in the landing
  folder, skips files whose content it has seen before (the ledger, keyed by sha256: the
  same file dropped twice is taken once), runs the new documents through the data contract
  (``import_documents``) so that bad ones are quarantined with a reason, and copies the
  accepted ones into the landed folder (``landed/``, which DVC tracks with ``dvc add``).
* ``merge_landed`` (run by the ``generate`` DVC stage) imports the landed folder into the
  corpus under ``landed/``, so every downstream stage reruns when it changes. A landed PDF no
  question names gets questions derived from its text layer and layout
  (``components.data.derived_questions``, seeded, no human labels), marked ``source: derived``:
  ``realdocs.labelled_fraction`` of them keep their box, the rest are page-only; they take the
  document's split as its pages do, so it joins the next retrain and the gate decides. A PDF
  whose text layer is too thin to derive anything is still imported (the visual channel),
  with a note.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.config import Params
from components.data.corpus import (
    load_corpus,
    safe_join,
    save_corpus_tables,
    write_json_atomic,
    write_jsonl_atomic,
)
from components.data.importer import IMAGE_SUFFIXES, PDF_SUFFIXES, import_documents

LANDED_DIR = (
    "landed"  # accepted landing documents, `dvc add`ed (landed.dvc) and a dep of the generate stage
)
LEDGER = "ledger.json"
DOCS = "docs"
QUESTIONS = "questions.jsonl"
PROCESSED = ".processed"  # landing files already taken in move here (hidden: never rescanned)
QUESTION_SUFFIXES = {".jsonl"}
MERGED_PREFIX = "landed"  # landed pages live under <corpus>/landed/ with ids "landed/<doc>#<page>"


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _escapes(path: Path, root: Path) -> bool:
    resolved = path.resolve()
    return resolved != root and root not in resolved.parents


def escaping_links(landing_dir: Path) -> list[Path]:
    """Links in the landing folder that resolve outside it: never read, hashed or copied."""
    landing_dir = Path(landing_dir).resolve()
    if not landing_dir.is_dir():
        return []
    return [
        path
        for path in sorted(landing_dir.rglob("*"))
        if not any(part.startswith(".") for part in path.relative_to(landing_dir).parts)
        and _escapes(path, landing_dir)
    ]


def landing_files(landing_dir: Path, settle_seconds: float = 0.0) -> list[Path]:
    """Documents and question files in the landing folder, hidden files and folders excluded.

    Files modified less than ``settle_seconds`` ago are left for the next look: a copy still
    in progress must not be hashed and taken in half-written. A link resolving outside the
    folder is left out (``escaping_links`` lists it for quarantine).
    """
    landing_dir = Path(landing_dir).resolve()
    now = time.time()
    if not landing_dir.is_dir():
        return []
    wanted = PDF_SUFFIXES | IMAGE_SUFFIXES | QUESTION_SUFFIXES
    out = []
    for path in sorted(landing_dir.rglob("*")):
        rel = path.relative_to(landing_dir)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if _escapes(path, landing_dir):
            continue
        if path.suffix.lower() in wanted and now - path.stat().st_mtime >= settle_seconds:
            out.append(path)
    return out


def pending_files(
    landing_dir: Path, landed_dir: Path, settle_seconds: float = 2.0
) -> list[dict[str, str]]:
    """Landing files whose content has not been taken in yet (what the watcher triggers a retrain for)."""
    landing_dir = Path(landing_dir).resolve()  # landing_files returns resolved paths
    ledger = read_ledger(landed_dir)
    pending: dict[str, str] = {}
    for path in landing_files(landing_dir, settle_seconds):
        sha = file_sha256(path)
        if sha not in ledger:
            pending.setdefault(sha, path.relative_to(landing_dir).as_posix())
    return sorted(
        ({"sha256": sha, "name": name} for sha, name in pending.items()), key=lambda p: p["name"]
    )


def read_ledger(landed_dir: Path) -> dict[str, dict[str, Any]]:
    path = Path(landed_dir) / LEDGER
    return json.loads(path.read_text("utf-8")) if path.exists() else {}


def ensure_landed(landed_dir: Path) -> Path:
    """Create an empty landed folder (ledger, docs/, questions file) so DVC can track it from day one."""
    landed_dir = Path(landed_dir)
    (landed_dir / DOCS).mkdir(parents=True, exist_ok=True)
    if not (landed_dir / LEDGER).exists():
        write_json_atomic(landed_dir / LEDGER, {}, sort_keys=True)
    if not (landed_dir / QUESTIONS).exists():
        write_jsonl_atomic(landed_dir / QUESTIONS, [])
    return landed_dir


def _free_name(docs_dir: Path, rel: str, sha: str) -> str:
    """``rel`` unless another document already holds that name; then ``<stem>.<sha8><suffix>``."""
    target = safe_join(docs_dir, rel)
    if not target.exists() or file_sha256(target) == sha:
        return rel
    p = Path(rel)
    return (p.parent / f"{p.stem}.{sha[:8]}{p.suffix}").as_posix()


def _move_processed(path: Path, landing_dir: Path, sha: str) -> None:
    dest = landing_dir / PROCESSED / f"{sha[:12]}-{path.name}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)


def ingest_landing(
    landing_dir: Path, landed_dir: Path, params: Params, settle_seconds: float = 2.0
) -> dict[str, Any]:
    """Take in the landing folder's new files (by content hash); quarantine bad documents with a reason.

    Returns ``{"new": [...], "duplicates": [...], "accepted": n, "quarantined": n, "changed": bool}``.
    ``changed`` is False when every file had been seen before: nothing to retrain on.
    """
    landing_dir, landed_dir = Path(landing_dir).resolve(), Path(landed_dir)
    ensure_landed(landed_dir)
    ledger = read_ledger(landed_dir)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    new: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    files: dict[str, tuple[Path, str]] = {}
    escaped = []
    for link in escaping_links(
        landing_dir
    ):  # the link itself moves aside; its target is never read
        rel = link.relative_to(landing_dir).as_posix()
        escaped.append(
            {
                "name": rel,
                "status": "quarantined",
                "reason": "path escapes the root",
                "detail": f"{rel} links to {link.resolve()}, outside {landing_dir}",
                "received_at": now,
            }
        )
        dest = landing_dir / PROCESSED / f"escaped-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{link.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(link, dest)
    for path in landing_files(landing_dir, settle_seconds):
        rel = path.relative_to(landing_dir).as_posix()
        sha = file_sha256(path)
        if sha in ledger or sha in files:
            duplicates.append(
                {
                    "name": rel,
                    "sha256": sha,
                    "first_seen_as": (ledger.get(sha) or {}).get("name", rel),
                }
            )
            _move_processed(path, landing_dir, sha)
            continue
        files[sha] = (path, rel)

    docs = {sha: v for sha, v in files.items() if v[0].suffix.lower() not in QUESTION_SUFFIXES}
    question_files = {
        sha: v for sha, v in files.items() if v[0].suffix.lower() in QUESTION_SUFFIXES
    }
    rejected: dict[str, dict[str, str]] = {}
    if docs:
        # The data contract decides: the importer quarantines unreadable/encrypted/empty PDFs and bombs.
        with tempfile.TemporaryDirectory(prefix="regionops-landing-") as tmp:
            staging = Path(tmp) / "docs"
            for path, rel in docs.values():
                target = safe_join(staging, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            import_documents(staging, None, Path(tmp) / "out", params, collection=MERGED_PREFIX)
            qfile = Path(tmp) / "out" / "quarantine" / "documents.jsonl"
            for line in qfile.read_text("utf-8").splitlines() if qfile.exists() else []:
                record = json.loads(line)
                rejected[record["doc"]] = {
                    "reason": record["reason"],
                    "detail": record.get("detail", ""),
                }

    docs_dir = landed_dir / DOCS
    for sha, (path, rel) in docs.items():
        entry = {"name": rel, "sha256": sha, "kind": "document", "received_at": now}
        if rel in rejected:
            entry.update(status="quarantined", **rejected[rel])
        else:
            stored = _free_name(docs_dir, rel, sha)
            target = safe_join(docs_dir, stored)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            entry.update(status="accepted", stored_as=stored)
        new.append(entry)

    if question_files:
        lines = [raw for raw in (landed_dir / QUESTIONS).read_bytes().split(b"\n") if raw.strip()]
        for sha, (path, rel) in question_files.items():
            added = [raw for raw in path.read_bytes().split(b"\n") if raw.strip()]
            lines.extend(added)
            new.append(
                {
                    "name": rel,
                    "sha256": sha,
                    "kind": "questions",
                    "received_at": now,
                    "status": "accepted",
                    "lines": len(added),
                }
            )
        fd, tmp = tempfile.mkstemp(dir=landed_dir, prefix=f".{QUESTIONS}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"".join(raw + b"\n" for raw in lines))
        os.replace(
            tmp, landed_dir / QUESTIONS
        )  # line-level checks happen at merge, through the importer

    for entry in new:
        ledger[entry["sha256"]] = {k: v for k, v in entry.items() if k != "sha256"}
    if new:
        write_json_atomic(landed_dir / LEDGER, ledger, sort_keys=True)
    for sha, (path, _) in files.items():
        _move_processed(path, landing_dir, sha)
    accepted = sum(e["status"] == "accepted" for e in new)
    return {
        "new": new,
        "duplicates": duplicates,
        "accepted": accepted,
        "quarantined": sum(e["status"] == "quarantined" for e in new) + len(escaped),
        "quarantined_links": escaped,
        "changed": accepted > 0,
    }


def _prefixed(value: str | None) -> str | None:
    return None if value is None else f"{MERGED_PREFIX}/{value}"


def _asked_docs(qfile: Path) -> set[str]:
    """Documents the landed questions name (lines that do not parse are left to the importer's
    quarantine: here they name nothing)."""
    docs = set()
    if qfile.is_file():
        for raw in qfile.read_bytes().split(b"\n"):
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("doc"), str):
                docs.add(record["doc"])
    return docs


def derive_for_unasked(
    docs_dir: Path, qfile: Path, params: Params
) -> tuple[list[dict], dict[str, Any]]:
    """Derived questions for the landed PDFs no landed question names, and a summary (per
    document: questions derived, or a note why none could be)."""
    from components.data.derived_questions import derive_questions

    asked = _asked_docs(qfile)
    cfg = params.realdocs
    questions: list[dict] = []
    per_doc: dict[str, Any] = {}
    seen: set[str] = set()
    for path in sorted(
        p for p in docs_dir.rglob("*") if p.is_file() and p.suffix.lower() in PDF_SUFFIXES
    ):
        rel = path.relative_to(docs_dir).as_posix()
        if rel in asked:
            continue
        try:
            derived = derive_questions(
                path, rel, params.seed, cfg.labelled_fraction, cfg.max_questions_per_page, seen=seen
            )
        except Exception as exc:  # noqa: BLE001 - an unreadable PDF is the importer's to quarantine
            per_doc[rel] = {
                "derived": 0,
                "note": f"no questions derived: {type(exc).__name__}: {exc}",
            }
            continue
        for q in derived.questions:
            q["source"] = (
                "derived"  # the split is the document's, set by the importer as for its pages
            )
            if not q["labelled"]:
                q["box"] = None  # page-only: the trainer pseudo-labels it
        questions += derived.questions
        per_doc[rel] = {"derived": len(derived.questions)}
        if not derived.questions:
            per_doc[rel]["note"] = (
                "text layer too thin to derive questions; the document is kept "
                "for the visual channel"
            )
    return questions, per_doc


def merge_landed(corpus_dir: Path, landed_dir: Path, params: Params) -> dict[str, Any]:
    """Import the landed documents (and questions) into ``corpus_dir/landed`` and append them to the corpus.

    Runs after ``generate`` in the same DVC stage. With nothing landed, the corpus is left as it is.
    """
    corpus_dir, landed_dir = Path(corpus_dir), Path(landed_dir)
    docs_dir = landed_dir / DOCS
    has_docs = docs_dir.is_dir() and any(p.is_file() for p in docs_dir.rglob("*"))
    qfile = landed_dir / QUESTIONS
    has_questions = qfile.is_file() and qfile.read_bytes().strip() != b""
    if not has_docs and not has_questions:
        shutil.rmtree(corpus_dir / MERGED_PREFIX, ignore_errors=True)  # nothing landed any more
        return {"landed_pages": 0, "landed_questions": 0}
    docs_dir.mkdir(parents=True, exist_ok=True)
    derived, derived_docs = derive_for_unasked(docs_dir, qfile, params)
    with tempfile.TemporaryDirectory(prefix="regionops-merge-") as tmp:
        questions_in: Path | None = qfile if has_questions else None
        if derived:
            # the landed questions as they are, then the derived ones: one file through the
            # importer's quarantine (the landed file itself is never rewritten)
            questions_in = Path(tmp) / QUESTIONS
            own = qfile.read_bytes().rstrip(b"\n") + b"\n" if has_questions else b""
            questions_in.write_bytes(
                own + b"".join(json.dumps(q).encode() + b"\n" for q in derived)
            )
        report = import_documents(
            docs_dir, questions_in, corpus_dir / MERGED_PREFIX, params, collection=MERGED_PREFIX
        )
    landed = load_corpus(corpus_dir / MERGED_PREFIX)
    base = load_corpus(corpus_dir)
    base_ids = {p.id for p in base.pages}
    pages = []
    for page in landed.pages:
        page = page.model_copy(update={"doc": _prefixed(page.doc), "image": _prefixed(page.image)})
        if page.id not in base_ids:
            pages.append(page)
    questions = [
        q.model_copy(
            update={
                "id": _prefixed(q.id),
                "doc": _prefixed(q.doc),
                "query_image": _prefixed(q.query_image),
                "hard_negatives": [f"{MERGED_PREFIX}/{n}" for n in q.hard_negatives],
            }
        )
        for q in landed.questions
    ]
    save_corpus_tables(corpus_dir, [*base.pages, *pages], [*base.questions, *questions])
    return {
        "landed_pages": len(pages),
        "landed_questions": len(questions),
        "landed_questions_derived": sum(getattr(q, "source", None) == "derived" for q in questions),
        "derived_by_document": derived_docs,
        "landed_documents_quarantined": report["documents"]["quarantined"],
        "landed_questions_quarantined": report["questions"]["quarantined"],
    }
