"""The real-PDF benchmark layout: seeded page choice, subset PDFs, provenance, idempotence.

PDFs are drawn here with matplotlib; nothing is downloaded (the apt side lives in
scripts/real_docs.py and is not run by tests).
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from components.config import RealDocsParams
from components.data.realdocs import ALLOWED_PACKAGES, SourcePdf, build_set, plan_set, write_subset
from components.data.schema import Question

PROSE = [
    "The installer copies every file into the prefix directory before it",
    "checks the signatures of the archive. Once the archive is verified the",
    "compiler builds the runtime library and the documentation pages for",
    "every installed language. The whole procedure takes a few minutes.",
]


def _make_pdf(path, n_pages: int, caption_pages: set[int], tag: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(path) as pdf:
        for i in range(n_pages):
            fig = plt.figure(figsize=(8.5, 11))
            fig.text(0.1, 0.92, f"{i + 1} Section {tag} {i}", fontsize=15, weight="bold")
            for j, line in enumerate(PROSE * 2):
                # each page's prose differs (page number and tag), so no sentence repeats
                fig.text(
                    0.1, 0.86 - j * 0.018, f"{line} {tag}{i}" if j % 4 == 3 else line, fontsize=10
                )
            if i in caption_pages:
                ax = fig.add_axes((0.25, 0.35, 0.5, 0.2))
                ax.plot([0, 1], [0, i])
                fig.text(
                    0.2,
                    0.3,
                    f"Figure {i + 1}: Build time of package {tag} on page {i}",
                    fontsize=10,
                )
            pdf.savefig(fig)
            plt.close(fig)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("pkgs")
    out = {}
    for package, n_pdfs in (("alpha-doc", 2), ("beta-doc", 1)):
        out[package] = []
        for k in range(n_pdfs):
            path = root / f"{package}-{k}.pdf"
            _make_pdf(path, 5, {1, 3}, f"{package[0]}{k}")
            out[package].append(
                SourcePdf(package, "1.0", "0" * 64, path, f"usr/share/doc/{package}/m{k}.pdf")
            )
    return out


PARAMS = RealDocsParams(
    dev_packages=["alpha-doc", "beta-doc"],
    train_packages=[],
    max_pages_per_pdf=3,
    min_page_words=20,
    caption_page_share=0.5,
)


def test_page_plan_is_seeded_capped_and_within_budget(sources):
    picks, _ = plan_set(sources, ["alpha-doc", "beta-doc"], 6, PARAMS, seed=5)
    again, _ = plan_set(sources, ["alpha-doc", "beta-doc"], 6, PARAMS, seed=5)
    assert [(p.doc, p.pages) for p in picks] == [(p.doc, p.pages) for p in again]
    assert sum(len(p.pages) for p in picks) == 6
    assert all(len(p.pages) <= PARAMS.max_pages_per_pdf for p in picks)
    assert {p.source.package for p in picks} == {"alpha-doc", "beta-doc"}
    alpha = [pg for p in picks if p.source.package == "alpha-doc" for pg in p.pages]
    assert sum(pg in (1, 3) for pg in alpha) >= 1  # the caption quota reached a captioned page


def test_package_shortfall_goes_to_the_next_package(sources):
    picks, _ = plan_set(sources, ["beta-doc", "alpha-doc"], 10, PARAMS, seed=5)
    per = {
        pkg: sum(len(p.pages) for p in picks if p.source.package == pkg)
        for pkg in ("alpha-doc", "beta-doc")
    }
    assert per == {
        "beta-doc": 3,
        "alpha-doc": 6,
    }  # beta has one PDF: capped at 3, alpha takes the rest


def test_subset_pdf_holds_exactly_the_chosen_pages(sources, tmp_path):
    import pypdfium2 as pdfium

    src = sources["beta-doc"][0].path
    write_subset(src, [1, 3], tmp_path / "sub.pdf")
    sub, full = pdfium.PdfDocument(str(tmp_path / "sub.pdf")), pdfium.PdfDocument(str(src))
    texts = [sub[i].get_textpage().get_text_range() for i in range(len(sub))]
    assert texts == [full[i].get_textpage().get_text_range() for i in (1, 3)]
    assert not list(tmp_path.glob("*.tmp"))


def test_build_set_writes_docs_questions_and_provenance_and_is_idempotent(sources, tmp_path):
    picks, skips = plan_set(sources, ["alpha-doc", "beta-doc"], 6, PARAMS, seed=5)
    summary = build_set("dev", picks, tmp_path, PARAMS, seed=5, plan_skips=skips)
    manifest = json.loads((tmp_path / "dev" / "manifest.json").read_text())
    questions = [
        json.loads(x) for x in (tmp_path / "dev" / "questions.jsonl").read_text().splitlines()
    ]
    assert summary["pages"] == 6 and summary["questions"] == len(questions) > 0
    assert sum(summary["questions_by_kind"].values()) == len(questions)
    for d in manifest["docs"]:
        assert (tmp_path / "dev" / "docs" / d["doc"]).is_file()
        assert d["package"] in ("alpha-doc", "beta-doc") and d["version"] == "1.0"
        assert len(d["sha256"]) == 64 and len(d["source_sha256"]) == 64
    docs = {d["doc"]: len(d["source_pages"]) for d in manifest["docs"]}
    for q in questions:
        Question.model_validate(q)
        assert q["split"] == "test" and q["page"] < docs[q["doc"]]
    files = [*(tmp_path / "dev" / "docs").rglob("*.pdf"), tmp_path / "dev" / "questions.jsonl"]
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    again = build_set("dev", picks, tmp_path, PARAMS, seed=5, plan_skips=skips)
    assert again == summary
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes  # nothing rewritten or re-derived
    # a changed parameter re-derives the questions from the kept PDFs
    all_labelled = PARAMS.model_copy(update={"labelled_fraction": 1.0})
    changed = build_set("dev", picks, tmp_path, all_labelled, seed=5, plan_skips=skips)
    assert changed["labelled"] == changed["questions"] == summary["questions"]


def test_realdocs_sets_must_not_share_a_package():
    with pytest.raises(ValidationError, match="both dev_packages and train_packages"):
        RealDocsParams(dev_packages=["debian-faq"], train_packages=["debian-faq"])


def test_default_split_uses_only_allowed_packages():
    p = RealDocsParams()
    assert set(p.dev_packages) | set(p.train_packages) <= ALLOWED_PACKAGES


def test_a_package_without_pdfs_takes_no_share_of_the_budget(sources):
    with_empty = {**sources, "empty-doc": []}
    picks, _ = plan_set(with_empty, ["beta-doc", "alpha-doc", "empty-doc"], 9, PARAMS, seed=5)
    assert sum(len(p.pages) for p in picks) == 9  # before: empty-doc's third of the budget was lost
