"""The production profile against real servers on 127.0.0.1.

PostgreSQL (Debian's, a throw-away cluster), S3 (moto's server), an MLflow tracking
server on PostgreSQL with S3 artifacts and basic auth, and a Prefect server on
PostgreSQL. The pipeline runs once, end to end, with ``REGIONOPS_PROFILE=production``
settings from environment variables only; the checks then read each service's own store.

In CI (``CI=true``) a service that cannot start fails these tests; on a developer machine
without PostgreSQL they are skipped with the command that installs it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from tests.support import real_services as rs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("production_stack")
    servers: list[rs.Server] = []
    try:
        postgres = rs.start_postgres()
        servers.append(postgres)
        s3 = rs.start_s3(root / "s3")
        servers.append(s3)
        # The two slow starters (30-90 s each on a shared 2-core machine) start side by side.
        with ThreadPoolExecutor(max_workers=2) as pool:
            starting = [
                pool.submit(rs.start_mlflow, root / "mlflow", postgres, s3),
                pool.submit(rs.start_prefect, root / "prefect", postgres),
            ]
            wait(starting)
        servers += [f.result() for f in starting if f.exception() is None]
        for future in starting:
            if future.exception() is not None:
                raise future.exception()
        rs.create_pipeline_user(next(s for s in servers if s.name == "mlflow"))
    except rs.ServiceUnavailable as exc:
        rs.stop_all(servers)
        if os.environ.get("CI"):
            pytest.fail(f"production services cannot start in CI: {exc}")
        pytest.skip(str(exc))
    except Exception:
        rs.stop_all(servers)
        if servers:
            shutil.rmtree(servers[0].extra["root"], ignore_errors=True)
        raise
    yield {server.name: server for server in servers}
    rs.stop_all(servers)
    shutil.rmtree(servers[0].extra["root"], ignore_errors=True)


def _production_env(stack, home: Path) -> dict[str, str]:
    """What a flow run gets (infra/): the variables of infra/.env.example and the pipeline's own
    logins (MLflow non-admin user, the lock role's password, the Prefect API login)."""
    lock_url = rs.role_url(stack["postgres"], "regionops_lock", "regionops_locks")
    return {
        **rs.s3_env(),
        "REGIONOPS_PROFILE": "production",
        "REGIONOPS_HOME": str(home),
        "PREFECT_HOME": str(home / "prefect"),
        "MLFLOW_TRACKING_URI": stack["mlflow"].url,
        "MLFLOW_TRACKING_USERNAME": rs.PIPELINE_USER,
        "MLFLOW_TRACKING_PASSWORD": rs.PIPELINE_PASSWORD,
        "PREFECT_API_URL": stack["prefect"].url,
        "PREFECT_API_AUTH_STRING": rs.PREFECT_AUTH,
        "REGIONOPS_DVC_REMOTE": f"s3://{rs.DVC_BUCKET}/store",
        "AWS_ENDPOINT_URL": stack["s3"].url,
        # the lock role of infra/postgres-roles.sh, its password from libpq's PGPASSWORD as in infra/
        "REGIONOPS_REGISTRY_LOCK_URL": lock_url.replace(
            f":{rs.DB_PASSWORDS['REGIONOPS_LOCK_DB_PASSWORD']}@", "@"
        ),
        "PGPASSWORD": rs.DB_PASSWORDS["REGIONOPS_LOCK_DB_PASSWORD"],
    }


def _s3(stack):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=stack["s3"].url,
        aws_access_key_id=rs.S3_KEY,
        aws_secret_access_key=rs.S3_SECRET,
        region_name="us-east-1",
    )


def _keys(stack, bucket: str) -> list[str]:
    pages = _s3(stack).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _sql(stack, database: str, query: str) -> list[tuple]:
    import psycopg2

    with (
        psycopg2.connect(f"{stack['postgres'].url}/{database}") as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(query)
        return cursor.fetchall()


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def pipeline_run(stack, tmp_path_factory):
    from tests.flows.test_pipeline_integration import _make_project

    root = tmp_path_factory.mktemp("production_run")
    project = _make_project(root / "project", [])
    env = {**os.environ, **_production_env(stack, root / "state")}
    result = subprocess.run(
        [sys.executable, "-m", "flows.pipeline", "--project-dir", str(project)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return {"project": project, "env": env, "log": result.stdout + result.stderr}


def test_unauthenticated_requests_are_refused_by_the_tracking_server(stack):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(
            f"{stack['mlflow'].url}/api/2.0/mlflow/experiments/search?max_results=1"
        )
    assert refused.value.code == 401


def test_unauthenticated_requests_are_refused_by_the_prefect_server(stack):
    import base64
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(
            urllib.request.Request(
                f"{stack['prefect'].url}/flows/filter",
                data=b"{}",
                method="POST",
                headers={"Content-Type": "application/json"},
            )
        )
    assert refused.value.code == 401
    login = base64.b64encode(rs.PREFECT_AUTH.encode()).decode()
    allowed = urllib.request.urlopen(
        urllib.request.Request(
            f"{stack['prefect'].url}/flows/filter",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Basic {login}"},
        )
    )
    assert allowed.status == 200


def test_each_database_login_reaches_only_its_own_database(stack):
    import psycopg2

    for role, own, foreign in (
        ("regionops_lock", "regionops_locks", "mlflow"),
        ("mlflow", "mlflow", "prefect"),
        ("prefect", "prefect", "mlflow_auth"),
    ):
        psycopg2.connect(rs.role_url(stack["postgres"], role, own)).close()
        with pytest.raises(psycopg2.OperationalError, match="permission denied"):
            psycopg2.connect(rs.role_url(stack["postgres"], role, foreign))


def test_the_pipeline_login_is_not_an_mlflow_admin(stack):
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_USERNAME", rs.MLFLOW_USER)
        env.setenv("MLFLOW_TRACKING_PASSWORD", rs.MLFLOW_PASSWORD)
        admin = get_app_client("basic-auth", tracking_uri=stack["mlflow"].url)
        assert admin.get_user(rs.PIPELINE_USER).is_admin is False
        env.setenv("MLFLOW_TRACKING_USERNAME", rs.PIPELINE_USER)
        env.setenv("MLFLOW_TRACKING_PASSWORD", rs.PIPELINE_PASSWORD)
        pipeline = get_app_client("basic-auth", tracking_uri=stack["mlflow"].url)
        with pytest.raises(MlflowException, match="(?i)permission"):
            pipeline.create_user("intruder", "intruder-password")


def test_pipeline_completes_as_a_flow_run_stored_in_postgres(stack, pipeline_run):
    rows = _sql(
        stack,
        "prefect",
        "SELECT f.name, r.state_type FROM flow_run r JOIN flow f ON f.id = r.flow_id",
    )
    states = {}
    for name, state in rows:
        states.setdefault(name, set()).add(state)
    for flow in ("pipeline", "prepare", "train", "evaluate", "promote"):
        assert states.get(flow) == {"COMPLETED"}, f"flow {flow}: {states.get(flow)}"


def test_champion_is_registered_in_postgres_with_artifacts_in_s3(stack, pipeline_run):
    aliases = _sql(stack, "mlflow", "SELECT name, alias, version FROM registered_model_aliases")
    assert ("regionops", "champion") in {(name, alias) for name, alias, _ in aliases}, aliases
    keys = _keys(stack, rs.MLFLOW_BUCKET)
    assert any(key.endswith("MLmodel") for key in keys), "no logged model in the S3 artifact bucket"
    assert any(key.endswith(".safetensors") for key in keys), "no retriever weights in S3"


def test_champion_loads_and_answers_from_the_http_tracking_server(stack, pipeline_run, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    for key, value in _production_env(stack, Path(pipeline_run["env"]["REGIONOPS_HOME"])).items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(tracking_uri=stack["mlflow"].url, registry_uri=stack["mlflow"].url)
    champion = client.get_model_version_by_alias("regionops", "champion")
    assert "champion" in champion.aliases
    mlflow.set_tracking_uri(stack["mlflow"].url)
    mlflow.set_registry_uri(stack["mlflow"].url)
    model = mlflow.pyfunc.load_model("models:/regionops@champion")
    answer = model.predict([{"question": "What is the total revenue in the table?"}])
    row = answer[0] if isinstance(answer, list) else answer.iloc[0].to_dict()
    assert isinstance(row["page_id"], str) and "#" in row["page_id"]
    box = list(row["boxes"][0])
    assert len(box) == 4 and 0.0 <= box[0] < box[2] <= 1.0


def test_dvc_push_and_pull_round_trip_through_s3(stack, pipeline_run, monkeypatch):
    from components import versioning

    project = pipeline_run["project"]
    keys = _keys(stack, rs.DVC_BUCKET)
    assert keys and all(key.startswith("store/") for key in keys), keys[:5]
    before = _digests(project / "data" / "corpus")
    assert before
    shutil.rmtree(project / "data" / "corpus")
    shutil.rmtree(project / ".dvc" / "cache")
    for key, value in _production_env(stack, Path(pipeline_run["env"]["REGIONOPS_HOME"])).items():
        monkeypatch.setenv(key, value)
    # The pipeline pushes what prepare produced (its flow's last step): the corpus and its validation.
    versioning.pull(project, ("generate", "validate"))
    assert _digests(project / "data" / "corpus") == before


def test_racing_rollbacks_from_two_machines_serialise_on_postgres(stack, tmp_path, monkeypatch):
    """Two processes, each with its own REGIONOPS_HOME (two pods), roll the champion of one MLflow
    server back and forth: the advisory lock in PostgreSQL keeps one consecutive audit chain."""
    import uuid

    from mlflow import MlflowClient

    from components.registry.audit import read_events
    from components.registry.client import advisory_key
    from tests.support.registry_race import assert_one_chain, make_versions, race_rollbacks

    env = _production_env(stack, tmp_path / "setup")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(tracking_uri=stack["mlflow"].url, registry_uri=stack["mlflow"].url)
    name = f"regionops-pgrace-{uuid.uuid4().hex[:6]}"
    versions = make_versions(client, name, 3)
    envs = [_production_env(stack, tmp_path / f"pod-{i}") for i in range(2)]
    outcomes = race_rollbacks(name, envs, versions)
    events = read_events(client, name)
    assert_one_chain(events, outcomes, versions[-1])
    assert (
        str(client.get_model_version_by_alias(name, "champion").version) == events[-1]["to_version"]
    )
    # the lock is an advisory lock in the lock database, seen from any other session while held
    from components.registry.client import lock_location, registry_lock
    from components.settings import get_settings

    assert lock_location(get_settings(), name) == ("postgres", env["REGIONOPS_REGISTRY_LOCK_URL"])
    key = advisory_key(name) & 0xFFFFFFFFFFFFFFFF
    held = (
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = "
        f"'advisory' AND l.granted AND d.datname = 'regionops_locks' AND l.classid = {key >> 32} "
        f"AND l.objid = {key & 0xFFFFFFFF}"
    )
    with registry_lock(name):
        assert _sql(stack, "postgres", held) == [(1,)]
    assert _sql(stack, "postgres", held) == [(0,)]
