"""`regionops evaluate --docs DIR --questions FILE`: six systems on any folder, fair baselines.

Fast: the block baselines' BM25 is the lexical channel's BM25+; lexical_only reads no dense vector.
Slow: the command end to end on PDFs made here with a tiny untrained model (stdout
is the results JSON alone, every accepted question scored, quarantine and visual-only pages
reported, the same region gives the same answer whichever system found it), and --tune-on.

Over 400 lines on purpose: import, indexing, tuning and scoring of a folder share one module-
scoped folder and model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from components.data.layout import blocks_from_words
from components.evaluation.systems import SYSTEMS
from tests.conftest import REPO, TINY_OVERRIDES
from tests.data.test_data_import import make_pdf


def _words(y: float, x: float, texts: list[str]) -> list[list]:
    out, cursor = [], x
    for t in texts:
        out.append([t, cursor, y, cursor + 0.02 * len(t), y + 0.03])
        cursor += 0.02 * len(t) + 0.01
    return out


PAGES = {  # page id -> words: a title line, then a far-away line (its own block)
    "invoice.pdf#0": _words(0.1, 0.05, ["Invoice", "number", "4711"])
    + _words(0.5, 0.05, ["Total", "amount", "due", "250"]),
    "castle.pdf#0": _words(0.1, 0.05, ["Castle", "of", "Good", "Hope"])
    + _words(0.5, 0.05, ["Built", "in", "1666"]),
    "weather.pdf#0": _words(0.1, 0.05, ["Weather", "forecast", "Tuesday"])
    + _words(0.5, 0.05, ["Rain", "expected", "12", "mm"]),
}


def test_bm25_blocks_scores_are_the_lexical_channels_bm25plus():
    from rank_bm25 import BM25Okapi, BM25Plus

    from components.evaluation.baselines import BM25Blocks
    from components.index.lexical import tokenize

    blocks = [b for pid, words in PAGES.items() for b in blocks_from_words(pid, words)]
    baseline = BM25Blocks(blocks)
    question = "What is the total amount due on invoice 4711?"
    expected = BM25Plus([tokenize(b.text) for b in blocks]).get_scores(tokenize(question))
    np.testing.assert_allclose(baseline.scores(question), expected)
    okapi = BM25Okapi([tokenize(b.text) for b in blocks]).get_scores(tokenize(question))
    assert not np.allclose(
        expected, okapi
    )  # the variant matters: the old Okapi baseline scored otherwise
    hits = baseline.search(question)
    assert hits[0].page_id == "invoice.pdf#0" and "Total" in hits[0].block.text
    assert (
        baseline.search("zebra crossing") == []
    )  # no question term printed anywhere: no ranking at all


def _index(seed: int):
    from components.config import IndexParams
    from components.index.region_index import PageMeta, RegionIndex
    from tests.support.cell_vectors import clustered_pages

    metas = [
        PageMeta(
            page_id=pid,
            doc=pid.split("#")[0],
            words=words,
            blocks=[list(b.box) for b in blocks_from_words(pid, words)],
        )
        for pid, words in PAGES.items()
    ]
    return RegionIndex.build(
        metas, clustered_pages(len(metas), 8, 16, seed=seed), IndexParams(), f"fp{seed}", 8
    )


def test_lexical_only_reads_no_dense_vector(tiny_params):
    from components.evaluation.lexical_only import LexicalOnly

    a, b = _index(0), _index(1)
    assert not np.allclose(
        a.cell_vectors("castle.pdf#0"), b.cell_vectors("castle.pdf#0")
    )  # two "retrievers"
    for question in (
        "When was the Castle of Good Hope built?",
        "How much rain is expected on Tuesday?",
        "total amount due",
    ):
        ra = LexicalOnly.from_index(a, tiny_params).search(question)
        rb = LexicalOnly.from_index(b, tiny_params).search(question)
        assert ra == rb
    built = LexicalOnly.from_index(a, tiny_params).search("When was the Castle of Good Hope built?")
    assert built.top_page == "castle.pdf#0" and built.ranking[0] == "castle.pdf#0"
    # The region is a layout block of the page, snapped as regionops snaps (regions.snap: block).
    assert list(built.top_box) in a.meta("castle.pdf#0").blocks
    assert LexicalOnly.from_index(a, tiny_params).search("zebra crossing").ranking == []


# --------------------------------------------------------------------------- end to end (slow)

GOOD_QUESTIONS = [
    {
        "id": "q-total",
        "question": "What is the total amount due?",
        "doc": "invoice.pdf",
        "page": 0,
        "box": [0.08, 0.44, 0.6, 0.53],
        "answers": ["250"],
        "type": "text",
    },
    {
        "id": "q-ship",
        "question": "Which shipping address is given?",
        "doc": "invoice.pdf",
        "page": 1,
        "box": [0.08, 0.19, 0.7, 0.28],
        "answers": ["Berlin"],
        "type": "text",
    },
    {
        "id": "q-built",
        "question": "When was the Castle of Good Hope built?",
        "doc": "castle.pdf",
        "page": 0,
        "box": [0.08, 0.44, 0.6, 0.53],
        "answers": ["1666"],
        "type": "text",
    },
    {
        "id": "q-rain",
        "question": "How much rain is expected?",
        "doc": "weather.pdf",
        "page": 0,
        "box": [0.08, 0.44, 0.6, 0.53],
        "answers": ["12"],
        "type": "text",
    },
    {
        "id": "q-scan",
        "question": "What does the scanned form show?",
        "doc": "scan.pdf",
        "page": 0,
        "answers": ["a form"],
        "type": "visual",
    },
    {
        "id": "q-image",
        "question": "When was this building built?",
        "doc": "castle.pdf",
        "page": 0,
        "query_image": "queries/castle.png",
        "answers": ["1666"],
        "type": "image",
    },
]
BAD_QUESTION = {
    "id": "q-bad",
    "question": "Where?",
    "doc": "invoice.pdf",
    "page": 0,
    "box": [1.5, 0.0, 2.0, 1.0],
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_params):
    """PDFs with a text layer, one without (visual-only), a query image, questions, a tiny model."""
    from PIL import Image

    from components.model.io import save_retriever
    from components.model.retriever import build_retriever

    root = tmp_path_factory.mktemp("evalfolder")
    docs = root / "docs"
    (docs / "queries").mkdir(parents=True)
    (docs / "invoice.pdf").write_bytes(
        make_pdf(
            [
                [(20, 150, "Invoice number 4711"), (20, 100, "Total amount due 250")],
                [(20, 150, "Shipping address Berlin")],
            ]
        )
    )
    (docs / "castle.pdf").write_bytes(
        make_pdf([[(20, 150, "Castle of Good Hope"), (20, 100, "Built in 1666")]])
    )
    (docs / "weather.pdf").write_bytes(
        make_pdf([[(20, 150, "Weather forecast Tuesday"), (20, 100, "Rain expected 12 mm")]])
    )
    (docs / "scan.pdf").write_bytes(make_pdf([[]]))  # a page with no text layer
    Image.new("RGB", (48, 48), (120, 90, 60)).save(docs / "queries" / "castle.png")
    questions = root / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [*GOOD_QUESTIONS, BAD_QUESTION]) + "\n")
    model_dir = root / "model"
    save_retriever(
        build_retriever(tiny_params.model), model_dir / "retriever"
    )  # untrained: a fixed random encoder
    return {"root": root, "docs": docs, "questions": questions, "model": model_dir}


@pytest.fixture(scope="module")
def cli_run(folder, regionops_home):
    out = folder["root"] / "eval"
    cmd = [
        sys.executable,
        "-m",
        "components.cli",
        "evaluate",
        "--docs",
        str(folder["docs"]),
        "--questions",
        str(folder["questions"]),
        "--model",
        str(folder["model"]),
        "--out",
        str(out),
        "--params",
        str(REPO / "params.yaml"),
    ]
    for override in TINY_OVERRIDES:
        cmd += ["--set", override]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ}, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out


@pytest.mark.slow
def test_evaluate_docs_scores_every_accepted_question_with_six_systems(cli_run):
    proc, out = cli_run
    result = json.loads(proc.stdout)  # stdout holds the results JSON and nothing else
    assert set(result["systems"]) == set(SYSTEMS) == set(result["systems_text_only"])
    assert result["import"]["questions"] == {
        "accepted": len(GOOD_QUESTIONS),
        "quarantined": 1,
        "reasons": {"box out of range": 1},
    }
    assert result["n_questions"] == len(
        GOOD_QUESTIONS
    )  # every split: an external set has no train split
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_questions"] == len(GOOD_QUESTIONS) and metrics["split"] == "all"
    for name in SYSTEMS:
        values = metrics["systems"][name]
        assert set(values) >= {
            "page_r1",
            "page_r5",
            "ndcg5",
            "mrr",
            "region_hit1",
            "region_miou",
            "anls",
            "em",
        }
        assert (
            values["latency_ms"]["p50"] > 0
            and values["latency_ms"]["p95"] >= values["latency_ms"]["p50"]
        )
    assert (
        metrics["counts"]["n_query_image"] == 1
        and metrics["counts"]["n_text_only"] == len(GOOD_QUESTIONS) - 1
    )
    # The keyword questions are found by the lexical bar without any model.
    assert metrics["systems_text_only"]["lexical_only"]["page_r1"] >= 0.5
    # Visual-only pages stay in the corpus, counted and named in a note.
    assert (
        metrics["counts"]["n_visual_only_pages"] >= 1
        and metrics["index"]["pages"] == metrics["import"]["pages"]
    )
    assert any("visual-only" in n and "scan.pdf#0" in n for n in metrics["notes"])
    assert (
        "params.yaml" in metrics["regions"]["source"]
    )  # nothing recorded for this model, and it says so
    recall = metrics["block_recall"]  # components.evaluation.block_recall over the imported pages
    assert (
        recall["overall"]["n"] == 4
        and recall["no_box"] == 2
        and 0.0 <= recall["overall"]["recall"] <= 1.0
    )
    assert recall["threshold"] == 0.5  # evaluate.iou_hit
    assert (out / "quarantine" / "questions.jsonl").is_file()
    lines = [json.loads(line) for line in (out / "per_question.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(q["id"] for q in GOOD_QUESTIONS)
    report = (out / "report.md").read_text()
    assert (
        "## All questions" in report
        and "## Text-only questions" in report
        and "| lexical_only |" in report
    )
    assert (out / "per_type.json").is_file() and (out / "per_type.md").is_file()


@pytest.mark.slow
def test_evaluate_docs_same_region_gives_the_same_answer_for_any_system(cli_run):
    _, out = cli_run
    lines = [json.loads(line) for line in (out / "per_question.jsonl").read_text().splitlines()]
    shared = 0
    for record in lines:
        by_region: dict[tuple, list[str]] = {}
        for output in record["outputs"].values():
            if output["page"] is not None:
                by_region.setdefault((output["page"], tuple(output["box"])), []).append(
                    output["answer"]
                )
        assert all(len(set(answers)) == 1 for answers in by_region.values()), record
        shared += any(len(answers) >= 2 for answers in by_region.values())
    assert shared > 0  # some questions had two systems on one region: the check above was exercised
    # The block baselines answer from the region's words: the keyword question is answered by them.
    total = next(r for r in lines if r["id"] == "q-total")
    assert (
        total["scores"]["bm25_blocks"]["anls"] == 1.0
        and total["outputs"]["bm25_blocks"]["answer"] == "250"
    )


@pytest.mark.slow
def test_tune_on_scores_only_the_held_out_documents(folder, tiny_params, tmp_path):
    from components.evaluation.folder_eval import evaluate_folder
    from components.registry.model_source import resolve_model

    source = resolve_model(str(folder["model"]), tiny_params, tmp_path / "work")
    metrics = evaluate_folder(
        tiny_params, folder["docs"], folder["questions"], source, tmp_path / "eval", tune_on=0.3
    )
    tuned = metrics["tuned_on"]
    assert len(tuned["docs"]) == 1 and tuned["fraction"] == 0.3
    on_tuned = [q["id"] for q in GOOD_QUESTIONS if q["doc"] in tuned["docs"]]
    assert tuned["n_questions"] == len(on_tuned) > 0
    scored = [
        json.loads(line)["id"]
        for line in (tmp_path / "eval" / "per_question.jsonl").read_text().splitlines()
    ]
    assert metrics["n_questions"] == len(GOOD_QUESTIONS) - len(on_tuned) == len(scored)
    assert not set(scored) & set(on_tuned)
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["tuned_on"] == tuned
    # The same seed holds out the same documents.
    again = evaluate_folder(
        tiny_params, folder["docs"], folder["questions"], source, tmp_path / "again", tune_on=0.3
    )
    assert again["tuned_on"]["docs"] == tuned["docs"]


@pytest.mark.slow
def test_region_settings_come_from_the_models_recorded_evaluation(
    folder, tiny_params, tmp_path, regionops_home
):
    """The evaluate stage logs metrics.json onto the training run: a folder model's recorded choice."""
    import shutil

    import mlflow

    from components.registry.model_source import resolve_model
    from components.settings import get_settings
    from components.tracking import ensure_experiment

    model_dir = tmp_path / "model"
    shutil.copytree(folder["model"], model_dir)
    chosen = tiny_params.regions.model_copy(
        update={"threshold_value": 0.6, "padding": 1}
    ).model_dump()
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text(
        json.dumps({"regions": {"tuned_on": "val", "chosen": chosen}})
    )
    mlflow.set_tracking_uri(get_settings().tracking_uri)
    experiment = ensure_experiment(mlflow.MlflowClient(), "regionops-evalfolder-test")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(tmp_path / "eval"), artifact_path="evaluation")
    (model_dir / "train_run.json").write_text(json.dumps({"run_id": run.info.run_id}))
    source = resolve_model(str(model_dir), tiny_params, tmp_path / "work")
    assert source.regions["chosen"] == chosen and run.info.run_id in source.regions["source"]
    assert source.params.regions.threshold_value == 0.6 and not source.notes
    # --regions-from wins over the recorded choice.
    override = tmp_path / "other.json"
    override.write_text(json.dumps({"regions": {"chosen": {**chosen, "padding": 0}}}))
    assert (
        resolve_model(str(model_dir), tiny_params, tmp_path / "w2", override).params.regions.padding
        == 0
    )
    with pytest.raises(ValueError, match="models:/NAME@ALIAS"):
        resolve_model("models:/regionops/3", tiny_params, tmp_path / "w3")


@pytest.mark.slow
def test_registered_checkpoint_is_evaluated_with_its_bundled_region_settings(
    folder, tiny_params, tiny_corpus, tmp_path, regionops_home
):
    """``--model models:/NAME@champion``: the registered retriever indexes the folder, with the region
    settings it was registered with (not params.yaml's)."""
    import uuid

    from components.evaluation.folder_eval import evaluate_folder
    from components.index.build import build_index
    from components.registry.model_source import resolve_model
    from components.registry.promote import gate_and_register
    from tests.support.eval_runs import log_evaluation_run

    params = tiny_params.model_copy(deep=True)
    params.registry.model_name = params.registry.experiment = (
        f"regionops-evalfolder-{uuid.uuid4().hex[:6]}"
    )
    build_index(params, tiny_corpus, folder["model"], tmp_path / "index")
    chosen = params.regions.model_copy(
        update={"threshold_value": 0.6, "neighbour_range": 2}
    ).model_dump()
    candidate = {
        "systems": {"regionops": {"page_r1": 0.5, "region_hit1": 0.5, "mrr": 0.5}},
        "regions": {"tuned_on": "val", "chosen": chosen},
        "dataset_id": "d" * 64,
        "split": "test",
    }
    (tmp_path / "metrics.json").write_text(json.dumps(candidate))
    log_evaluation_run(tmp_path / "metrics.json", folder["model"], params)
    registered = gate_and_register(
        params, folder["model"], tmp_path / "index", tmp_path / "metrics.json"
    )
    assert registered["status"] == "promoted"
    uri = f"models:/{params.registry.model_name}@champion"

    source = resolve_model(uri, tiny_params, tmp_path / "resolve")
    assert (
        source.regions["chosen"] == chosen and "registered checkpoint" in source.regions["source"]
    )
    assert (source.model_dir / "retriever" / "config.json").is_file() and source.reader_dir is None
    with pytest.raises(LookupError, match="alias"):
        resolve_model(
            f"models:/{params.registry.model_name}@nobody", tiny_params, tmp_path / "missing"
        )

    metrics = evaluate_folder(
        tiny_params, folder["docs"], folder["questions"], source, tmp_path / "eval"
    )
    assert metrics["model"].startswith(uri) and metrics["regions"]["chosen"] == chosen
    assert metrics["n_questions"] == len(GOOD_QUESTIONS) and set(metrics["systems"]) == set(SYSTEMS)


@pytest.mark.slow
def test_reader_answerer_reads_the_same_box_alike_for_every_system(tiny_params):
    """With a reader (the served answerer when one is bundled), the answer depends on the box alone."""
    from components.evaluation.region_answer import RegionAnswerer
    from components.reader.answerer import ReaderAnswerer
    from components.reader.io import build_reader

    index = _index(0)
    reader = build_reader(tiny_params.reader, tiny_params.model, cell_dim=16)
    answerer = RegionAnswerer(index, ReaderAnswerer(reader, index))
    assert answerer.kind == "reader"
    box = index.meta("castle.pdf#0").blocks[1]
    query = np.ones(16, dtype=np.float32) / 4.0
    first = answerer.answer("When was it built?", "castle.pdf#0", box, query)
    # The same box found by another system (given as floats that round alike) reads the same.
    assert (
        answerer.answer("When was it built?", "castle.pdf#0", [v + 1e-9 for v in box], query)
        == first
    )
    assert first in {
        "",
        *(w[0] for w in index.meta("castle.pdf#0").words),
        *(
            " ".join(w[0] for w in index.meta("castle.pdf#0").words[i:j])
            for i in range(7)
            for j in range(i + 1, 8)
        ),
    }
    assert (
        answerer.answer("When was it built?", "castle.pdf#0", None, query) == ""
    )  # no region, no answer
    assert answerer.answer("When was it built?", "unknown.pdf#0", box, query) == ""


@pytest.mark.slow
def test_tune_regions_writes_settings_that_evaluate_regions_from_applies(
    folder, tiny_params, tmp_path, regionops_home
):
    """`regionops tune-regions` on one folder, `evaluate --regions-from` on another (ADR 27)."""
    out = tmp_path / "regions.json"
    cmd = [
        sys.executable,
        "-m",
        "components.cli",
        "tune-regions",
        "--docs",
        str(folder["docs"]),
        "--questions",
        str(folder["questions"]),
        "--model",
        str(folder["model"]),
        "--out",
        str(out),
        "--params",
        str(REPO / "params.yaml"),
    ]
    for override in TINY_OVERRIDES:
        cmd += ["--set", override]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ}, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = json.loads(out.read_text())
    regions = written["regions"]
    boxed_text = [q for q in GOOD_QUESTIONS if q.get("box") and not q.get("query_image")]
    assert regions["n_tuned"] == len(boxed_text) and regions["chosen"]["rule"] in (
        "heatmap",
        "text_blocks",
    )
    assert set(regions["best_gold_page_hit1_per_rule"]) == {"heatmap", "text_blocks"}
    assert regions["tuned_gold_page_hit1"] == max(regions["best_gold_page_hit1_per_rule"].values())
    # the region map's lexical weight is searched with the rest (ADR 31), and the chosen one won
    by_weight = regions["best_gold_page_hit1_per_lexical_weight"]
    assert set(by_weight) == {str(w) for w in tiny_params.regions.search.lexical_weight}
    assert regions["tuned_gold_page_hit1"] == max(by_weight.values())
    assert by_weight[str(regions["chosen"]["lexical_weight"])] == regions["tuned_gold_page_hit1"]
    from components.registry.model_source import resolve_model

    source = resolve_model(str(folder["model"]), tiny_params, tmp_path / "work", out)
    assert source.params.regions.model_dump() == regions["chosen"]
    assert source.regions["source"] == f"--regions-from {out}"
    missing = subprocess.run(
        [*cmd[:5], str(tmp_path / "none"), *cmd[6:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert missing.returncode == 2 and "tune-regions failed" in missing.stderr
