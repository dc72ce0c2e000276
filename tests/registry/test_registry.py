"""The pyfunc RAG checkpoint, gate-and-register, aliases, idempotence, rollback and the audit trail.

The registry story runs once per module (logging a pyfunc takes seconds) against the
session's temp MLflow (sqlite under $REGIONOPS_HOME), with a small stand-in engine
injected through ``checkpoint.ENGINE_FACTORY``; the last test uses the real engine when
the upstream modules and artifacts exist.

Over 400 lines on purpose: gate, promotion, rollback and audit share one MLflow store and its
candidates.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from PIL import Image
from safetensors.numpy import save_file

from components.config import load_params
from components.serving import checkpoint
from tests.support.eval_runs import log_evaluation_run
from tests.support.registry_fakes import fake_factory

REPO = Path(__file__).resolve().parents[2]


def png_b64(size=(8, 6)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


# ------------------------------------------------------------------ unit: predict input handling


@pytest.fixture
def model(tmp_path, tiny_params, monkeypatch):
    monkeypatch.setattr(checkpoint, "ENGINE_FACTORY", fake_factory)
    (tmp_path / "model" / "retriever").mkdir(parents=True)
    (tmp_path / "model" / "retriever" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "index").mkdir()
    params_file = tmp_path / "params.yaml"
    import yaml

    params_file.write_text(yaml.safe_dump(tiny_params.to_dict()))
    from PIL import Image

    from components.serving.highlights import stage_page_images

    # the page the fake engine answers from, left half red and right half blue
    page = Image.new("RGB", (400, 600), "red")
    page.paste((0, 0, 255), (200, 0, 400, 600))
    page.save(tmp_path / "page.png")
    stage_page_images([("docs/a.pdf#0", tmp_path / "page.png")], tmp_path / "pages")
    m = checkpoint.RagCheckpoint()
    m.load_context(
        SimpleNamespace(
            artifacts={
                "model": str(tmp_path / "model"),
                "index": str(tmp_path / "index"),
                "params": str(params_file),
                "pages": str(tmp_path / "pages"),
            }
        )
    )
    return m


def test_predict_returns_answer_page_boxes_scores(model):
    out = model.predict(None, pd.DataFrame([{"question": "total?", "k": 3}, {"question": "who?"}]))
    assert list(out.columns) == ["answer", "page_id", "boxes", "scores", "highlights"]
    assert out.loc[0, "highlights"] == []  # crops only when asked for
    assert out.loc[0, "page_id"] == "docs/a.pdf#0"
    assert out.loc[0, "boxes"][0] == [0.1, 0.2, 0.5, 0.4]
    assert model.engine.calls[0][:2] == ("total?", 3)
    assert model.engine.calls[1][:2] == ("who?", None)  # k absent -> engine default


def test_predict_accepts_records_params_k_and_base64_image(model):
    out = model.predict(
        None, [{"question": "this building?", "query_image": png_b64()}], params={"k": 2}
    )
    assert len(out) == 1
    assert model.engine.calls[0] == ("this building?", 2, (8, 6))
    model.predict(
        None, {"question": "q", "query_image": "data:image/png;base64," + png_b64((3, 4))}
    )
    assert model.engine.calls[-1][2] == (3, 4)


def test_highlights_are_crops_of_each_box_from_the_bundled_page(model):
    from PIL import Image

    model.crops.max_side = 64
    out = model.predict(None, [{"question": "total?", "highlights": True}])
    crops = [Image.open(io.BytesIO(base64.b64decode(c))) for c in out.loc[0, "highlights"]]
    assert len(crops) == len(out.loc[0, "boxes"]) == 2
    # box [0.1, 0.2, 0.5, 0.4] of a 400x600 page: ~176x132 px (with margins), downscaled to <= 64 a side
    assert max(crops[0].size) == 64 and crops[0].size[0] > crops[0].size[1]
    # it straddles the red/blue boundary at x = 0.5; the full-width box [0, 0, 1, 0.25] is mostly both
    left, right = (
        crops[0].convert("RGB").getpixel((2, 10)),
        crops[0].convert("RGB").getpixel((crops[0].size[0] - 1, 10)),
    )
    assert left == (255, 0, 0) and right[2] > 200
    # a page without a bundled image gets no crops, not an error
    model.crops.manifest.clear()
    assert model.predict(None, [{"question": "q", "highlights": True}]).loc[0, "highlights"] == []


@pytest.mark.parametrize(
    "row, message",
    [
        ({"question": ""}, "'question' is empty"),
        ({"question": "   "}, "'question' is empty"),
        ({"question": 5}, "'question' must be a string"),
        ({"k": 2}, "'question' is required"),
        ({"question": "q", "k": 0}, "'k' must be between"),
        ({"question": "q", "k": 2.5}, "'k' must be an integer"),
        ({"question": "q", "k": "3"}, "'k' must be an integer"),
        ({"question": "q", "query_image": "not base64!!"}, "neither valid base64"),
        (
            {"question": "q", "query_image": base64.b64encode(b"hello world").decode()},
            "not a readable image",
        ),
        ({"question": "q", "query_image": 12}, "'query_image' must be"),
        ({"question": "q", "query_image": "../../etc/x.png"}, "paths are disabled"),
        ({"question": "q", "highlights": "yes"}, "'highlights' must be true or false"),
    ],
)
def test_bad_rows_raise_invalid_parameter(model, row, message):
    with pytest.raises(MlflowException) as err:
        model.predict(None, [row])
    assert message in err.value.message
    assert err.value.get_http_status_code() == 400
    assert model.engine.calls == []  # nothing answered for a bad batch


def test_oversized_image_refused_before_decoding(model):
    model.max_pixels = 1000
    with pytest.raises(MlflowException, match="limit is 1000"):
        model.predict(None, [{"question": "q", "query_image": png_b64((50, 50))}])


def test_image_paths_only_under_allowed_root(model, tmp_path, monkeypatch):
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (5, 7)).save(root / "card.png")
    (tmp_path / "secret.png").write_bytes((root / "card.png").read_bytes())
    monkeypatch.setenv(checkpoint.IMAGE_ROOT_ENV, str(root))
    model.predict(None, [{"question": "q", "query_image": "card.png"}])
    assert model.engine.calls[-1][2] == (5, 7)
    model.predict(None, [{"question": "q", "query_image": str(root / "card.png")}])
    for outside in ("../secret.png", str(tmp_path / "secret.png")):
        with pytest.raises(MlflowException, match="outside the allowed root"):
            model.predict(None, [{"question": "q", "query_image": outside}])
    with pytest.raises(MlflowException, match="does not exist"):
        model.predict(None, [{"question": "q", "query_image": "missing.png"}])


def test_non_normalised_engine_box_is_an_error():
    with pytest.raises(MlflowException, match="not normalised"):
        checkpoint.result_row(
            {"answer": "a", "page_id": "p", "boxes": [[0, 0, 2, 1]], "scores": [1]}
        )


# ------------------------------------------------------------------ registry story (MLflow, slow)


def make_candidate(
    root: Path, *, seed: int, page_r1: float, region_hit1: float, experiment: str
) -> dict:
    """A candidate as the train/index/evaluate stages leave it: weights, train_run.json, index, metrics."""
    from components.registry.client import ensure_experiment, registry_client

    client = registry_client()
    exp_id = ensure_experiment(client, experiment)
    run = client.create_run(exp_id, run_name=f"train-{seed}")
    client.set_terminated(run.info.run_id)
    model_dir, index_dir = root / f"model{seed}", root / f"index{seed}"
    (model_dir / "retriever").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    save_file(
        {"w": rng.standard_normal((4, 4)).astype(np.float32)},
        str(model_dir / "retriever/model.safetensors"),
    )
    (model_dir / "retriever/config.json").write_text(json.dumps({"fingerprint": f"fp{seed}"}))
    (model_dir / "last.ckpt").write_bytes(b"pickled trainer state")
    (model_dir / "train_run.json").write_text(
        json.dumps({"run_id": run.info.run_id, "experiment_id": exp_id})
    )
    index_dir.mkdir()
    (index_dir / "index.faiss").write_bytes(rng.bytes(64))
    metrics_path = root / f"metrics{seed}.json"
    metrics_path.write_text(
        json.dumps(
            {
                "systems": {
                    "regionops": {"page_r1": page_r1, "page_r5": 0.9, "region_hit1": region_hit1},
                    "bm25_blocks": {"page_r1": 0.1},
                },
                "n_questions": 20,
                "dataset_id": f"test-split-{seed}",
            }
        )
    )
    log_evaluation_run(metrics_path, model_dir)  # the gate reads its numbers from this run
    return {
        "model_dir": model_dir,
        "index_dir": index_dir,
        "metrics_path": metrics_path,
        "run_id": run.info.run_id,
        "eval_run_id": json.loads(metrics_path.read_text())["mlflow_run_id"],
    }


@pytest.fixture(scope="module")
def story(tmp_path_factory, regionops_home):
    """v1 promoted, re-registered unchanged, v2 worse -> challenger, v3 better -> champion, rollback."""
    from components.registry import audit, promote, store
    from components.registry.client import registry_client

    name = f"regionops-test-{uuid.uuid4().hex[:6]}"
    params = load_params(
        REPO / "params.yaml", [f"registry.model_name={name}", f"registry.experiment={name}"]
    )
    root = tmp_path_factory.mktemp("candidates")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "ENGINE_FACTORY", fake_factory)
        mp.setenv("REGIONOPS_PARENT_RUN_ID", "flow-run-123")
        c1 = make_candidate(root, seed=1, page_r1=0.6, region_hit1=0.4, experiment=name)
        c2 = make_candidate(
            root, seed=2, page_r1=0.5, region_hit1=0.4, experiment=name
        )  # regresses page_r1
        c3 = make_candidate(root, seed=3, page_r1=0.65, region_hit1=0.45, experiment=name)
        args = lambda c: (params, c["model_dir"], c["index_dir"], c["metrics_path"])
        first = promote.gate_and_register(*args(c1), lineage={"data_hash": "abc123"})
        again = promote.gate_and_register(*args(c1))
        worse = promote.gate_and_register(*args(c2))
        champion_after_worse = str(store.champion_version(registry_client(), name).version)
        better = promote.gate_and_register(*args(c3))
        rolled = audit.rollback(params, None, "v3 misbehaves in production")
        yield SimpleNamespace(
            params=params,
            name=name,
            c1=c1,
            first=first,
            again=again,
            worse=worse,
            better=better,
            rolled=rolled,
            champion_after_worse=champion_after_worse,
            history=audit.history(params),
        )


@pytest.mark.slow
def test_first_candidate_becomes_champion_and_loads(story):
    import mlflow

    assert story.first["status"] == "promoted" and story.first["version"] == "1"
    assert story.first["gate"]["passed"] is True
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "ENGINE_FACTORY", fake_factory)
        loaded = mlflow.pyfunc.load_model(f"models:/{story.name}/1")
        out = loaded.predict(pd.DataFrame([{"question": "what is the total?"}]))
        assert out.loc[0, "page_id"] and len(out.loc[0, "boxes"][0]) == 4
        with pytest.raises(MlflowException):  # the signature rejects a wrong type before predict
            loaded.predict(pd.DataFrame([{"question": 5}]))


@pytest.mark.slow
def test_version_and_run_carry_gate_lineage_and_artifacts(story):
    from components.registry.client import registry_client

    client = registry_client()
    mv = client.get_model_version(story.name, "1")
    assert mv.tags["gate.passed"] == "true"
    # the version page says what it is: the training run, the evaluation set and scores, the gate
    assert mv.description.startswith("**Gate passed**: trained by run `train-1`")
    assert "dataset `test-split-1`" in mv.description and "page_r1 0.600" in mv.description
    # the gate decided from the candidate's own evaluation run, and both records name it
    assert mv.tags["lineage.eval_run_id"] == story.c1["eval_run_id"]
    assert mv.tags["gate.evaluation_run_id"] == story.c1["eval_run_id"]
    assert json.loads(mv.tags["gate.decision"])["evaluation_run_id"] == story.c1["eval_run_id"]
    eval_run = client.get_run(story.c1["eval_run_id"])
    assert (
        eval_run.data.tags["mlflow.parentRunId"] == story.c1["run_id"]
    )  # nested under the training run
    assert mv.tags["gate.floor.page_r1"].startswith("pass")
    assert mv.tags["lineage.parent_run_id"] == "flow-run-123"
    assert mv.tags["lineage.data_hash"] == "abc123"
    assert mv.tags["lineage.eval_dataset_id"] == "test-split-1"
    assert mv.tags["lineage.params_digest"] == story.params.digest()
    assert mv.tags["lineage.git_commit"]
    assert float(mv.tags["metric.page_r1"]) == 0.6
    assert mv.run_id == story.c1["run_id"]  # logged into the training run
    run = client.get_run(story.c1["run_id"])
    assert run.data.tags["gate.passed"] == "true"
    files = {f.path for f in client.list_artifacts(story.c1["run_id"], "gate")}
    assert {"gate/gate.json", "gate/gate.md"} <= files


@pytest.mark.slow
def test_same_candidate_twice_registers_nothing(story):
    assert story.again["status"] == "unchanged"
    assert story.again["version"] == "1"
    assert "champion" in story.again["aliases"]


@pytest.mark.slow
def test_worse_candidate_is_challenger_and_champion_stays(story):
    assert story.worse["status"] == "challenger" and story.worse["version"] == "2"
    assert story.champion_after_worse == "1"
    failed = [r for r in story.worse["gate"]["rules"] if not r["passed"]]
    assert [(r["kind"], r["metric"]) for r in failed] == [("non_regression", "page_r1")]
    from components.registry.client import registry_client

    tags = registry_client().get_model_version(story.name, "2").tags
    assert tags["gate.passed"] == "false" and "page_r1" in tags["gate.reasons"]


@pytest.mark.slow
def test_better_candidate_promoted_then_rollback_restores_previous(story):
    assert story.better["status"] == "promoted" and story.better["version"] == "3"
    assert story.better["champion_before"] == "1"
    assert story.rolled["from_version"] == "3" and story.rolled["to_version"] == "1"
    from components.registry.client import registry_client

    assert str(registry_client().get_model_version_by_alias(story.name, "champion").version) == "1"


@pytest.mark.slow
def test_history_records_every_alias_move(story):
    moves = [(e["action"], e["alias"], e["from_version"], e["to_version"]) for e in story.history]
    assert moves == [
        ("promote", "champion", None, "1"),
        ("challenger", "challenger", None, "2"),
        ("promote", "champion", "1", "3"),
        ("rollback", "champion", "3", "1"),
    ]
    last = story.history[-1]
    assert (
        last["reason"] == "v3 misbehaves in production"
        and last["who"]
        and last["when"].endswith("+00:00")
    )


@pytest.mark.slow
def test_rollback_without_earlier_champion_is_refused(story):
    from components.registry.audit import rollback
    from components.registry.errors import RegistryError

    with pytest.raises(RegistryError, match="no earlier champion"):
        rollback(story.params, None, "again")
    with pytest.raises(RegistryError, match="already the champion"):
        rollback(story.params, "1", "noop")
    with pytest.raises(RegistryError, match="needs a reason"):
        rollback(story.params, "3", " ")


@pytest.mark.slow
def test_champion_metrics_reads_current_champion(story):
    from components.registry.client import registry_client
    from components.registry.store import champion_metrics

    champ = champion_metrics(registry_client(), story.params.registry.model_name)
    assert champ["systems"]["regionops"]["page_r1"] == 0.6  # v1 again after the rollback


# ------------------------------------------------------------------ concurrency (two processes)


def _race_worker(model_name: str, candidate: dict, barrier, results) -> None:
    """One promotion in its own process (spawned: nothing shared but the tracking store)."""
    from components.registry.promote import gate_and_register
    from components.serving import checkpoint as ckpt

    ckpt.ENGINE_FACTORY = fake_factory
    params = load_params(
        REPO / "params.yaml",
        [f"registry.model_name={model_name}", f"registry.experiment={model_name}"],
    )
    barrier.wait(timeout=60)
    try:
        outcome = gate_and_register(
            params, candidate["model_dir"], candidate["index_dir"], candidate["metrics_path"]
        )
        results.put({"status": outcome["status"], "version": outcome["version"]})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test with it
        results.put({"error": repr(exc)})


def _race(model_name: str, candidates: list[dict]) -> list[dict]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(len(candidates)), ctx.Queue()
    procs = [
        ctx.Process(target=_race_worker, args=(model_name, c, barrier, results)) for c in candidates
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    assert not [o for o in outcomes if "error" in o], outcomes
    return outcomes


@pytest.mark.slow
def test_two_processes_racing_leave_one_consistent_champion(tmp_path):
    from components.registry.audit import champion_lineage
    from components.registry.audit import events_from_tags as _events
    from components.registry.client import registry_client

    name = f"regionops-race-{uuid.uuid4().hex[:6]}"
    a = make_candidate(tmp_path, seed=11, page_r1=0.6, region_hit1=0.4, experiment=name)
    b = make_candidate(tmp_path, seed=12, page_r1=0.6, region_hit1=0.4, experiment=name)
    outcomes = _race(name, [a, b])
    assert sorted(o["status"] for o in outcomes) == ["promoted", "promoted"]
    client = registry_client()
    events = _events(client.get_registered_model(name).tags)
    # serialised: the second promotion saw the first one's champion, never "no champion"
    assert [e["from_version"] for e in events] == [None, events[0]["to_version"]]
    assert (
        str(client.get_model_version_by_alias(name, "champion").version) == events[-1]["to_version"]
    )
    assert champion_lineage(events) == [events[0]["to_version"], events[1]["to_version"]]

    # the same candidate racing itself registers exactly one version
    twin = make_candidate(tmp_path, seed=13, page_r1=0.7, region_hit1=0.5, experiment=name)
    outcomes = _race(name, [twin, twin])
    assert sorted(o["status"] for o in outcomes) == ["promoted", "unchanged"]
    assert len({o["version"] for o in outcomes}) == 1
    assert len(client.search_model_versions(f"name='{name}'")) == 3


@pytest.mark.slow
def test_champion_rescored_on_same_eval_set_drives_the_gate(story, tmp_path):
    from components.registry.promote import gate_and_register
    from components.registry.rescore import Rescore
    from components.registry.store import download_champion

    champ = download_champion(story.params, tmp_path / "champion")
    assert champ["version"] == "1"
    assert (champ["model_dir"] / "retriever" / "model.safetensors").exists()
    assert not list(champ["model_dir"].rglob("*.ckpt"))
    assert (champ["index_dir"] / "index.faiss").exists()
    assert load_params(champ["params_file"]).digest() == story.params.digest()

    # The candidate beats v1's recorded numbers but not v1 re-scored on today's set.
    c4 = make_candidate(tmp_path, seed=4, page_r1=0.62, region_hit1=0.42, experiment=story.name)
    rescored = {"systems": {"regionops": {"page_r1": 0.8, "region_hit1": 0.42}}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "ENGINE_FACTORY", fake_factory)
        out = gate_and_register(
            story.params,
            c4["model_dir"],
            c4["index_dir"],
            c4["metrics_path"],
            rescore=Rescore("1", rescored),
        )
    assert out["status"] == "challenger"
    assert any("re-scored" in r for r in out["gate"]["reasons"])
    # a re-score of a version that is no longer champion is ignored, and the decision says so
    c5 = make_candidate(tmp_path, seed=5, page_r1=0.62, region_hit1=0.42, experiment=story.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "ENGINE_FACTORY", fake_factory)
        out = gate_and_register(
            story.params,
            c5["model_dir"],
            c5["index_dir"],
            c5["metrics_path"],
            rescore=Rescore("3", rescored),
        )
    assert out["status"] == "promoted"
    assert any("recorded at its registration" in r for r in out["gate"]["reasons"])


# ------------------------------------------------------------------ serving over HTTP


@pytest.mark.slow
@pytest.mark.integration
def test_served_champion_answers_and_survives_bad_requests(tmp_path, regionops_home):
    """``mlflow models serve`` on 127.0.0.1: good requests answer, bad ones get a 400, the server lives on."""
    from components.registry import bundle, promote
    from tests.support.serving import serve

    name = f"regionops-serve-{uuid.uuid4().hex[:6]}"
    params = load_params(
        REPO / "params.yaml",
        [
            f"registry.model_name={name}",
            f"registry.experiment={name}",
            "registry.max_query_image_pixels=2500",
        ],
    )
    cand = make_candidate(tmp_path, seed=21, page_r1=0.6, region_hit1=0.4, experiment=name)
    with pytest.MonkeyPatch.context() as mp:
        # models-from-code: the real pyfunc logic over the fake engine
        mp.setattr(bundle, "MODEL_CODE", REPO / "tests" / "support" / "fake_served_model.py")
        mp.setattr(checkpoint, "ENGINE_FACTORY", fake_factory)
        assert (
            promote.gate_and_register(
                params, cand["model_dir"], cand["index_dir"], cand["metrics_path"]
            )["status"]
            == "promoted"
        )

    with serve(f"models:/{name}@champion", tmp_path / "serve.log") as server:
        good = [{"question": "what is the total?", "k": 3}]
        status, body = server.post(good)
        assert status == 200, body
        row = body["predictions"][0]
        assert (
            row["page_id"] == "docs/a.pdf#0"
            and row["boxes"][0] == [0.1, 0.2, 0.5, 0.4]
            and row["answer"]
        )

        bad_requests = {
            "empty question": ([{"question": ""}], "'question' is empty"),
            "invalid base64": (
                [{"question": "q", "query_image": "@@not-base64@@"}],
                "neither valid base64",
            ),
            "oversized image": (
                [{"question": "q", "query_image": png_b64((60, 60))}],
                "limit is 2500",
            ),
            "wrong type": ([{"question": "q", "k": "three"}], ""),
        }
        for label, (records, message) in bad_requests.items():
            status, body = server.post(records)
            assert status == 400, (label, status, body)
            assert message in body.get("message", ""), (label, body)
            assert server.post(good)[0] == 200, f"server stopped answering after {label}"


# ------------------------------------------------------------------ the real engine end to end


@pytest.mark.slow
def test_real_engine_checkpoint_registers_loads_and_answers(tiny_params, tmp_path, request):
    """Train (tiny) -> index -> register -> load models:/<name>@champion -> predict, with the real engine."""
    for module in (
        "components.data.synthetic",
        "components.training.train",
        "components.rag.engine",
    ):
        pytest.importorskip(module, reason=f"{module} not merged yet")
    build = pytest.importorskip("components.index.build", reason="index builder not merged yet")
    tiny_corpus = request.getfixturevalue("tiny_corpus")
    import mlflow

    from components.registry.promote import gate_and_register
    from components.settings import get_settings
    from components.training.train import train_retriever

    name = f"regionops-real-{uuid.uuid4().hex[:6]}"
    params = tiny_params.model_copy(deep=True)
    params.registry.model_name = name
    model_dir, index_dir = tmp_path / "model", tmp_path / "index"
    train_retriever(params, tiny_corpus, model_dir, get_settings())
    build.build_index(params, tiny_corpus, model_dir, index_dir)
    metrics = tmp_path / "metrics.json"  # gate input only: floors are 0 in the tiny params
    metrics.write_text(
        json.dumps(
            {"systems": {"regionops": {"page_r1": 0.5, "region_hit1": 0.5}}, "dataset_id": "tiny"}
        )
    )
    log_evaluation_run(metrics, model_dir, params)
    out = gate_and_register(params, model_dir, index_dir, metrics)
    assert out["status"] == "promoted"

    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    question = tiny_corpus.questions[0].question
    pred = loaded.predict(pd.DataFrame([{"question": question, "k": 3}]))
    assert pred.loc[0, "page_id"]
    assert pred.loc[0, "boxes"] and all(0 <= v <= 1 for v in pred.loc[0, "boxes"][0])


@pytest.mark.slow
def test_checkpoint_that_cannot_answer_is_never_registered(tmp_path):
    from components.registry.client import registry_client
    from components.registry.errors import RegistryError
    from components.registry.promote import gate_and_register

    name = f"regionops-broken-{uuid.uuid4().hex[:6]}"
    params = load_params(
        REPO / "params.yaml", [f"registry.model_name={name}", f"registry.experiment={name}"]
    )
    cand = make_candidate(tmp_path, seed=31, page_r1=0.9, region_hit1=0.9, experiment=name)

    def broken(model_dir, index_dir, params):
        raise RuntimeError("index dimension 64 != model dimension 128")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "ENGINE_FACTORY", broken)
        with pytest.raises(RegistryError, match="index dimension 64"):
            gate_and_register(params, cand["model_dir"], cand["index_dir"], cand["metrics_path"])
    assert list(registry_client().search_model_versions(f"name='{name}'")) == []


# ------------------------------------------------------------------ the commands reviewers type


@pytest.mark.slow
def test_history_and_rollback_commands(story):
    from typer.testing import CliRunner

    from components.cli import app

    runner = CliRunner()
    sets = [
        "--set",
        f"registry.model_name={story.name}",
        "--set",
        f"registry.experiment={story.name}",
    ]
    printed = runner.invoke(app, ["history", "--json", *sets])
    assert printed.exit_code == 0, printed.output
    events = json.loads(printed.output)
    assert [(e["action"], e["from_version"], e["to_version"]) for e in events[:4]] == [
        ("promote", None, "1"),
        ("challenger", None, "2"),
        ("promote", "1", "3"),
        ("rollback", "3", "1"),
    ]
    table = runner.invoke(app, ["history", *sets], terminal_width=200)
    assert table.exit_code == 0 and "rollback" in table.output and "v3 misbehaves" in table.output

    refused = runner.invoke(app, ["rollback", "--to", "999", "--reason", "typo", *sets])
    assert refused.exit_code == 1
    assert len(json.loads(runner.invoke(app, ["history", "--json", *sets]).output)) == len(events)


def test_served_reader_is_the_answerer_that_measured_better(tmp_path, tiny_params):
    from components.registry.bundle import served_reader

    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "config.json").write_text("{}")
    (reader / "reader.safetensors").write_bytes(b"x")

    def metrics(**values):
        return {"systems": {"regionops": {"page_r1": 0.5, **values}}}

    better, reason = served_reader(tiny_params, metrics(anls=0.2, reader_anls=0.3), reader)
    assert better == reader and "0.300 > text-layer ANLS 0.200" in reason
    assert served_reader(tiny_params, metrics(anls=0.3, reader_anls=0.1), reader)[0] is None
    assert (
        served_reader(tiny_params, metrics(anls=0.3), reader)[0] is None
    )  # nothing measured: text
    assert served_reader(tiny_params, metrics(anls=0.3, reader_anls=0.9), None) == (
        None,
        "no reader trained",
    )
    forced = tiny_params.model_copy(
        update={"registry": tiny_params.registry.model_copy(update={"answerer": "reader"})}
    )
    assert served_reader(forced, metrics(anls=0.3, reader_anls=0.1), reader)[0] == reader
    with pytest.raises(FileNotFoundError, match="no reader.safetensors"):
        served_reader(tiny_params, metrics(), tmp_path)


def test_real_pages_decide_the_answerer_when_they_were_measured(tmp_path, tiny_params):
    """The synthetic split prefers the text layer, the real held-out pages the reader: the real
    pages decide, and the reason shows both; without real figures the synthetic split decides."""
    from components.registry.bundle import served_reader

    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "config.json").write_text("{}")
    (reader / "reader.safetensors").write_bytes(b"x")
    synthetic = {"anls": 0.38, "reader_anls": 0.30}
    both = {
        "systems": {"regionops": {**synthetic, "real_reader_anls": 0.5, "real_text_anls": 0.04}}
    }
    chosen, reason = served_reader(tiny_params, both, reader)
    assert chosen == reader
    assert "0.500 > text-layer ANLS 0.040 on real pages" in reason and "synthetic" in reason
    chosen, reason = served_reader(tiny_params, {"systems": {"regionops": synthetic}}, reader)
    assert chosen is None and "on the synthetic split" in reason
    worse = {
        "systems": {"regionops": {**synthetic, "real_reader_anls": 0.1, "real_text_anls": 0.2}}
    }
    assert served_reader(tiny_params, worse, reader)[0] is None
