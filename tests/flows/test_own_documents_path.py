"""The README's own-documents path, from a fresh clone: `regionops import` -> set
`data.corpus_dir` -> `make run` (the Prefect pipeline over `dvc repro`).

The clone is a git repository of this working tree's tracked files (as `git clone` gives, with
the repo's own `.dvc/` state); the documents are real PDFs with a text layer, written from the
tiny synthetic corpus's words, with its questions. Params get the tiny training budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import load_params
from tests.conftest import TINY_OVERRIDES
from tests.data.test_data_import import make_pdf
from tests.flows.test_pipeline_integration import _client, _run_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
GIT = ["git", "-c", "user.email=test@regionops", "-c", "user.name=test"]


def _fresh_clone(root: Path) -> Path:
    """The tracked files of this working tree, committed into a new git repository."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout
    root.mkdir(parents=True)
    for name in filter(None, files.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(source.read_bytes())
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "clone"], cwd=root, check=True)
    return root


def _pdf_text(text: str) -> str:
    return "".join(c for c in text if 32 <= ord(c) < 127 and c not in "()\\")


def _documents(corpus, out: Path) -> tuple[Path, Path]:
    """One PDF per synthetic document (its words at their places), and its questions."""
    docs = out / "docs"
    docs.mkdir(parents=True)
    names: dict[str, str] = {}
    by_doc: dict[str, list] = {}
    for page in sorted(corpus.pages, key=lambda p: (p.doc, p.page)):
        by_doc.setdefault(page.doc, []).append(page)
    width, height = corpus.pages[0].width, corpus.pages[0].height
    for doc, pages in by_doc.items():
        names[doc] = doc.replace("/", "_").removesuffix(".pdf") + ".pdf"
        lines = [
            [
                (int(w.box[0] * width), int((1 - w.box[3]) * height), _pdf_text(w.text))
                for w in p.words
                if _pdf_text(w.text)
            ]
            for p in pages
        ]
        (docs / names[doc]).write_bytes(make_pdf(lines, size=(width, height)))
    questions = out / "questions.jsonl"
    rows = []
    for q in corpus.questions:
        if q.query_image or q.doc not in names:
            continue
        rows.append(
            {
                "id": q.id,
                "question": q.question,
                "answers": q.answers,
                "doc": names[q.doc],
                "page": q.page,
                "box": list(q.box) if q.box else None,
                "labelled": q.labelled,
            }
        )
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return docs, questions


def test_readme_own_documents_path_runs_from_a_fresh_clone(tmp_path, tiny_corpus, monkeypatch):
    clone = _fresh_clone(tmp_path / "clone")
    params = load_params(clone / "params.yaml", TINY_OVERRIDES)
    (clone / "params.yaml").write_text(yaml.safe_dump(params.to_dict(), sort_keys=False))
    docs, questions = _documents(tiny_corpus, tmp_path / "mine")
    home = tmp_path / "state"
    # The stages' `regionops` (the venv's console script) must run this tree's code, as in a clone.
    monkeypatch.setenv("PYTHONPATH", str(clone))
    env = dict(
        os.environ,
        REGIONOPS_HOME=str(home),
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )

    imported = subprocess.run(
        [
            sys.executable,
            "-m",
            "components.cli",
            "import",
            "--docs",
            str(docs),
            "--questions",
            str(questions),
            "--name",
            "mine",
        ],
        check=False,
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert imported.returncode == 0, imported.stdout[-3000:] + imported.stderr[-3000:]
    report = json.loads((clone / "data" / "imports" / "mine" / "import_report.json").read_text())
    dvc_md5 = yaml.safe_load((clone / "data" / "imports" / "mine.dvc").read_text())["outs"][0][
        "md5"
    ]
    assert dvc_md5 in imported.stdout and report["pages"] == len(tiny_corpus.pages)
    assert report["questions"]["accepted"] > 0 and report["questions"]["quarantined"] == 0
    # git versions the dataset's .dvc file (it is not ignored); the data itself stays out of git
    assert (
        subprocess.run(
            ["git", "check-ignore", "-q", "data/imports/mine.dvc"], check=False, cwd=clone
        ).returncode
        == 1
    )
    assert (
        subprocess.run(
            ["git", "check-ignore", "-q", "data/imports/mine/pages.jsonl"], check=False, cwd=clone
        ).returncode
        == 0
    )

    spec = yaml.safe_load((clone / "params.yaml").read_text())
    spec["data"]["corpus_dir"] = "data/imports/mine"
    (clone / "params.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = _run_pipeline(clone, home)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    metrics = json.loads((clone / "eval" / "metrics.json").read_text())
    assert metrics["n_questions"] > 0 and "regionops" in metrics["systems"]
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    train_deps = {d["path"]: d for d in lock["stages"]["train"]["deps"]}
    assert train_deps["data/imports/mine"]["md5"] == dvc_md5  # DVC tracked the import as the input
    version = _client(home).get_model_version_by_alias("regionops", "champion")
    assert version.version
