"""Import through the data contract: PDFs with their text layer, images, and every kind of bad input."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from components.data.corpus import load_corpus
from components.data.importer import import_documents


def make_pdf(pages, size=(200, 200), encrypt=False, zero_pages=False):
    """Hand-written minimal PDF: Helvetica text lines at given positions (PDF points, origin bottom-left)."""
    objs = []

    def add(body):
        objs.append(body)
        return len(objs)

    catalog = add(None)
    pages_obj = add(None)
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for lines in [] if zero_pages else pages:
        stream = b"".join(
            b"BT /F1 12 Tf %d %d Td (%s) Tj ET\n" % (x, y, t.encode()) for x, y, t in lines
        )
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
                % (pages_obj, size[0], size[1], font, content)
            )
        )
    objs[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_obj
    objs[pages_obj - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    trailer_extra = b""
    if encrypt:
        enc = add(
            b"<< /Filter /Standard /V 1 /R 2 /Length 40 /P -4 /O <"
            + b"ab" * 32
            + b"> /U <"
            + b"cd" * 32
            + b"> >>"
        )
        trailer_extra = (
            b" /Encrypt %d 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>]"
            % enc
        )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objs) + 1,
        catalog,
        trailer_extra,
        xref,
    )
    return bytes(out)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims a huge size (Pillow checks the size when opening)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def encrypted_pdf(path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    plain = path.with_suffix(".plain")
    plain.write_bytes(make_pdf([[(20, 150, "secret")]]))
    writer = PdfWriter()
    for page in PdfReader(plain).pages:
        writer.add_page(page)
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="AES-128")
    with path.open("wb") as fh:
        writer.write(fh)
    plain.unlink()


GOOD = {
    "id": "g1",
    "question": "What is the total?",
    "answers": ["42"],
    "doc": "good.pdf",
    "page": 0,
    "box": [0.1, 0.45, 0.32, 0.5],
    "source": "annotator-7",
}


@pytest.fixture()
def messy(tmp_path) -> tuple[Path, Path]:
    docs = tmp_path / "docs"
    (docs / "scans").mkdir(parents=True)
    (docs / "good.pdf").write_bytes(
        make_pdf([[(20, 150, "Hello world"), (20, 100, "Total 42")], [(30, 30, "Second page")]])
    )
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.4\n this is not a pdf")
    encrypted_pdf(docs / "encrypted.pdf")
    (docs / "zero.pdf").write_bytes(make_pdf([], zero_pages=True))
    (docs / "empty.pdf").write_bytes(b"")
    (docs / "bomb.png").write_bytes(bomb_png())
    Image.new("RGB", (64, 48), (200, 30, 30)).save(docs / "scans" / "photo.png")
    (docs / "query.png").parent.mkdir(exist_ok=True)
    Image.new("RGB", (16, 16), (0, 90, 0)).save(docs / "query.png")
    lines = [
        json.dumps(GOOD).encode(),
        json.dumps(
            {**GOOD, "id": "g2", "doc": "scans/photo.png", "box": None, "query_image": "query.png"}
        ).encode(),
        json.dumps({**GOOD, "id": "g3", "page": 1, "box": [0.0, 0.0, 0.5, 0.5]}).encode(),
        b'{"id": "bad-utf8", "question": "caf\xe9?", "doc": "good.pdf", "page": 0}',
        json.dumps({"question": "no id here", "doc": "good.pdf", "page": 0}).encode(),
        json.dumps({**GOOD, "id": "b-box", "box": [0.2, 0.2, 1.7, 0.4]}).encode(),
        json.dumps({**GOOD, "question": "same id again"}).encode(),
        json.dumps({**GOOD, "id": "b-escape", "doc": "../../etc/passwd"}).encode(),
        json.dumps({**GOOD, "id": "b-encrypted", "doc": "encrypted.pdf"}).encode(),
        json.dumps({**GOOD, "id": "b-nopage", "page": 7}).encode(),
        b"",
    ]
    qfile = tmp_path / "questions.jsonl"
    qfile.write_bytes(b"\n".join(lines) + b"\n")
    return docs, qfile


def _reasons(out: Path, table: str) -> dict[str, dict]:
    rows = [
        json.loads(line)
        for line in (out / "quarantine" / f"{table}.jsonl").read_text().splitlines()
    ]
    return {row.get("doc") or row.get("id") or f"line{row['line']}": row for row in rows}


def test_import_quarantines_each_bad_input_and_keeps_the_good(messy, tmp_path, tiny_params):
    docs, qfile = messy
    out = tmp_path / "corpus"
    report = import_documents(docs, qfile, out, tiny_params, collection="mine")

    documents = _reasons(out, "documents")
    assert documents["corrupt.pdf"]["reason"] == "corrupt PDF"
    assert documents["encrypted.pdf"]["reason"] == "encrypted PDF"
    assert documents["zero.pdf"]["reason"] == "zero-page PDF"
    assert documents["empty.pdf"]["reason"] == "empty file"
    assert documents["bomb.png"]["reason"] == "decompression bomb"
    assert "query.png" not in documents
    assert report["documents"]["quarantined"] == 5

    questions = _reasons(out, "questions")
    assert (
        questions["line4"]["reason"] == "unreadable line"
        and "UTF-8" in questions["line4"]["detail"]
    )
    assert questions["line5"]["reason"] == "missing field" and "id" in questions["line5"]["detail"]
    assert questions["b-box"]["reason"] == "box out of range"
    assert questions["g1"]["reason"] == "duplicate id" and "line 1" in questions["g1"]["detail"]
    assert questions["b-escape"]["reason"] == "path escapes the corpus root"
    assert questions["b-encrypted"]["reason"] == "document quarantined"
    assert questions["b-nopage"]["reason"] == "doc/page not in the corpus"
    assert report["questions"] == {
        "accepted": 3,
        "quarantined": 7,
        "reasons": report["questions"]["reasons"],
    }

    corpus = load_corpus(out)
    assert sorted(p.id for p in corpus.pages) == [
        "good.pdf#0",
        "good.pdf#1",
        "query.png#0",
        "scans/photo.png#0",
    ]
    assert report["visual_only_pages"] == (0 if report["ocr_available"] else 2)
    good = {q.id: q for q in corpus.questions}
    assert set(good) == {"g1", "g2", "g3"}
    assert (
        good["g1"].meta["source"] == "annotator-7" and report["extra_question_keys"]["source"] == 3
    )
    assert good["g2"].query_image and corpus.query_image_path(good["g2"]).is_file()
    assert good["g2"].training_box is None and good["g1"].labelled
    assert all(p.collection == "mine" for p in corpus.pages)


def test_pdf_text_layer_boxes_are_top_left_normalised(messy, tmp_path, tiny_params):
    docs, _ = messy
    out = tmp_path / "c"
    import_documents(docs, None, out, tiny_params, collection="mine")
    corpus = load_corpus(out)
    page = corpus.page("good.pdf#0")
    assert [w.text for w in page.words] == ["Hello", "world", "Total", "42"]
    # "Hello" sits at y=150pt of 200pt from the bottom -> near the top quarter of the page
    hello = page.words[0].box
    assert 0.18 < hello[1] < hello[3] < 0.27 and 0.09 < hello[0] < 0.12
    scale = tiny_params.data.render_dpi / 72
    assert (page.width, page.height) == (round(200 * scale), round(200 * scale))
    # the rendered glyphs are where the text layer says
    img = corpus.load_image(page).convert("L")
    x0, y0, x1, y1 = hello
    crop = img.crop(
        (
            int(x0 * page.width),
            int(y0 * page.height),
            int(x1 * page.width) + 1,
            int(y1 * page.height) + 1,
        )
    )
    assert min(crop.getdata()) < 100


def test_imported_corpus_passes_validation(messy, tmp_path, tiny_params):
    from components.data.validation import validate_corpus

    docs, qfile = messy
    out = tmp_path / "c"
    import_documents(docs, qfile, out, tiny_params, collection="mine")
    result = validate_corpus(out, tmp_path / "v", tiny_params)
    assert result["questions"]["accepted"] == 3 and result["pages"]["quarantined"] == 0
