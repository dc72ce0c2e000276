"""Looking at data: `regionops show` draws a page's evidence boxes; validation writes a montage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from components.cli import app
from components.data.preview import GOLD, montage
from components.data.validation import validate_corpus

runner = CliRunner()


def _labelled_question(corpus):
    return next(q for q in corpus.questions if q.box is not None)


def _gold_pixels_on_box_edge(png: Path, box) -> float:
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    h, w, _ = img.shape
    x0, y0, x1, y1 = int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)
    edge = np.concatenate(
        [img[y0 : y1 + 1, x0], img[y0 : y1 + 1, min(x1, w - 1)], img[y0, x0 : x1 + 1]]
    )
    return float(np.mean(np.all(np.abs(edge - np.array(GOLD)) <= 10, axis=-1)))


def test_show_draws_the_evidence_box_of_a_question(tiny_corpus, tmp_path):
    q = _labelled_question(tiny_corpus)
    out = tmp_path / "page.png"
    result = runner.invoke(
        app, ["show", "--question", q.id, "--corpus-dir", str(tiny_corpus.root), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    page = tiny_corpus.page(q.page_id)
    assert Image.open(out).size == (page.width, page.height)
    assert (
        _gold_pixels_on_box_edge(out, q.box) > 0.8
    )  # the box outline is drawn where the gold box is


def test_show_names_an_unknown_page(tiny_corpus, tmp_path):
    result = runner.invoke(
        app,
        [
            "show",
            "--page",
            "nope#3",
            "--corpus-dir",
            str(tiny_corpus.root),
            "--out",
            str(tmp_path / "x.png"),
        ],
    )
    assert result.exit_code == 2 and "nope#3" in result.output
    assert not (tmp_path / "x.png").exists()


def test_montage_is_seeded_and_validation_writes_it(tiny_corpus, tiny_params, tmp_path):
    a, b = montage(tiny_corpus, n=4, seed=1), montage(tiny_corpus, n=4, seed=1)
    assert a.tobytes() == b.tobytes()
    assert a.size[0] == 3 * 300 and a.size[1] > 300  # 4 tiles on a 3-column grid: 2 rows
    result = validate_corpus(tiny_corpus.root, tmp_path, tiny_params)
    assert Path(result["montage"]).is_file() and Image.open(result["montage"]).size[0] > 0


def test_import_versions_the_dataset_with_dvc(tmp_path, monkeypatch):
    from tests.data.test_data_import import make_pdf

    docs = tmp_path / "incoming"
    docs.mkdir()
    (docs / "a.pdf").write_bytes(make_pdf([[(20, 150, "Revenue 2021 was 42")]]))
    project = tmp_path / "project"
    project.mkdir()
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=project, check=True)
    monkeypatch.chdir(project)
    repo_params = Path(__file__).resolve().parents[2] / "params.yaml"
    result = runner.invoke(
        app, ["import", "--docs", str(docs), "--name", "mine", "--params", str(repo_params)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # results on stdout, logs on stderr
    assert report["documents"]["accepted"] == 1
    record = (project / "data/imports/mine.dvc").read_text()
    assert report["dvc_md5"] in record
    status = subprocess.run(
        [dvc, "status", "--json"], cwd=project, capture_output=True, text=True, check=True
    )
    assert status.stdout.strip() in ("{}", "")  # tracked and current
