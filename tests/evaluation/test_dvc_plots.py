"""DVC understands the evaluation folder: every file is a declared output, and the plots render."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.evaluation.plot_data import per_type_rows, recall_at_k_rows

REPO = Path(__file__).resolve().parents[2]
DVC = str(Path(sys.executable).parent / "dvc")


def test_recall_rows_keep_every_system_column_even_without_a_value():
    rows = recall_at_k_rows(
        {"regionops": {"page_r1": 0.5, "page_r5": 0.75}, "page_level": {"page_r1": None}}
    )
    assert rows == [
        {"k": 1, "regionops": 0.5, "page_level": None},
        {"k": 5, "regionops": 0.75, "page_level": None},
    ]


def test_per_type_rows_are_the_plotted_system_only():
    rows = per_type_rows(
        [
            {"type": "table", "system": "regionops", "n": 2, "page_r1": 0.5, "region_hit1": 0.0},
            {"type": "table", "system": "bm25_blocks", "n": 2, "page_r1": 1.0, "region_hit1": 1.0},
        ]
    )
    assert rows == [{"type": "table", "n": 2, "page_r1": 0.5, "region_hit1": 0.0}]


def _declared_eval_outputs() -> set[str]:
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]
    declared = set()
    for section in ("outs", "metrics", "plots"):
        for entry in stage.get(section) or []:
            declared.add(entry if isinstance(entry, str) else next(iter(entry)))
    return declared


@pytest.mark.slow
def test_real_evaluation_outputs_are_declared_and_plots_render(
    tiny_params, tiny_corpus, tmp_path, regionops_home
):
    from components.evaluation.evaluate import run_evaluation
    from components.index.build import build_index
    from components.model.io import save_retriever
    from components.model.retriever import build_retriever
    from components.settings import configure_environment

    settings = configure_environment()
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    shutil.copy(REPO / "params.yaml", project / "params.yaml")
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=project, check=True)
    model_dir = tmp_path / "model"
    save_retriever(
        build_retriever(tiny_params.model), model_dir / "retriever"
    )  # untrained: the figures are not the point
    build_index(tiny_params, tiny_corpus, model_dir, tmp_path / "index")
    run_evaluation(
        tiny_params,
        tiny_corpus,
        model_dir,
        tmp_path / "index",
        project / "eval",
        settings,
        log_mlflow=False,
    )

    declared = _declared_eval_outputs()
    written = {f"eval/{p.name}" for p in (project / "eval").iterdir()}
    assert written <= declared, (
        f"evaluate writes files dvc.yaml does not declare: {sorted(written - declared)}"
    )

    shown = subprocess.run(
        [DVC, "plots", "show", "--json"], cwd=project, capture_output=True, text=True, check=True
    )
    plots = json.loads(shown.stdout)
    assert not plots.get("errors"), plots.get("errors")
    data = plots["data"]
    recall = data["page recall@k per system"][0]
    assert recall["type"] == "vega"
    points = {(v["field"], v["k"]) for v in recall["content"]["data"]["values"]}
    assert ("regionops", 1) in points and ("bm25_blocks", 5) in points
    per_type = data["regionops page R@1 per question type"][0]["content"]["data"]["values"]
    assert {v["type"] for v in per_type} == {
        r["type"]
        for r in per_type_rows(json.loads((project / "eval" / "per_type.json").read_text()))
    }
    images = [name for name, items in data.items() if name.endswith(".png")]
    pngs = sorted(p.name for p in (project / "eval" / "highlights").glob("*.png"))
    assert sorted(Path(name).name for name in images) == pngs and pngs
    assert all(data[name][0]["type"] == "image" for name in images)
