"""Import a user's documents through the data contract (docs/data-contract.md).

PDFs are rendered with pypdfium2 at ``data.render_dpi`` and keep the PDF's own text layer (word
boxes converted from PDF space, origin bottom-left, to normalised top-left) and layout blocks
grouped from its text and objects (``components.data.pdf_layout``). Images (png, jpg,
tiff) become single pages; without a text layer they are OCR'd when ``pytesseract`` (the ``ocr``
extra) and a tesseract binary are present, else kept as visual-only pages and counted.

Bad input never stops the import: each bad document or question line is quarantined with a reason
and the good records go through. Output is a corpus folder with the same layout as ``generate``,
plus ``quarantine/{documents,questions}.jsonl`` and ``import_report.json``.

Over 400 lines on purpose: PDF, image and question import share the quarantine, path-safety and
OCR decisions of one data contract.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import ValidationError

from components.config import Params
from components.data.corpus import UnsafePathError, jsonl_lines, safe_join, save_corpus_tables
from components.data.import_guard import (
    ESCAPES_ROOT,
    UnsafeImportError,  # noqa: F401 - re-exported: the CLI catches it from here
    check_collection_name,
    check_folders,
    document_files,
    printable,
    staging_folder,
    swap_in,
    unencodable,
)
from components.data.pdf_objects import utf16_text
from components.data.quarantine import Quarantine
from components.data.schema import Block, Page, Question, Word

log = logging.getLogger(__name__)

PDF_SUFFIXES = {".pdf"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


class DocumentRejected(Exception):
    """A document cannot be imported; ``reason`` is the stable category."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# --- text layers ------------------------------------------------------------------------------


def _pdf_words(page, width_pt: float, height_pt: float) -> list[Word]:
    """Words of a PDF page from its text layer, boxes normalised with origin top-left."""
    import pypdfium2.raw as pdfium_c

    textpage = page.get_textpage()
    crop_left, _, _, crop_top = page.get_cropbox()  # what is rendered: the crop box
    try:
        words: list[Word] = []
        chars: list[str] = []
        box: list[float] | None = None

        def flush() -> None:
            nonlocal chars, box
            if chars and box is not None:
                left, bottom, right, top = box
                # PDF space: origin bottom-left, y up -> normalised, origin top-left, y down
                nb = (
                    max(0.0, (left - crop_left) / width_pt),
                    max(0.0, (crop_top - top) / height_pt),
                    min(1.0, (right - crop_left) / width_pt),
                    min(1.0, (crop_top - bottom) / height_pt),
                )
                if nb[0] < nb[2] and nb[1] < nb[3]:
                    words.append(
                        Word(text=utf16_text("".join(chars)), box=tuple(round(v, 5) for v in nb))
                    )
            chars, box = [], None

        for i in range(textpage.count_chars()):
            ch = chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, i))
            if ch.isspace() or ch == "\x00" or ord(ch) in (0xFFFE, 0xFFFF):
                flush()
                continue
            left, bottom, right, top = textpage.get_charbox(i)
            if right <= left or top <= bottom:  # generated/invisible char
                chars.append(ch)
                continue
            box = (
                [left, bottom, right, top]
                if box is None
                else [min(box[0], left), min(box[1], bottom), max(box[2], right), max(box[3], top)]
            )
            chars.append(ch)
        flush()
        return words
    finally:
        textpage.close()


def _pdf_blocks(page, rel: str, index: int) -> tuple[list[Block], str]:
    """Layout blocks from the PDF's own text and objects (``blocks_from`` "pdf"); on a page the
    grouping cannot read, none (``blocks_from`` "words": readers group the words instead)."""
    from components.data.pdf_layout import pdf_page_blocks

    try:
        return pdf_page_blocks(page), "pdf"
    except (ValueError, ArithmeticError, IndexError, KeyError, OSError, RuntimeError) as exc:
        log.warning(
            "%s page %d: PDF layout failed (%s); its words will be grouped instead", rel, index, exc
        )
        return [], "words"


def _ocr_available() -> bool:
    try:
        import pytesseract  # noqa: F401 - optional `ocr` extra

        return shutil.which("tesseract") is not None
    except ImportError:
        return False


def _ocr_words(image: Image.Image) -> list[Word]:
    import pytesseract

    data = pytesseract.image_to_data(image, output_type=pytesseract.Output.DICT)
    w, h = image.size
    words = []
    for text, left, top, bw, bh, conf in zip(
        data["text"], data["left"], data["top"], data["width"], data["height"], data["conf"]
    ):
        if text.strip() and float(conf) >= 0 and bw > 0 and bh > 0:
            words.append(
                Word(
                    text=text.strip(),
                    box=(left / w, top / h, min(1.0, (left + bw) / w), min(1.0, (top + bh) / h)),
                )
            )
    return words


# --- documents --------------------------------------------------------------------------------


def _classify_unloadable_pdf(path: Path, rel: str, message: str) -> DocumentRejected:
    """Why pdfium refused a PDF. pdfium's last-error code is process-global and goes stale (and it
    refuses zero-page files with no error at all), so a second parser, pypdf, names the cause."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.CRITICAL)  # its parse complaints repeat what the reason says
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(path, strict=False)
            if reader.is_encrypted:
                return DocumentRejected("encrypted PDF", f"{rel} is encrypted (password required)")
            if len(reader.pages) == 0:
                return DocumentRejected("zero-page PDF", f"{rel} has no pages")
    except (
        PyPdfError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
    ) as exc:
        return DocumentRejected("corrupt PDF", f"{rel} cannot be read: {message}; pypdf: {exc}")
    finally:
        pypdf_log.setLevel(level)
    return DocumentRejected("corrupt PDF", f"{rel} cannot be read: {message}")


def _oversized_page(
    rel: str, index: int, width_pt: float, height_pt: float, scale: float
) -> str | None:
    """Why a page must not be rendered: more pixels than Pillow's bomb limit (as ``_load_image``)."""
    pixels = (width_pt * scale) * (height_pt * scale)
    if pixels > Image.MAX_IMAGE_PIXELS:
        return (
            f"{rel} page {index}: {width_pt:.0f}×{height_pt:.0f} pt would render to "
            f"{pixels / 1e6:.0f} Mpx, above the {Image.MAX_IMAGE_PIXELS / 1e6:.0f} Mpx limit"
        )
    return None


def _render_pdf(
    path: Path,
    rel: str,
    out_dir: Path,
    params: Params,
    oversized: list[tuple[int, str]] | None = None,
) -> list[tuple[Page, bool]]:
    """Render every page; a page too large to render is left out and listed in ``oversized``."""
    import pypdfium2 as pdfium

    oversized = [] if oversized is None else oversized

    if path.stat().st_size == 0:
        raise DocumentRejected("empty file", f"{rel} is 0 bytes")
    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        raise _classify_unloadable_pdf(path, rel, str(exc)) from None
    try:
        if len(pdf) == 0:
            raise DocumentRejected("zero-page PDF", f"{rel} has no pages")
        out: list[tuple[Page, bool]] = []
        scale = params.data.render_dpi / 72
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                width_pt, height_pt = page.get_size()
                too_large = _oversized_page(rel, index, width_pt, height_pt, scale)
                if too_large:  # decided before rendering: a 60000 pt page would exhaust memory
                    oversized.append((index, too_large))
                    continue
                try:
                    image = page.render(scale=scale).to_pil().convert("RGB")
                except MemoryError:
                    oversized.append((index, f"{rel} page {index}: out of memory while rendering"))
                    continue
                words = _pdf_words(page, width_pt, height_pt)
                blocks, layout = _pdf_blocks(page, rel, index) if words else ([], "words")
            finally:
                page.close()
            ocr = False
            if not words and _ocr_available():
                words, ocr = _ocr_words(image), True
            out.append(
                (
                    _save_page(
                        image,
                        rel,
                        index,
                        words,
                        out_dir,
                        {"source": "pdf", "ocr": ocr, "dpi": params.data.render_dpi},
                    ),
                    ocr,
                )
            )
            out[-1][0].blocks, out[-1][0].meta["blocks_from"] = blocks, layout
        if not out and oversized:
            raise DocumentRejected("page too large", "; ".join(detail for _, detail in oversized))
        return out
    except DocumentRejected:
        raise
    except pdfium.PdfiumError as exc:
        raise DocumentRejected("corrupt PDF", f"{rel} failed while rendering: {exc}") from None
    finally:
        pdf.close()


def _load_image(path: Path, rel: str, out_dir: Path) -> list[tuple[Page, bool]]:
    if path.stat().st_size == 0:
        raise DocumentRejected("empty file", f"{rel} is 0 bytes")
    try:
        with warnings.catch_warnings():
            # above MAX_IMAGE_PIXELS Pillow only warns; a page that large is treated as a bomb too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.seek(0)  # multi-frame TIFF: the first frame is the page
                image = img.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DocumentRejected("decompression bomb", f"{rel}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DocumentRejected("unreadable image", f"{rel}: {exc}") from None
    words, ocr = [], False
    if _ocr_available():
        words, ocr = _ocr_words(image), True
    return [(_save_page(image, rel, 0, words, out_dir, {"source": "image", "ocr": ocr}), ocr)]


def _save_page(
    image: Image.Image, rel: str, index: int, words: list[Word], out_dir: Path, meta: dict
) -> Page:
    image_rel = f"images/{rel}/{index}.png"
    target = safe_join(out_dir, image_rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, format="PNG", compress_level=1)
    return Page(
        doc=rel,
        page=index,
        image=image_rel,
        width=image.width,
        height=image.height,
        words=words,
        meta=meta,
    )


def _split_of(doc: str, params: Params) -> str:
    """Deterministic split per document (hash of its path), so re-imports keep their splits."""
    u = int(hashlib.sha256(doc.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < params.data.test_fraction:
        return "test"
    if u < params.data.test_fraction + params.data.val_fraction:
        return "val"
    return "train"


# --- questions --------------------------------------------------------------------------------


def _box_problem(box: Any) -> tuple[str, str] | None:
    if box is None:
        return None
    if not (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
    ):
        return "malformed box", f"box {box!r} is not four numbers"
    if not all(0.0 <= v <= 1.0 for v in box):
        return "box out of range", f"box {box} is outside [0, 1]"
    if not (box[0] < box[2] and box[1] < box[3]):
        return "box out of range", f"box {box} needs x0 < x1 and y0 < y1"
    return None


def _import_questions(
    qfile: Path,
    docs_dir: Path,
    out_dir: Path,
    pages: dict[str, Page],
    rejected_docs: dict[str, str],
    params: Params,
    quarantine: Quarantine,
) -> tuple[list[Question], Counter]:
    questions: list[Question] = []
    first_line: dict[str, int] = {}
    extra_keys: Counter = Counter()
    for lineno, raw in jsonl_lines(qfile):

        def reject(
            reason: str,
            detail: str,
            record: Any = None,
            qid: str | None = None,
            lineno: int = lineno,
        ) -> None:
            quarantine.add("questions", reason, detail, line=lineno, id=qid, record=record)

        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            reject(
                "unreadable line",
                f"line {lineno} is not valid UTF-8 ({exc.reason} at byte {exc.start})",
                raw.decode("utf-8", "replace"),
            )
            continue
        except json.JSONDecodeError as exc:
            reject(
                "unreadable line",
                f"line {lineno} is not valid JSON ({exc.msg})",
                raw.decode("utf-8", "replace"),
            )
            continue
        if not isinstance(record, dict):
            reject(
                "unreadable line",
                f"line {lineno} is a JSON {type(record).__name__}, not an object",
                record,
            )
            continue
        bad_text = unencodable(record)
        if bad_text is not None:  # json.loads accepts "\ud800"; writing it as UTF-8 would fail
            record = printable(record)
            reject(
                "invalid unicode",
                f"line {lineno} holds a lone surrogate, not encodable as UTF-8: {bad_text}",
                record,
                record.get("id") if isinstance(record.get("id"), str) else None,
            )
            continue
        qid = record.get("id") if isinstance(record.get("id"), str) else None
        missing = [k for k in ("id", "question") if k not in record]
        if missing:
            reject("missing field", f"missing field(s) {', '.join(missing)}", record, qid)
            continue
        problem = _box_problem(record.get("box"))
        if problem:
            reject(*problem, record, qid)
            continue
        doc = record.get("doc")
        if doc is not None:
            if not isinstance(doc, str):
                reject("schema violation", f"doc {doc!r} is not a string", record, qid)
                continue
            try:
                safe_join(docs_dir, doc)
            except UnsafePathError as exc:
                reject("path escapes the corpus root", str(exc), record, qid)
                continue
        if record.get("query_image") is not None:
            try:
                source = safe_join(docs_dir, str(record["query_image"]))
            except UnsafePathError as exc:
                reject("path escapes the corpus root", str(exc), record, qid)
                continue
            if not source.is_file():
                reject(
                    "query image not found",
                    f"query image {record['query_image']} not found",
                    record,
                    qid,
                )
                continue
        try:
            fields = dict(record)
            fields.setdefault("split", _split_of(doc, params) if isinstance(doc, str) else "test")
            fields.setdefault("labelled", record.get("box") is not None)
            q = Question.model_validate(fields)
        except ValidationError as exc:
            errors = exc.errors()
            reason = (
                "missing field"
                if all(e["type"] == "missing" for e in errors)
                else "schema violation"
            )
            reject(
                reason,
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors),
                record,
                qid,
            )
            continue
        if q.id in first_line:
            reject(
                "duplicate id", f"id {q.id!r} already used on line {first_line[q.id]}", record, qid
            )
            continue
        if q.doc is not None:
            if q.doc in rejected_docs:
                reject(
                    "document quarantined",
                    f"{q.doc} was quarantined: {rejected_docs[q.doc]}",
                    record,
                    qid,
                )
                continue
            if q.page is not None and q.page_id not in pages:
                reject(
                    "doc/page not in the corpus", f"page {q.page_id} was not imported", record, qid
                )
                continue
            if q.page is None and not any(p.doc == q.doc for p in pages.values()):
                reject(
                    "doc/page not in the corpus", f"document {q.doc} was not imported", record, qid
                )
                continue
        if q.query_image:
            target = safe_join(out_dir, f"query_images/{q.query_image}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(safe_join(docs_dir, q.query_image), target)
            q.query_image = f"query_images/{q.query_image}"
        first_line[q.id] = lineno
        extra_keys.update(q.meta.keys())
        questions.append(q)
    return questions, extra_keys


# --- entry point ------------------------------------------------------------------------------


def _progress(items: list, description: str):
    import sys

    if sys.stderr.isatty() and len(items) > 1:
        from rich.progress import track

        return track(items, description=description)
    return items


def import_documents(
    docs_dir: Path, questions: Path | None, out_dir: Path, params: Params, collection: str
) -> dict[str, Any]:
    """Import ``docs_dir`` (PDFs and images) and an optional questions JSONL into the corpus folder ``out_dir``.

    The corpus is written into a temporary sibling folder and swapped in only when complete:
    a crash leaves the previous import (or nothing) in place, never half a corpus.
    """
    check_collection_name(collection)
    docs_dir, out_dir = Path(docs_dir).resolve(), Path(out_dir)
    if not docs_dir.is_dir():
        raise NotADirectoryError(f"--docs {docs_dir} is not a folder")
    if questions is not None and not Path(questions).is_file():
        raise FileNotFoundError(f"--questions {questions} not found")
    check_folders(docs_dir, out_dir, questions)
    staging = staging_folder(out_dir)
    try:
        report = _import_into(docs_dir, questions, staging, params, collection)
        report["corpus_dir"] = str(out_dir)  # where it will be, not where it is being written
        report["quarantine"] = {
            t: str(out_dir / "quarantine" / Path(p).name) for t, p in report["quarantine"].items()
        }
        (staging / "import_report.json").write_text(
            json.dumps(report, indent=2, sort_keys=True) + "\n", "utf-8"
        )
        swap_in(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _import_into(
    docs_dir: Path, questions: Path | None, out_dir: Path, params: Params, collection: str
) -> dict[str, Any]:
    quarantine = Quarantine()
    quarantine.ensure("documents", "questions", "pages")
    files, unsupported = document_files(docs_dir, PDF_SUFFIXES | IMAGE_SUFFIXES, quarantine)
    skipped = sorted(
        printable(str(p.relative_to(docs_dir)))
        for p in unsupported
        if questions is None or p.resolve() != Path(questions).resolve()
    )
    pages: dict[str, Page] = {}
    rejected: dict[str, str] = {}
    visual_only = ocr_pages = 0
    for path in _progress(files, "importing documents"):
        rel = path.relative_to(docs_dir).as_posix()
        if unencodable(rel) is not None:  # a non-UTF-8 file name: it could not be written out
            rel = printable(rel)
            detail = f"the file name {rel} is not valid UTF-8"
            quarantine.add("documents", "invalid unicode", detail, doc=rel)
            rejected[rel] = detail
            continue
        oversized: list[tuple[int, str]] = []
        try:
            loaded = (  # read through the resolved path: the one checked to be inside --docs
                _render_pdf(path.resolve(), rel, out_dir, params, oversized)
                if path.suffix.lower() in PDF_SUFFIXES
                else _load_image(path.resolve(), rel, out_dir)
            )
        except DocumentRejected as exc:
            quarantine.add("documents", exc.reason, exc.detail, doc=rel)
            rejected[rel] = exc.detail
            shutil.rmtree(
                out_dir / "images" / rel, ignore_errors=True
            )  # pages rendered before a failure
            continue
        for index, detail in oversized:  # the document's other pages go on
            quarantine.add("pages", "page too large", detail, doc=rel, page=index)
        split = _split_of(rel, params)
        for page, ocr in loaded:
            page.split, page.collection = split, collection  # type: ignore[assignment]
            page.tags = [collection]
            pages[page.id] = page
            visual_only += not page.words
            ocr_pages += ocr

    question_list: list[Question] = []
    extra_keys: Counter = Counter()
    if questions is not None:
        question_list, extra_keys = _import_questions(
            Path(questions), docs_dir, out_dir, pages, rejected, params, quarantine
        )

    save_corpus_tables(out_dir, pages.values(), question_list)
    paths = quarantine.write(out_dir / "quarantine")
    escaped = sum(r["reason"] == ESCAPES_ROOT for r in quarantine.records["documents"])
    report = {
        "collection": collection,
        "corpus_dir": str(out_dir),
        "documents": {
            "total": len(files) + escaped,
            "accepted": len(files) - len(rejected),
            "quarantined": len(rejected) + escaped,
            "reasons": dict(quarantine.reasons("documents")),
            "pages_quarantined": quarantine.count("pages"),
            "skipped_unsupported": skipped,
        },
        "pages": len(pages),
        "visual_only_pages": visual_only,
        "ocr_pages": ocr_pages,
        "ocr_available": _ocr_available(),
        "questions": {
            "accepted": len(question_list),
            "quarantined": quarantine.count("questions"),
            "reasons": dict(quarantine.reasons("questions")),
        },
        "extra_question_keys": dict(sorted(extra_keys.items())),
        "splits": {s: sum(p.split == s for p in pages.values()) for s in ("train", "val", "test")},
        "quarantine": paths,
    }
    manifest = {
        "importer": "components.data.importer",
        "collection": collection,
        "source": str(docs_dir),
        "render_dpi": params.data.render_dpi,
        "pages": len(pages),
        "questions": len(question_list),
    }
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", "utf-8"
    )
    return report
