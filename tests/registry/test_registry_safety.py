"""The registry's safety rules: a gated candidate always ends up aliased, rollback respects the
gate, and alias moves from separate homes serialise on the registry itself (sqlite store here;
the PostgreSQL variant is in test_production_profile)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.config import load_params
from components.serving import checkpoint
from components.settings import get_settings
from tests.registry.test_registry import make_candidate
from tests.support.registry_fakes import fake_factory

REPO = Path(__file__).resolve().parents[2]


def _params(name: str):
    return load_params(
        REPO / "params.yaml", [f"registry.model_name={name}", f"registry.experiment={name}"]
    )


def _fail_next_alias_move(mp: pytest.MonkeyPatch) -> None:
    """The next ``set_registered_model_alias`` fails as a dropped connection would; later ones work."""
    real = MlflowClient.set_registered_model_alias
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise MlflowException("connection reset while moving the alias")
        return real(self, *args, **kwargs)

    mp.setattr(MlflowClient, "set_registered_model_alias", flaky)


# ------------------------------------------------------------------ 28.5: registered but never aliased


@pytest.mark.slow
def test_candidate_registered_but_never_aliased_is_promoted_by_the_next_run(tmp_path):
    from components.registry.audit import history
    from components.registry.client import registry_client
    from components.registry.promote import gate_and_register

    name = f"regionops-finish-{uuid.uuid4().hex[:6]}"
    params = _params(name)
    good = make_candidate(tmp_path, seed=41, page_r1=0.6, region_hit1=0.4, experiment=name)
    worse = make_candidate(tmp_path, seed=42, page_r1=0.3, region_hit1=0.4, experiment=name)
    args = lambda c: (params, c["model_dir"], c["index_dir"], c["metrics_path"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "ENGINE_FACTORY", fake_factory)
        with pytest.MonkeyPatch.context() as flaky:
            _fail_next_alias_move(flaky)
            with pytest.raises(MlflowException, match="connection reset"):
                gate_and_register(*args(good))
        client = registry_client()
        assert [str(v.version) for v in client.search_model_versions(f"name='{name}'")] == ["1"]
        assert client.get_model_version(name, "1").aliases == []  # registered, never promoted

        again = gate_and_register(*args(good))
        assert again["status"] == "promoted" and again["version"] == "1" and again["completed_move"]
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
        assert gate_and_register(*args(good))["status"] == "unchanged"  # now it is, and says so

        # the same for a candidate whose gate failed: it becomes the challenger
        with pytest.MonkeyPatch.context() as flaky:
            _fail_next_alias_move(flaky)
            with pytest.raises(MlflowException):
                gate_and_register(*args(worse))
        finished = gate_and_register(*args(worse))
    assert finished["status"] == "challenger" and finished["version"] == "2"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "2"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    moves = [(e["action"], e["alias"], e["from_version"], e["to_version"]) for e in history(params)]
    assert moves == [("promote", "champion", None, "1"), ("challenger", "challenger", None, "2")]
    assert all(e["reason"].startswith("completing v") for e in history(params))
    assert [e["seq"] for e in history(params)] == [1, 2]


# ------------------------------------------------------------------ 28.6: rollback respects the gate


@pytest.mark.slow
def test_rollback_to_a_version_whose_gate_failed_is_refused_unless_forced(tmp_path):
    from typer.testing import CliRunner

    from components.cli import app
    from components.registry.audit import history, rollback
    from components.registry.client import registry_client
    from components.registry.errors import RegistryError
    from components.registry.promote import gate_and_register

    name = f"regionops-force-{uuid.uuid4().hex[:6]}"
    params = _params(name)
    good = make_candidate(tmp_path, seed=51, page_r1=0.6, region_hit1=0.4, experiment=name)
    worse = make_candidate(tmp_path, seed=52, page_r1=0.3, region_hit1=0.4, experiment=name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "ENGINE_FACTORY", fake_factory)
        assert (
            gate_and_register(params, good["model_dir"], good["index_dir"], good["metrics_path"])[
                "status"
            ]
            == "promoted"
        )
        assert (
            gate_and_register(
                params, worse["model_dir"], worse["index_dir"], worse["metrics_path"]
            )["status"]
            == "challenger"
        )

    with pytest.raises(RegistryError, match="version 2 must not serve: its gate failed"):
        rollback(params, "2", "the new one looks fine to me")
    sets = ["--set", f"registry.model_name={name}", "--set", f"registry.experiment={name}"]
    refused = CliRunner().invoke(app, ["rollback", "--to", "2", "--reason", "try it", *sets])
    assert refused.exit_code == 1 and "--force" in refused.output
    client = registry_client()
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert [e["action"] for e in history(params)] == ["promote", "challenger"]

    forced = CliRunner().invoke(
        app, ["rollback", "--to", "2", "--force", "--reason", "v1 crashes on PDFs", *sets]
    )
    assert forced.exit_code == 0, forced.output
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    override = history(params)[-1]
    assert override["action"] == "rollback" and override["forced"] is True
    assert (
        override["overrode"].startswith("gate.passed=false") and "page_r1" in override["overrode"]
    )
    assert override["reason"] == "v1 crashes on PDFs" and override["who"] and override["when"]
    assert "v1 crashes on PDFs" in client.get_model_version(name, "2").tags["forced_champion"]
    # back to a version whose gate passed: no force needed, nothing marked forced
    back = rollback(params, "1", "back to the gated champion")
    assert back["forced"] is False and "forced" not in history(params)[-1]


# ------------------------------------------------------------------ 28.7: one lock per registry


def test_sqlite_registry_lock_lives_next_to_the_database_not_in_the_home(tmp_path, monkeypatch):
    from components.registry.client import lock_location

    store = tmp_path / "shared" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    locations = set()
    for home in ("a", "b"):
        monkeypatch.setenv("REGIONOPS_HOME", str(tmp_path / home))
        locations.add(lock_location(get_settings(), "regionops"))
    assert locations == {("file", str(store.parent / "mlflow.db.locks" / "regionops.lock"))}


def test_postgres_registries_lock_in_the_database(tmp_path, monkeypatch):
    from components.registry.client import advisory_key, lock_location

    monkeypatch.setenv("REGIONOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg2://u@db:5432/mlflow")
    assert lock_location(get_settings(), "m") == (
        "postgres",
        "postgresql+psycopg2://u@db:5432/mlflow",
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("REGIONOPS_REGISTRY_LOCK_URL", "postgresql://lock@db:5432/regionops_locks")
    assert lock_location(get_settings(), "m") == (
        "postgres",
        "postgresql://lock@db:5432/regionops_locks",
    )
    # one key per model, the same in every process (Python's hash() would not be)
    assert advisory_key("m") == advisory_key("m") != advisory_key("n")
    assert -(2**63) <= advisory_key("m") < 2**63


@pytest.mark.slow
def test_racing_rollbacks_from_two_homes_keep_one_consecutive_audit_chain(tmp_path):
    from components.registry.audit import read_events
    from tests.support.registry_race import assert_one_chain, make_versions, race_rollbacks

    name = f"regionops-rollrace-{uuid.uuid4().hex[:6]}"
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = make_versions(client, name, 3)
    envs = [
        {
            "REGIONOPS_HOME": str(tmp_path / f"home-{i}"),
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_REGISTRY_URI": uri,
        }
        for i in range(2)
    ]
    outcomes = race_rollbacks(name, envs, versions)
    events = read_events(client, name)
    assert_one_chain(events, outcomes, versions[-1])
    assert (
        str(client.get_model_version_by_alias(name, "champion").version) == events[-1]["to_version"]
    )
