"""Lay out the real-PDF benchmark: seeded page choice, page-subset PDFs, derived questions.

Given the PDFs of the extracted Debian documentation packages (``scripts/real_docs.py`` fetches
them), each set (``dev``: the judge, ``train``: for later training) gets:

- ``<set>/docs/<package>/<name>.pdf``: a PDF holding only the chosen pages of one source PDF
  (at most ``max_pages_per_pdf``; the set's page budget shared evenly by its packages, a
  package's shortfall going to the next). Pages are chosen seeded among those with a real text
  layer in English; up to ``caption_page_share`` of a package's pages among pages with a
  Figure/Table caption (``plan_set``).
- ``<set>/questions.jsonl``: questions derived from those PDFs (``derived_questions``), ``doc``
  relative to ``<set>/docs`` and ``page`` 0-based in the subset PDF.
- ``<set>/manifest.json``: provenance (package, version, .deb sha256, source path and sha256,
  the source page of every page) and ``<set>/summary.json``: counts per kind, skips per reason.

Nothing here downloads. Re-running keeps subset PDFs whose bytes already match.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components.config import RealDocsParams
from components.data.corpus import write_jsonl_atomic
from components.data.derived_questions import KINDS, derive_questions
from components.text import ENGLISH_FUNCTION_WORDS

# The only packages the benchmark may come from (Debian documentation, freely licensed).
ALLOWED_PACKAGES = frozenset(
    {
        "debian-faq",
        "doc-debian",
        "live-manual",
        "plplot-doc",
        "gprolog-doc",
        "libmpfr-doc",
        "hmmer-doc",
        "texlive-latex-base-doc",
        "texlive-latex-recommended-doc",
        "texlive-science-doc",
        "glpk-doc",
        "ngspice-doc",
        "freefem++-doc",
        "lilypond-doc-pdf",
    }
)
CAPTION_LINE = re.compile(r"(?m)^\s*(?:Figure|Fig\.|Table)\s*\d+(?:\.\d+)*\s*[:.]")


@dataclass
class SourcePdf:
    package: str
    version: str
    deb_sha256: str
    path: Path  # an uncompressed PDF on disk
    source: str  # its path inside the package (".gz" kept when it shipped gzipped)


@dataclass
class PagePick:
    source: SourcePdf
    doc: str  # relative to <set>/docs
    pages: list[int]  # 0-based source pages, in order: subset page i is source page pages[i]
    n_pages: int


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def page_profile(
    path: Path, min_words: int, min_english: float
) -> tuple[list[int], list[int], int]:
    """(eligible pages, eligible pages with a caption, page count) of a PDF."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        eligible, captioned = [], []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            text = textpage.get_text_range()
            textpage.close()
            page.close()
            words = text.split()
            english = sum(w.strip(".,;:()").casefold() in ENGLISH_FUNCTION_WORDS for w in words)
            if len(words) >= min_words and english >= min_english * len(words):
                eligible.append(i)
                if CAPTION_LINE.search(text):
                    captioned.append(i)
        return eligible, captioned, len(pdf)
    finally:
        pdf.close()


def _doc_name(src: SourcePdf, taken: set[str]) -> str:
    stem = Path(src.source).name.removesuffix(".gz")
    name = f"{src.package}/{stem}"
    if name in taken:  # the same file name twice in one package: prefix its folder
        name = f"{src.package}/{Path(src.source).parent.name}-{stem}"
    taken.add(name)
    return name


def plan_set(
    sources: dict[str, list[SourcePdf]],
    packages: list[str],
    budget: int,
    params: RealDocsParams,
    seed: int,
) -> tuple[list[PagePick], Counter]:
    """Seeded page choice for one set; also counts why PDFs gave no page.

    Each package gets an even share of what is left of the budget. Within it, PDFs are visited
    in a seeded order twice: first for pages with a Figure/Table caption (up to
    ``caption_page_share`` of the share: captions are rare and would otherwise hardly be asked),
    then for any eligible page, never more than ``max_pages_per_pdf`` from one PDF.
    """
    picks: list[PagePick] = []
    skipped: Counter = Counter()
    taken: set[str] = set()
    remaining = budget
    # a package that ships no PDF takes no share; the others split the budget in the given order
    # (a package's shortfall passes on to the later ones: list the big packages last)
    shipping = [p for p in packages if sources.get(p)]
    for n, package in enumerate(shipping):
        share = remaining // (len(shipping) - n)
        rng = random.Random(f"{seed}:{package}")
        pdfs = sorted(sources.get(package, []), key=lambda s: s.source)
        rng.shuffle(pdfs)
        chosen, profiles, left = _plan_package(pdfs, share, params, rng)
        skipped["pdf: no page with enough English text"] += sum(
            not prof[0] for prof in profiles.values()
        )
        for i in sorted(chosen, key=lambda i: pdfs[i].source):
            picks.append(
                PagePick(pdfs[i], _doc_name(pdfs[i], taken), sorted(chosen[i]), profiles[i][2])
            )
        remaining -= share - left
    return picks, skipped


def _plan_package(pdfs: list[SourcePdf], share: int, params: RealDocsParams, rng: random.Random):
    """(chosen pages per PDF index, page profiles read, pages of the share left unfilled)."""
    profiles: dict[int, tuple[list[int], list[int], int]] = {}
    chosen: dict[int, set[int]] = {}

    def profile(i: int) -> tuple[list[int], list[int], int]:
        if i not in profiles:
            profiles[i] = page_profile(
                pdfs[i].path, params.min_page_words, params.min_english_share
            )
        return profiles[i]

    left = share
    quota = round(share * params.caption_page_share)
    for i in range(len(pdfs)):
        if quota <= 0:
            break
        captioned = profile(i)[1]
        take = rng.sample(captioned, min(len(captioned), params.max_pages_per_pdf, quota))
        if take:
            chosen[i] = set(take)
            quota -= len(take)
            left -= len(take)
    for i in range(len(pdfs)):
        if left <= 0:
            break
        eligible = [p for p in profile(i)[0] if p not in chosen.get(i, set())]
        room = params.max_pages_per_pdf - len(chosen.get(i, set()))
        take = rng.sample(eligible, max(0, min(len(eligible), room, left)))
        if take:
            chosen.setdefault(i, set()).update(take)
            left -= len(take)
    return chosen, profiles, left


def write_subset(src: Path, pages: list[int], target: Path) -> None:
    """A PDF of ``pages`` of ``src``, written via a temp file so a crash leaves no half file."""
    import pypdfium2 as pdfium

    target.parent.mkdir(parents=True, exist_ok=True)
    source = pdfium.PdfDocument(str(src))
    out = pdfium.PdfDocument.new()
    try:
        out.import_pages(source, pages)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".pdf.tmp")
        os.close(fd)
        try:
            out.save(tmp)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    finally:
        out.close()
        source.close()


def derivation_digest() -> str:
    """A hash of the code that derives questions: a change to it re-derives a kept set."""
    h = hashlib.sha256()
    for name in ("gold_units.py", "gold_geometry.py", "derived_questions.py"):
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:16]


def build_set(
    name: str,
    picks: list[PagePick],
    out: Path,
    params: RealDocsParams,
    seed: int,
    plan_skips: Counter | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict:
    """Write ``out/<name>/{docs/, questions.jsonl, manifest.json, summary.json}``; the summary.

    Kept as it is when the same pages of the same sources were laid out by the same parameters,
    seed and derivation code (``derivation_digest``)."""
    root = out / name
    docs_dir = root / "docs"
    old_manifest = {}
    if (root / "manifest.json").is_file():
        old_manifest = json.loads((root / "manifest.json").read_text("utf-8"))
    old = {d["doc"]: d for d in old_manifest.get("docs", [])}
    key = {
        "seed": seed,
        "params": params.model_dump(mode="json"),
        "derivation": derivation_digest(),
    }
    manifest_docs, all_kept = [], True
    for pick in picks:
        target = docs_dir / pick.doc
        source_sha = sha256_file(pick.source.path)
        before = old.get(pick.doc, {})
        kept = (
            target.is_file()
            and before.get("source_sha256") == source_sha
            and before.get("source_pages") == pick.pages
            and before.get("sha256") == sha256_file(target)
        )
        if not kept:
            write_subset(pick.source.path, pick.pages, target)
        all_kept &= kept
        manifest_docs.append(
            {
                "doc": pick.doc,
                "package": pick.source.package,
                "version": pick.source.version,
                "deb_sha256": pick.source.deb_sha256,
                "source": pick.source.source,
                "source_sha256": source_sha,
                "source_page_count": pick.n_pages,
                "source_pages": pick.pages,
                "sha256": sha256_file(target),
            }
        )
    stale = set(old) - {d["doc"] for d in manifest_docs}
    for doc in sorted(stale):  # subset PDFs this script wrote earlier that the plan dropped
        (docs_dir / doc).unlink(missing_ok=True)
    if (
        all_kept
        and not stale
        and all(old_manifest.get(k) == v for k, v in key.items())
        and (root / "questions.jsonl").is_file()
        and (root / "summary.json").is_file()
    ):
        log(f"{name}: kept ({len(manifest_docs)} documents, same pages, parameters and derivation)")
        return json.loads((root / "summary.json").read_text("utf-8"))
    questions: list[dict] = []
    skips: Counter = Counter()
    seen: set[str] = set()
    for entry in manifest_docs:
        derived = derive_questions(
            docs_dir / entry["doc"],
            entry["doc"],
            seed,
            params.labelled_fraction,
            params.max_questions_per_page,
            seen=seen,
        )
        for q in derived.questions:
            if name == "dev":
                q["split"] = "test"  # the judge: every question is an evaluation question
        questions += derived.questions
        skips.update(derived.skips)
        entry["questions"] = len(derived.questions)
        log(
            f"{name}: {entry['doc']} pages {entry['source_pages']} -> {len(derived.questions)} questions"
        )
    write_jsonl_atomic(root / "questions.jsonl", questions)
    manifest = {"set": name, **key, "docs": manifest_docs}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    by_kind = Counter(q["type"] for q in questions)
    summary = {
        "set": name,
        "packages": sorted({d["package"] for d in manifest_docs}),
        "docs": len(manifest_docs),
        "pages": sum(len(d["source_pages"]) for d in manifest_docs),
        "questions": len(questions),
        "questions_by_kind": {k: by_kind.get(k, 0) for k in KINDS},
        "labelled": sum(q["labelled"] for q in questions),
        "skips": dict(sorted(skips.items())),
        "pdfs_without_pages": dict(plan_skips or {}),
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    return summary
