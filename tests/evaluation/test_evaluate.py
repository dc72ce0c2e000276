"""Evaluation: per-question scoring rules, and the end-to-end run (tiny corpus → index → metrics)."""

from __future__ import annotations

import json

import pytest

from components.data.schema import Question
from components.evaluation.highlights import highlight_sample
from components.evaluation.scoring import score_question
from components.evaluation.systems import SYSTEMS, SystemOutput


def _out(**kw) -> SystemOutput:
    base = {
        "ranking": ["a#0", "b#0"],
        "top_page": "a#0",
        "top_box": (0.1, 0.1, 0.3, 0.3),
        "gold_page_box": (0.1, 0.1, 0.3, 0.3),
        "answer": "42",
        "latency_ms": 1.0,
    }
    base.update(kw)
    return SystemOutput(**base)


def test_score_question_skips_metrics_whose_gold_field_is_missing():
    full = Question(
        id="q1", question="?", answers=["42"], doc="a", page=0, box=(0.1, 0.1, 0.3, 0.3)
    )
    s = score_question(_out(), full, 0.5, 5)
    assert s == {
        "page_r1": 1.0,
        "page_r5": 1.0,
        "ndcg5": 1.0,
        "mrr": 1.0,
        "region_hit1": 1.0,
        "region_miou": 1.0,
        "anls": 1.0,
        "em": 1.0,
    }
    no_box = Question(id="q2", question="?", doc="b", page=0)
    s = score_question(_out(), no_box, 0.5, 5)
    assert s["page_r1"] == 0.0 and s["mrr"] == 0.5
    assert (
        s["region_hit1"] is None
        and s["region_miou"] is None
        and s["anls"] is None
        and s["em"] is None
    )
    nothing = Question(id="q3", question="?")
    assert all(v is None for v in score_question(_out(), nothing, 0.5, 5).values())
    # No region on the gold page: mIoU counts 0 for that question (a real localisation miss).
    assert score_question(_out(gold_page_box=None), full, 0.5, 5)["region_miou"] == 0.0


def test_highlight_sample_is_the_same_questions_whatever_the_outcomes():
    def recs(hit_rule):
        return [
            {
                "id": f"q{i:02d}",
                "scores": {"regionops": {"region_hit1": hit_rule(i) if i < 12 else None}},
            }
            for i in range(14)
        ]

    run_a = recs(lambda i: float(i % 3 == 0))
    run_b = list(reversed(recs(lambda i: float(i % 2 == 0))))  # another model, another record order
    a, b = highlight_sample(run_a, 6, 13), highlight_sample(run_b, 6, 13)
    assert len(a) == 6 and sorted(r["id"] for r in a) == sorted(r["id"] for r in b)
    assert all(
        r["scores"]["regionops"]["region_hit1"] is not None for r in a
    )  # only boxed questions
    assert [r["id"] for r in highlight_sample(run_a, 6, 14)] != [
        r["id"] for r in a
    ]  # the seed decides
    assert len(highlight_sample(run_a[:3], 6, 13)) == 3  # fewer boxed questions than asked


def test_per_type_table_in_markdown():
    from components.evaluation.report import render_per_type, render_report

    rows = [
        {"type": "table", "system": "regionops", "n": 4, "page_r1": 0.5, "region_hit1": 0.25},
        {"type": "table", "system": "bm25_blocks", "n": 4, "page_r1": 0.75, "region_hit1": None},
        {"type": "chart", "system": "regionops", "n": 2, "page_r1": 1.0, "region_hit1": 0.0},
    ]
    md = render_per_type(rows)
    assert "| type | n | regionops | bm25_blocks |" in md
    assert "| table | 4 | 0.500 / 0.250 | 0.750 / — |" in md
    assert "| chart | 2 | 1.000 / 0.000 | — |" in md
    metrics = {
        "systems": {"regionops": {"page_r1": 0.5}},
        "split": "test",
        "n_questions": 6,
        "dataset_id": "x" * 64,
    }
    assert md.strip() in render_report(metrics, rows)


@pytest.mark.slow
def test_end_to_end_tiny_corpus(tiny_params, tiny_corpus, tmp_path, regionops_home):
    import mlflow

    from components.index.build import add_to_index, build_index, delete_from_index
    from components.index.region_index import RegionIndex
    from components.model.io import save_retriever
    from components.model.retriever import build_retriever
    from components.settings import configure_environment

    settings = configure_environment()
    model_dir = tmp_path / "model"
    model = build_retriever(tiny_params.model)  # randomly initialised cell encoder
    save_retriever(model, model_dir / "retriever")
    mlflow.set_tracking_uri(settings.tracking_uri)
    from components.tracking import ensure_experiment

    experiment_id = ensure_experiment(mlflow.MlflowClient(), "regionops-eval-test")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        train_run_id = run.info.run_id
    (model_dir / "train_run.json").write_text(json.dumps({"run_id": train_run_id}))

    stats = build_index(tiny_params, tiny_corpus, model_dir, tmp_path / "index")
    assert stats["pages"] == len(tiny_corpus.pages) and stats["fingerprint"] == model.fingerprint

    from components.evaluation.evaluate import run_evaluation

    out = tmp_path / "eval"
    metrics = run_evaluation(tiny_params, tiny_corpus, model_dir, tmp_path / "index", out, settings)
    written = json.loads((out / "metrics.json").read_text())
    assert set(written["systems"]) == set(SYSTEMS)
    # Region settings are chosen on val, never on the evaluated test split, and recorded.
    assert written["regions"]["tuned_on"] in ("val", None)
    if written["regions"]["tuned_on"] == "val":
        assert (
            written["regions"]["n_val"] > 0
            and 0.0 <= written["regions"]["val_gold_page_hit1"] <= 1.0
        )
        # the chosen region-map weight is the val winner among the searched ones (ADR 31)
        by_weight = written["regions"]["val_gold_page_hit1_per_lexical_weight"]
        assert (
            by_weight[str(written["regions"]["chosen"]["lexical_weight"])]
            == max(by_weight.values())
            == written["regions"]["val_gold_page_hit1"]
        )
        # regionops_dense gets its own heatmap settings, tuned on its own (term-free) maps
        dense = written["regions"]["chosen"]["dense"]
        assert set(dense) == {"threshold", "threshold_value", "neighbour_range", "padding", "snap"}
        assert 0.0 <= written["regions"]["val_dense_gold_page_hit1"] <= 1.0
    # The region choice is its own declared artifact (dvc.yaml evaluate outs).
    assert json.loads((out / "regions.json").read_text()) == written["regions"]
    # regions.tune: false -> the settings are used exactly as written, and the record says so.
    fixed = tiny_params.model_copy(
        update={
            "regions": tiny_params.regions.model_copy(
                update={"tune": False, "threshold_value": 0.55, "rule": "text_blocks"}
            )
        }
    )
    untuned = run_evaluation(
        fixed,
        tiny_corpus,
        model_dir,
        tmp_path / "index",
        tmp_path / "eval-fixed",
        settings,
        log_mlflow=False,
    )
    assert (
        untuned["regions"]["tuned_on"] is None
        and "regions.tune is false" in untuned["regions"]["note"]
    )
    assert untuned["regions"]["chosen"] == fixed.regions.model_dump()
    assert (
        json.loads((tmp_path / "eval-fixed" / "regions.json").read_text())["chosen"][
            "threshold_value"
        ]
        == 0.55
    )
    n_test = len(tiny_corpus.questions_in(tiny_params.evaluate.split))
    assert written["n_questions"] == n_test > 0
    for name in SYSTEMS:
        values = written["systems"][name]
        for key in ("page_r1", "page_r5", "ndcg5", "mrr", "region_hit1", "region_miou"):
            assert 0.0 <= values[key] <= 1.0, (name, key)
        assert values["latency_ms_p50"] > 0
        assert values["latency_ms"] == {
            "p50": values["latency_ms_p50"],
            "p95": values["latency_ms_p95"],
        }
    assert "lexical_only" in SYSTEMS  # the no-model bar runs in the DVC stage too
    n_image = sum(1 for q in tiny_corpus.questions_in(tiny_params.evaluate.split) if q.query_image)
    assert written["counts"]["n_text_only"] == n_test - n_image
    assert set(written["systems_text_only"]) == set(SYSTEMS)
    assert written["block_recall"]["overall"]["n"] == written["counts"]["n_with_box"]
    assert 0.0 <= written["block_recall"]["overall"]["recall"] <= 1.0
    # Every system answers with the same region-text answerer (it used to answer the block
    # baselines from flattened block text: ANLS 0.000 on the synthetic test split).
    assert written["answerer"] == "text"
    assert written["systems"]["bm25_blocks"]["anls"] > 0.0
    # The lexical baseline must find keyword-bearing synthetic pages well above chance.
    assert written["systems"]["bm25_blocks"]["page_r1"] > 2 / len(tiny_corpus.pages)
    assert len(written["dataset_id"]) == 64
    rows = json.loads((out / "per_type.json").read_text())
    assert {r["system"] for r in rows} == set(SYSTEMS) and all("type" in r for r in rows)
    assert "| regionops |" in (out / "report.md").read_text()
    assert "## Per question type" in (out / "report.md").read_text()
    assert "| type | n |" in (out / "per_type.md").read_text()
    # Per-question scores: one line per question, and their means are the reported metrics.
    lines = [json.loads(line) for line in (out / "per_question.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines] == [
        q.id for q in tiny_corpus.questions_in(tiny_params.evaluate.split)
    ]
    for name in SYSTEMS:
        hits = [
            r["scores"][name]["page_r1"] for r in lines if r["scores"][name]["page_r1"] is not None
        ]
        assert abs(sum(hits) / len(hits) - written["systems"][name]["page_r1"]) < 1e-9
    pngs = list((out / "highlights").glob("*.png"))
    assert 0 < len(pngs) <= tiny_params.evaluate.n_highlights
    sample = json.loads((out / "highlights" / "sample.json").read_text())
    assert sorted(s["file"] for s in sample) == sorted(p.name for p in pngs)
    assert {s["outcome"] for s in sample} <= {"hit", "miss"}

    # Its own run, nested under the training run: a re-evaluation never overwrites the candidate's.
    client = mlflow.MlflowClient()
    eval_run_id = metrics["mlflow_run_id"]
    assert eval_run_id != train_run_id and written["mlflow_run_id"] == eval_run_id
    logged = client.get_run(eval_run_id)
    assert logged.data.tags["mlflow.parentRunId"] == train_run_id
    assert logged.info.experiment_id == experiment_id and logged.info.status == "FINISHED"
    assert logged.data.tags["regionops.eval_dataset_id"] == written["dataset_id"]
    assert logged.data.metrics["bm25_blocks.page_r1"] == pytest.approx(
        written["systems"]["bm25_blocks"]["page_r1"]
    )
    assert not [
        m for m in client.get_run(train_run_id).data.metrics if m.startswith("bm25_blocks.")
    ]
    (dataset_input,) = logged.inputs.dataset_inputs
    assert dataset_input.dataset.name == f"{tiny_corpus.root.name}/{tiny_params.evaluate.split}"
    assert dataset_input.dataset.digest == written["dataset_id"][:32]
    assert {t.value for t in dataset_input.tags} == {"evaluation"}
    artifacts = {a.path for a in client.list_artifacts(eval_run_id, "evaluation")}
    assert {
        "evaluation/metrics.json",
        "evaluation/report.md",
        "evaluation/per_type.json",
        "evaluation/per_type.md",
        "evaluation/highlights",
    } <= artifacts

    # Maintenance through the CLI-level helpers: delete a doc, then add it back incrementally.
    doc = tiny_corpus.pages[0].doc
    removed = delete_from_index(tmp_path / "index", doc)["removed"]
    assert removed >= 1
    assert add_to_index(tiny_params, tiny_corpus, model_dir, tmp_path / "index")["added"] == removed
    assert len(RegionIndex.load(tmp_path / "index", model.fingerprint)) == len(tiny_corpus.pages)


def test_highlight_caption_shows_question_and_answers_below_the_page():
    import numpy as np
    from PIL import Image

    from components.evaluation.highlights import with_caption

    page = Image.new("RGB", (120, 80), (200, 10, 10))
    lines = [
        "Q (table): what is the total of the third quarter revenue?",
        "gold: 1,204",
        "predicted: 1,204",
    ]
    out = np.asarray(with_caption(page, lines))
    assert (
        out.shape[1] == 120 and out.shape[0] > 80 + 3 * 12
    )  # the long question wraps onto 2+ lines
    assert (out[:80] == (200, 10, 10)).all()  # the page itself is untouched
    assert (out[80:] < 128).any()  # dark text in the white strip


def test_the_dense_system_reads_no_lexical_evidence_under_either_region_rule(tiny_params):
    from components.evaluation.systems import dense_only

    for rule in ("heatmap", "text_blocks"):
        params = tiny_params.model_copy(
            update={
                "regions": tiny_params.regions.model_copy(
                    update={"rule": rule, "score": "mean", "lexical_weight": 4.0}
                )
            }
        )
        dense = dense_only(params)
        assert dense.rag.lexical_weight == 0.0 and dense.regions.rule == "heatmap"
        # a tuned region-map weight (ADR 31) does not bring terms back into its region maps
        assert dense.region_lexical_weight() == 0.0 and params.region_lexical_weight() == 4.0
        assert params.regions.rule == rule  # the served settings are left as they were
        # heatmap: the tuned settings as they are; text_blocks: its regions ranked as its pages are
        assert dense.regions.score == ("mean" if rule == "heatmap" else "max")


def test_the_dense_system_serves_its_own_tuned_heatmap_settings(tiny_params):
    from components.config import DenseRegionParams
    from components.evaluation.systems import dense_only

    own = DenseRegionParams(
        threshold="quantile", threshold_value=0.95, neighbour_range=2, padding=1, snap="none"
    )
    params = tiny_params.model_copy(
        update={
            "regions": tiny_params.regions.model_copy(
                update={"rule": "text_blocks", "threshold": "relative", "threshold_value": 0.8,
                        "score": "mean", "snap": "block", "dense": own}
            )
        }
    )  # fmt: skip
    dense = dense_only(params).regions
    assert (dense.threshold, dense.threshold_value, dense.neighbour_range) == ("quantile", 0.95, 2)
    assert (dense.padding, dense.snap, dense.rule, dense.score) == (1, "none", "heatmap", "max")
    # the fused system keeps its own
    assert (params.regions.threshold, params.regions.snap) == ("relative", "block")


def test_dense_region_tuning_finds_the_gold_peak_on_term_free_maps(tiny_params):
    """The dense row is tuned on the maps regionops_dense serves (no term evidence) and picks a
    setting whose top region lands on each gold box, ranked by its best cell."""
    import numpy as np

    from components.evaluation.region_tuning import tune_dense_settings

    g = 8
    maps = []
    for r, c in [(1, 1), (5, 4)]:
        m = np.full((g, g), 0.1, dtype=np.float32)
        m[r : r + 2, c : c + 2] = 0.9  # a 2x2 peak
        m[7, 0] = 0.5  # a lone distractor cell
        maps.append(m)
    boxes = [(1 / g, 1 / g, 3 / g, 3 / g), (4 / g, 5 / g, 6 / g, 7 / g)]
    dense, best = tune_dense_settings(tiny_params, maps, boxes, [[], []])
    assert best["hit1"] == 1.0 and best["rule"] == "heatmap" and best["score"] == "max"
    assert dense.snap == "none"  # without blocks snapping changes nothing: the first, none, stands


def test_the_tuners_dense_map_is_the_term_free_map(tiny_params, tiny_corpus, tmp_path):
    """The map the dense row is tuned on is the page's map with no question text, the map
    regionops_dense serves, while the fused maps carry term evidence."""
    import numpy as np

    from components.index.build import build_index
    from components.model.encode import encode_queries
    from components.model.io import save_retriever
    from components.model.retriever import build_retriever
    from components.rag.engine import RagEngine

    model_dir = tmp_path / "model"
    save_retriever(build_retriever(tiny_params.model), model_dir / "retriever")
    build_index(tiny_params, tiny_corpus, model_dir, tmp_path / "index")
    engine = RagEngine.from_dirs(model_dir, tmp_path / "index", tiny_params)
    index = engine.index
    q = next(q for q in tiny_corpus.questions if q.page_id and index.has_page(q.page_id))
    query = engine.index_query(encode_queries(engine.retriever, [q.question])[0], q.question)
    dense, fused = index.heatmaps_at_region_weights(
        q.page_id, query, q.question, 0.5, "cell", "corpus", [0.5, 1.0]
    )
    np.testing.assert_array_equal(dense, index.heatmap(q.page_id, query))
    assert not np.array_equal(fused[0], dense)


def test_the_dense_systems_gold_page_box_follows_its_own_region_rule(
    tiny_params, tiny_corpus, tmp_path
):
    """regionops_dense's best region on the gold page (its mean IoU) is picked by the settings it
    serves with, so on a question whose top page is the gold page it is the served top box."""
    from components.config import DenseRegionParams
    from components.evaluation.region_answer import RegionAnswerer
    from components.evaluation.systems import SystemRunner
    from components.index.build import build_index
    from components.model.io import save_retriever
    from components.model.retriever import build_retriever
    from components.rag.engine import RagEngine

    model_dir = tmp_path / "model"
    save_retriever(build_retriever(tiny_params.model), model_dir / "retriever")
    build_index(tiny_params, tiny_corpus, model_dir, tmp_path / "index")
    # the fused settings and the dense system's own differ in every field it reads
    params = tiny_params.model_copy(
        update={
            "regions": tiny_params.regions.model_copy(
                update={"rule": "text_blocks", "threshold": "relative", "threshold_value": 0.8,
                        "neighbour_range": 1, "padding": 0, "score": "mean", "snap": "block",
                        "dense": DenseRegionParams(threshold="quantile", threshold_value=0.9,
                                                   neighbour_range=2, padding=1, snap="none")}
            )
        }
    )  # fmt: skip
    docs = sorted({q.doc for q in tiny_corpus.questions if q.box and not q.query_image})
    checked = 0
    for doc in docs:  # index one document at a time, so the top page is often the gold page
        engine = RagEngine.from_dirs(model_dir, tmp_path / "index", params)
        for other in {p.doc for p in tiny_corpus.pages} - {doc}:
            engine.index.delete_doc(other)
        runner = SystemRunner(params, tiny_corpus, engine, RegionAnswerer(engine.index, None))
        for q in tiny_corpus.questions:
            if q.doc != doc or not q.box or q.query_image:
                continue
            out = runner.run(q)["regionops_dense"]
            if out.top_page == q.page_id:
                assert out.gold_page_box == out.top_box
                checked += 1
        if checked >= 3:
            break
    assert checked >= 3
