"""The landing folder: each file taken in once by content, bad documents quarantined, merged into the corpus."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from components.data.corpus import load_corpus
from components.data.landing import (
    LEDGER,
    PROCESSED,
    ingest_landing,
    merge_landed,
    pending_files,
)
from tests.data.test_data_import import make_pdf


def _drop(landing: Path, name: str, data: bytes) -> Path:
    """Drop a file as a user would, aged past the settle time (a finished copy)."""
    path = landing / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


GOOD_PDF = make_pdf([[(20, 150, "Invoice total 1234"), (20, 100, "Paid in March")]])
QUESTIONS = (
    json.dumps(
        {
            "id": "q1",
            "question": "What is the invoice total?",
            "answers": ["1234"],
            "doc": "invoice.pdf",
            "page": 0,
        }
    )
    + "\n"
).encode()


def test_same_file_dropped_twice_is_taken_in_once(tmp_path, tiny_params):
    landing, landed = tmp_path / "landing", tmp_path / "landed"
    _drop(landing, "invoice.pdf", GOOD_PDF)
    _drop(landing, "questions.jsonl", QUESTIONS)
    assert [p["name"] for p in pending_files(landing, landed)] == ["invoice.pdf", "questions.jsonl"]

    first = ingest_landing(landing, landed, tiny_params)
    assert first["changed"] is True and first["accepted"] == 2 and first["quarantined"] == 0
    assert (landed / "docs" / "invoice.pdf").read_bytes() == GOOD_PDF
    assert not (landing / "invoice.pdf").exists(), "a taken-in file stays in the landing folder"
    ledger_before = (landed / LEDGER).read_text()
    docs_before = sorted(p.name for p in (landed / "docs").rglob("*"))
    questions_before = (landed / "questions.jsonl").read_bytes()

    # The same bytes again, even under another name: nothing pending, nothing taken in.
    _drop(landing, "copy-of-invoice.pdf", GOOD_PDF)
    assert pending_files(landing, landed) == []
    second = ingest_landing(landing, landed, tiny_params)
    assert second["changed"] is False and second["new"] == []
    assert [d["name"] for d in second["duplicates"]] == ["copy-of-invoice.pdf"]
    assert second["duplicates"][0]["first_seen_as"] == "invoice.pdf"
    assert (landed / LEDGER).read_text() == ledger_before
    assert sorted(p.name for p in (landed / "docs").rglob("*")) == docs_before
    assert (landed / "questions.jsonl").read_bytes() == questions_before
    assert len(list((landing / PROCESSED).iterdir())) == 3


def test_bad_document_is_quarantined_with_a_reason_and_the_good_one_goes_on(tmp_path, tiny_params):
    landing, landed = tmp_path / "landing", tmp_path / "landed"
    _drop(landing, "broken.pdf", b"%PDF-1.4\n this is not a pdf")
    _drop(landing, "invoice.pdf", GOOD_PDF)
    intake = ingest_landing(landing, landed, tiny_params)
    status = {e["name"]: e for e in intake["new"]}
    assert status["invoice.pdf"]["status"] == "accepted"
    assert status["broken.pdf"]["status"] == "quarantined"
    assert status["broken.pdf"]["reason"] == "corrupt PDF"
    assert not (landed / "docs" / "broken.pdf").exists()
    # A quarantined file is remembered too: dropping it again does not trigger a retrain.
    _drop(landing, "broken.pdf", b"%PDF-1.4\n this is not a pdf")
    assert pending_files(landing, landed) == []
    ledger = json.loads((landed / LEDGER).read_text())
    assert {v["status"] for v in ledger.values()} == {"accepted", "quarantined"}


def test_a_file_still_being_copied_waits_for_the_next_look(tmp_path, tiny_params):
    landing, landed = tmp_path / "landing", tmp_path / "landed"
    landing.mkdir()
    (landing / "invoice.pdf").write_bytes(GOOD_PDF)  # mtime now: within the settle time
    assert pending_files(landing, landed, settle_seconds=30) == []
    assert ingest_landing(landing, landed, tiny_params, settle_seconds=30)["new"] == []
    assert (landing / "invoice.pdf").exists()


def test_merge_appends_landed_pages_and_questions_to_the_corpus(tmp_path, tiny_params, tiny_corpus):
    corpus_dir = tmp_path / "corpus"
    shutil.copytree(tiny_corpus.root, corpus_dir)
    landing, landed = tmp_path / "landing", tmp_path / "landed"
    _drop(landing, "invoice.pdf", GOOD_PDF)
    _drop(landing, "questions.jsonl", QUESTIONS)
    ingest_landing(landing, landed, tiny_params)

    summary = merge_landed(corpus_dir, landed, tiny_params)
    assert summary["landed_pages"] == 1 and summary["landed_questions"] == 1
    merged = load_corpus(corpus_dir)
    assert len(merged.pages) == len(tiny_corpus.pages) + 1
    page = merged.page("landed/invoice.pdf#0")
    assert merged.image_path(page).is_file()
    assert "1234" in page.text
    question = next(q for q in merged.questions if q.id == "landed/q1")
    assert question.doc == "landed/invoice.pdf" and question.page == 0
    # Rerunning the merge (DVC reruns generate first, which rewrites the tables) keeps one copy.
    shutil.copy(tiny_corpus.root / "pages.jsonl", corpus_dir / "pages.jsonl")
    shutil.copy(tiny_corpus.root / "questions.jsonl", corpus_dir / "questions.jsonl")
    merge_landed(corpus_dir, landed, tiny_params)
    assert len(load_corpus(corpus_dir).pages) == len(tiny_corpus.pages) + 1


def test_merge_with_nothing_landed_leaves_the_corpus_alone(tmp_path, tiny_params, tiny_corpus):
    corpus_dir = tmp_path / "corpus"
    shutil.copytree(tiny_corpus.root, corpus_dir)
    before = (corpus_dir / "pages.jsonl").read_bytes()
    assert merge_landed(corpus_dir, tmp_path / "landed", tiny_params)["landed_pages"] == 0
    assert (corpus_dir / "pages.jsonl").read_bytes() == before


def test_only_the_landing_folder_is_scanned(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    _drop(tmp_path, "escape.pdf", GOOD_PDF)  # a sibling of the landing folder, never scanned
    assert pending_files(landing, tmp_path / "landed") == []


def test_landing_ingest_command_prints_the_intake_and_sends_no_event_with_no_emit(tmp_path):
    """`regionops landing ingest --no-emit` (its `--emit` flag once shadowed the output function)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    landing, landed = tmp_path / "landing", tmp_path / "landed"
    _drop(landing, "memo.pdf", make_pdf([[(20, 150, "Memo 12 approved")]]))
    cmd = [sys.executable, "-m", "components.cli", "landing", "ingest", "--landing", str(landing)]
    cmd += ["--landed", str(landed), "--params", str(REPO / "params.yaml"), "--no-emit"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    intake = json.loads(proc.stdout)
    assert intake["changed"] and [e["name"] for e in intake["new"]] == ["memo.pdf"]
    assert "arrival event" not in proc.stderr
