"""Import never deletes or reads what it must not: folders, names, links, huge pages, bad unicode."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from components.data import importer
from components.data.importer import UnsafeImportError, import_documents
from tests.data.test_data_import import make_pdf

REPO = Path(__file__).resolve().parents[2]
GOOD_PDF = make_pdf([[(20, 150, "Hello world")]])


def _docs(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "a.pdf").write_bytes(GOOD_PDF)
    Image.new("RGB", (40, 30), (10, 120, 10)).save(root / "b.png")
    return root


def _rows(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text("utf-8").splitlines()] if path.exists() else []
    )


def _pdf_with_page_sizes(sizes: list[tuple[float, float]]) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for width, height in sizes:
        writer.add_blank_page(width=width, height=height)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["../../../victim", "a/b", "..", ".hidden", "x" * 65, "bad name"])
def test_import_refuses_a_collection_name_that_is_not_a_slug(tmp_path, name, monkeypatch):
    from components.cli import app

    docs = _docs(tmp_path / "docs")
    work = tmp_path / "deep" / "er" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    result = CliRunner().invoke(
        app,
        [
            "import",
            "--docs",
            str(docs),
            "--name",
            name,
            "--no-dvc",
            "--params",
            str(REPO / "params.yaml"),
        ],
    )
    assert result.exit_code == 2 and "slug" in result.output
    assert not (tmp_path / "victim").exists() and not (work / "data").exists()


def test_import_keeps_source_documents_when_docs_is_inside_the_output(tmp_path, tiny_params):
    project = tmp_path / "P"
    docs = _docs(project / "images")
    with pytest.raises(UnsafeImportError, match="inside the output folder"):
        import_documents(docs, None, project, tiny_params, collection="mine")
    assert sorted(p.name for p in docs.iterdir()) == ["a.pdf", "b.png"]


def test_import_refuses_an_output_folder_holding_foreign_files(tmp_path, tiny_params):
    docs = _docs(tmp_path / "docs")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "pages.jsonl").write_text("my own table\n")
    with pytest.raises(UnsafeImportError, match="notes.txt"):
        import_documents(docs, None, out, tiny_params, collection="mine")
    assert (out / "notes.txt").read_text() == "mine" and (
        out / "pages.jsonl"
    ).read_text() == "my own table\n"


def test_a_failed_reimport_leaves_the_previous_corpus_whole(tmp_path, tiny_params, monkeypatch):
    docs = _docs(tmp_path / "docs")
    out = tmp_path / "imports" / "mine"
    import_documents(docs, None, out, tiny_params, collection="mine")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (docs / "c.png").write_bytes((docs / "b.png").read_bytes())

    def crash(path, rel, out_dir):
        raise RuntimeError("killed mid-import")

    monkeypatch.setattr(importer, "_load_image", crash)
    with pytest.raises(RuntimeError, match="killed mid-import"):
        import_documents(docs, None, out, tiny_params, collection="mine")
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["mine"]  # no staging debris
    monkeypatch.undo()
    report = import_documents(
        docs, None, out, tiny_params, collection="mine"
    )  # a re-import replaces it
    assert report["pages"] == 3 and report["corpus_dir"] == str(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["mine"]


def test_import_quarantines_links_escaping_the_docs_root(tmp_path, tiny_params):
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (20, 20)).save(outside / "secret.png")
    (outside / "inner").mkdir()
    Image.new("RGB", (20, 20)).save(outside / "inner" / "more.png")
    docs = _docs(tmp_path / "docs")
    (docs / "link.png").symlink_to(outside / "secret.png")
    (docs / "dir-link").symlink_to(outside / "inner", target_is_directory=True)
    (docs / "inside.png").symlink_to(docs / "b.png")  # a link that stays inside is fine
    out = tmp_path / "out"
    report = import_documents(docs, None, out, tiny_params, collection="mine")
    rows = {r["doc"]: r for r in _rows(out / "quarantine" / "documents.jsonl")}
    assert rows["link.png"]["reason"] == "path escapes the root"
    assert rows["dir-link"]["reason"] == "path escapes the root"
    docs_imported = {r["doc"] for r in _rows(out / "pages.jsonl")}
    assert docs_imported == {"a.pdf", "b.png", "inside.png"}
    assert report["documents"]["quarantined"] == 2


def test_landing_quarantines_links_escaping_the_landing_root(tmp_path, tiny_params):
    from components.data.landing import ingest_landing

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.pdf").write_bytes(GOOD_PDF)
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "ok.pdf").write_bytes(GOOD_PDF)
    (landing / "escape.pdf").symlink_to(outside / "private.pdf")
    landed = tmp_path / "landed"
    result = ingest_landing(landing, landed, tiny_params, settle_seconds=0)
    assert result["accepted"] == 1 and result["quarantined"] == 1
    assert [e["reason"] for e in result["quarantined_links"]] == ["path escapes the root"]
    assert sorted(p.name for p in (landed / "docs").iterdir()) == ["ok.pdf"]
    assert (outside / "private.pdf").read_bytes() == GOOD_PDF  # the target is never touched


def test_oversized_pdf_page_is_quarantined_and_the_other_pages_go_on(
    tmp_path, tiny_params, monkeypatch
):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # 2000 pt at 96 dpi: 7.1 Mpx
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "poster.pdf").write_bytes(_pdf_with_page_sizes([(200, 200), (2000, 2000), (300, 200)]))
    out = tmp_path / "out"
    report = import_documents(docs, None, out, tiny_params, collection="mine")
    assert sorted(r["page"] for r in _rows(out / "pages.jsonl")) == [0, 2]
    [row] = _rows(out / "quarantine" / "pages.jsonl")
    assert row["reason"] == "page too large" and row["page"] == 1 and row["doc"] == "poster.pdf"
    assert report["documents"]["accepted"] == 1 and report["documents"]["pages_quarantined"] == 1


def test_a_60000_pt_pdf_page_is_quarantined_without_rendering(tmp_path, tiny_params):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "huge.pdf").write_bytes(_pdf_with_page_sizes([(60000, 60000)]))
    Image.new("RGB", (40, 30)).save(docs / "b.png")
    out = tmp_path / "out"
    report = import_documents(docs, None, out, tiny_params, collection="mine")
    rows = {r["doc"]: r for r in _rows(out / "quarantine" / "documents.jsonl")}
    assert rows["huge.pdf"]["reason"] == "page too large" and "Mpx" in rows["huge.pdf"]["detail"]
    assert report["pages"] == 1  # the other document went on


def test_lone_surrogate_in_a_question_is_quarantined_not_fatal(tmp_path, tiny_params):
    docs = _docs(tmp_path / "docs")
    qfile = tmp_path / "questions.jsonl"
    lines = [
        '{"id": "ok", "question": "What is written?", "doc": "a.pdf", "page": 0}',
        '{"id": "bad\\ud800", "question": "What is written?", "doc": "a.pdf", "page": 0}',
        '{"id": "bad-doc", "question": "Where?", "doc": "x\\udcff.pdf"}',
    ]
    qfile.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    report = import_documents(docs, qfile, out, tiny_params, collection="mine")
    assert [q["id"] for q in _rows(out / "questions.jsonl")] == ["ok"]
    rows = _rows(out / "quarantine" / "questions.jsonl")
    assert [r["reason"] for r in rows] == ["invalid unicode", "invalid unicode"]
    assert rows[0]["id"] == "bad\\ud800"  # kept, escaped, in a file that is valid UTF-8
    assert report["questions"]["quarantined"] == 2


def test_a_file_name_that_is_not_utf8_is_quarantined(tmp_path, tiny_params):
    docs = _docs(tmp_path / "docs")
    Image.new("RGB", (20, 20)).save(docs / os.fsdecode(b"scan\xff.png"))
    out = tmp_path / "out"
    report = import_documents(docs, None, out, tiny_params, collection="mine")
    [row] = _rows(out / "quarantine" / "documents.jsonl")
    assert row["reason"] == "invalid unicode" and row["doc"] == "scan\\udcff.png"
    assert report["pages"] == 2


@pytest.mark.parametrize("field,value", [("labelled", "yes"), ("page", "0"), ("page", 0.0)])
def test_question_fields_are_not_coerced_on_import(tmp_path, tiny_params, field, value):
    docs = _docs(tmp_path / "docs")
    qfile = tmp_path / "questions.jsonl"
    record = {"id": "q1", "question": "What is written?", "doc": "a.pdf", "page": 0, field: value}
    qfile.write_text(json.dumps(record) + "\n")
    out = tmp_path / "out"
    import_documents(docs, qfile, out, tiny_params, collection="mine")
    assert _rows(out / "questions.jsonl") == []
    [row] = _rows(out / "quarantine" / "questions.jsonl")
    assert row["reason"] == "schema violation" and field in row["detail"]


def test_import_report_names_the_final_folder_not_the_staging_one(tmp_path, tiny_params):
    out = tmp_path / "imports" / "mine"
    import_documents(_docs(tmp_path / "docs"), None, out, tiny_params, collection="mine")
    report = json.loads((out / "import_report.json").read_text())
    assert report["corpus_dir"] == str(out)
    assert all(
        Path(p).parent == out / "quarantine" and Path(p).is_file()
        for p in report["quarantine"].values()
    )


def test_pending_landing_files_work_with_a_relative_landing_folder(tmp_path, monkeypatch):
    from components.data.landing import pending_files

    monkeypatch.chdir(tmp_path)
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "ok.pdf").write_bytes(GOOD_PDF)
    (tmp_path / "landing" / "escape.pdf").symlink_to(
        tmp_path / "landing" / ".." / ".." / "etc-passwd.pdf"
    )
    assert [
        p["name"] for p in pending_files(Path("landing"), Path("landed"), settle_seconds=0)
    ] == ["ok.pdf"]
