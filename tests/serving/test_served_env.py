"""The registered champion is an installable model: its requirements resolve from the package index
and ``mlflow models serve`` runs it in an environment MLflow builds from them (not this venv)."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml


def test_requirements_carry_no_local_version_labels():
    from components.registry.bundle import pip_requirements

    reqs = pip_requirements()
    assert not [r for r in reqs if "+" in r], reqs  # torch==2.13.0+cpu is on no package index
    torch = next(r for r in reqs if r.startswith("torch=="))
    assert torch.count(".") == 2 and torch.split("==")[1][0].isdigit()


def _register_real_champion(params, corpus, root):
    """An untrained retriever + its real index, registered through the gate (the real engine answers)."""
    from components.index.build import build_index
    from components.model.io import save_retriever
    from components.model.retriever import build_retriever
    from components.registry.promote import gate_and_register
    from tests.support.eval_runs import log_evaluation_run

    model_dir, index_dir = root / "model", root / "index"
    save_retriever(build_retriever(params.model), model_dir / "retriever")
    build_index(params, corpus, model_dir, index_dir)
    metrics = root / "metrics.json"  # gate input only: the tiny params' floors are 0
    metrics.write_text(
        json.dumps(
            {"systems": {"regionops": {"page_r1": 0.5, "region_hit1": 0.5}}, "dataset_id": "tiny"}
        )
    )
    log_evaluation_run(metrics, model_dir, params)
    return gate_and_register(params, model_dir, index_dir, metrics)


@pytest.mark.slow
@pytest.mark.integration
def test_champion_serves_from_an_isolated_virtualenv(
    tiny_params, tiny_corpus, tmp_path, regionops_home
):
    """models-from-code (no pickle), requirements without +cpu, `--env-manager virtualenv` on 127.0.0.1.

    The first run builds the environment from the package index (minutes); MLflow keeps it under
    ~/.mlflow/envs keyed by the requirements, so later runs reuse it.
    """
    import mlflow

    from tests.support.serving import serve

    params = tiny_params.model_copy(deep=True)
    params.registry.model_name = f"regionops-venv-{uuid.uuid4().hex[:6]}"
    outcome = _register_real_champion(params, tiny_corpus, tmp_path)
    assert outcome["status"] == "promoted", outcome

    mlflow.artifacts.download_artifacts(
        f"models:/{params.registry.model_name}@champion", dst_path=str(tmp_path / "downloaded")
    )
    spec = yaml.safe_load((tmp_path / "downloaded" / "MLmodel").read_text())
    pyfunc = spec["flavors"]["python_function"]
    assert pyfunc.get("model_code_path"), "the model must be logged from code, not cloudpickled"
    assert not list((tmp_path / "downloaded").rglob("python_model.pkl"))
    requirements = (tmp_path / "downloaded" / "requirements.txt").read_text()
    assert "+cpu" not in requirements and "torch==" in requirements, requirements

    question = tiny_corpus.questions[0].question
    with serve(
        f"models:/{params.registry.model_name}@champion",
        tmp_path / "serve.log",
        timeout_s=1800,
        env_manager="virtualenv",
    ) as server:
        status, body = server.post([{"question": question, "k": 3}])
        assert status == 200, body
        row = body["predictions"][0]
        assert row["page_id"] and "#" in row["page_id"]
        assert row["boxes"] and all(0.0 <= v <= 1.0 for v in row["boxes"][0])
        status, body = server.post([{"question": ""}])
        assert status == 400 and "'question' is empty" in body.get("message", "")
    log = (tmp_path / "serve.log").read_text()
    assert "environment" in log.lower() and "/envs/mlflow-" in log, log[
        -2000:
    ]  # MLflow's own venv served it
