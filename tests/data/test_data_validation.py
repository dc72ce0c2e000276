"""The Great Expectations gate: quarantine with reasons, accepted.json, reports, the stop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from components.data.corpus import load_corpus
from components.data.validation import QuarantineLimitExceeded, validate_corpus


def _bad_corpus(src: Path, dst: Path) -> dict[str, str]:
    """Copy a good corpus and append one broken record per failure mode; returns id -> expected reason."""
    shutil.copytree(src, dst)
    pages = (dst / "pages.jsonl").read_text().splitlines()
    page = json.loads(pages[0])
    bad_pages = [
        {**page, "page": 90, "image": "images/missing.png"},
        {**page, "page": 91, "image": "../../etc/passwd"},
        {**page, "page": 92, "width": page["width"] + 7},
    ]
    with (dst / "pages.jsonl").open("a") as fh:
        for p in bad_pages:
            fh.write(json.dumps(p) + "\n")
    qlines = (dst / "questions.jsonl").read_bytes().splitlines()
    q = json.loads(qlines[0])
    bad = {
        "q-box": ({**q, "id": "q-box", "box": [0.1, 0.1, 1.3, 0.2]}, "box out of range"),
        "q-flat": (
            {**q, "id": "q-flat", "box": [0.5, 0.1, 0.5, 0.2]},
            "box is empty (needs x0 < x1 and y0 < y1)",
        ),
        "q-empty": ({**q, "id": "q-empty", "question": "   "}, "empty question"),
        "q-nopage": (
            {**q, "id": "q-nopage", "doc": "synthetic/none", "page": 0},
            "doc/page not in the corpus (or quarantined)",
        ),
        "q-onbadpage": (
            {**q, "id": "q-onbadpage", "doc": page["doc"], "page": 90},
            "doc/page not in the corpus (or quarantined)",
        ),
    }
    extra = {**q, "id": "q-extra", "source": "someone", "alt_box": [0, 0, 1, 1]}
    missing = {k: v for k, v in q.items() if k != "question"}
    missing["id"] = "q-missing"
    with (dst / "questions.jsonl").open("ab") as fh:
        for record, _ in bad.values():
            fh.write(json.dumps(record).encode() + b"\n")
        fh.write(json.dumps(extra).encode() + b"\n")
        fh.write(json.dumps(missing).encode() + b"\n")
        fh.write(b'{"id": "q-utf8", "question": "caf\xe9"}\n')
        fh.write(qlines[1] + b"\n")  # duplicate id
    expected = {k: reason for k, (_, reason) in bad.items()}
    expected.update(
        {"q-missing": "missing field", json.loads(qlines[1])["id"]: "duplicate question id"}
    )
    return expected


@pytest.fixture(scope="module")
def bad_run(tiny_corpus, tiny_params, tmp_path_factory):
    root = tmp_path_factory.mktemp("badval")
    expected = _bad_corpus(tiny_corpus.root, root / "corpus")
    result = validate_corpus(root / "corpus", root / "out", tiny_params)
    return root, expected, result


def test_good_corpus_is_all_accepted_with_data_docs(tiny_corpus, tiny_params, tmp_path):
    result = validate_corpus(tiny_corpus.root, tmp_path, tiny_params)
    assert result["passed"] and result["quarantine_fraction"] == 0
    assert result["pages"]["accepted"] == len(tiny_corpus.pages)
    assert result["questions"]["accepted"] == len(tiny_corpus.questions)
    index = Path(result["data_docs"])
    assert index.is_file() and "pages_suite" in index.read_text()
    assert list((tmp_path / "data_docs" / "validations").rglob("*.html"))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["expectations"] and all(e["success"] for e in report["expectations"])
    again = load_corpus(tiny_corpus.root, accepted=tmp_path / "accepted.json")
    assert [q.id for q in again.questions] == [q.id for q in tiny_corpus.questions]


def test_each_bad_record_is_quarantined_with_its_reason(bad_run):
    root, expected, result = bad_run
    rows = [
        json.loads(line)
        for line in (root / "out" / "quarantine" / "questions.jsonl").read_text().splitlines()
    ]
    by_id = {}
    for row in rows:
        by_id.setdefault(row.get("id") or f"line{row['line']}", []).append(row)
    for qid, reason in expected.items():
        assert qid in by_id, f"{qid} not quarantined"
        assert all(r["reason"] == reason for r in by_id[qid]), (qid, by_id[qid])
    dup_id = next(k for k, v in expected.items() if v == "duplicate question id")
    assert len(by_id[dup_id]) == 2, "every record sharing an id is quarantined"
    utf8 = [r for r in rows if r["reason"] == "unreadable line"]
    assert len(utf8) == 1 and "UTF-8" in utf8[0]["detail"]
    assert "q-extra" not in by_id, "unknown keys are kept, not rejected"

    pages = {
        r["record"]["page"]: r
        for r in (
            json.loads(x)
            for x in (root / "out" / "quarantine" / "pages.jsonl").read_text().splitlines()
        )
    }
    assert pages[90]["reason"] == "bad page image" and "not found" in pages[90]["detail"]
    assert pages[91]["reason"] == "bad page image" and "escapes" in pages[91]["detail"]
    assert pages[92]["reason"] == "image size differs from the page record"

    report = json.loads((root / "out" / "report.json").read_text())
    assert report["questions"]["quarantined"] == result["questions"]["quarantined"] == len(rows)
    assert report["extra_question_keys"]["source"] == 1 and report["top_reasons"][0]["count"] >= 2
    assert {e["expectation"] for e in report["expectations"] if not e["success"]} >= {
        "expect_column_values_to_be_unique",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
    }


def test_accepted_json_keeps_quarantined_lines_out(bad_run, tiny_corpus):
    root, expected, _ = bad_run
    corpus = load_corpus(root / "corpus", accepted=root / "out" / "accepted.json")
    ids = [q.id for q in corpus.questions]
    assert len(ids) == len(set(ids))
    assert not set(expected) & set(ids)
    assert "q-extra" in ids and corpus.questions[ids.index("q-extra")].meta["source"] == "someone"
    assert len(corpus.pages) == len(tiny_corpus.pages)
    # an accepted.json with ids only (no line numbers) still never lets a duplicate back in
    keep = json.loads((root / "out" / "accepted.json").read_text())
    dup_id = next(k for k, v in expected.items() if v == "duplicate question id")
    ids_only = root / "ids_only.json"
    ids_only.write_text(
        json.dumps({"pages": keep["pages"], "questions": keep["questions"] + [dup_id]})
    )
    again = load_corpus(root / "corpus", accepted=ids_only)
    assert [q.id for q in again.questions].count(dup_id) == 1


def test_gate_stops_above_the_quarantine_limit(bad_run, tiny_params, tmp_path):
    root, _, result = bad_run
    strict = tiny_params.model_copy(
        update={
            "validate_": tiny_params.validate_.model_copy(
                update={"max_quarantine_fraction": 0.01, "min_text_coverage": 1.0}
            )
        }
    )
    pages = (root / "corpus" / "pages.jsonl").read_text().splitlines()
    corpus = tmp_path / "corpus"
    shutil.copytree(root / "corpus", corpus)
    blank = {
        **json.loads(pages[0]),
        "page": 95,
        "words": [],
        "blocks": [],
    }  # a page with no text layer
    with (corpus / "pages.jsonl").open("a") as fh:
        fh.write(json.dumps(blank) + "\n")
    with pytest.raises(QuarantineLimitExceeded) as err:
        validate_corpus(corpus, tmp_path / "out", strict)
    message = str(err.value)
    assert "duplicate question id" in message and "max_quarantine_fraction" in message
    assert "text-layer coverage" in message
    report = json.loads(
        (tmp_path / "out" / "report.json").read_text()
    )  # reports are written before the stop
    assert report["passed"] is False and (tmp_path / "out" / "accepted.json").is_file()
    assert result["passed"] is True  # the same records pass under the default limit
