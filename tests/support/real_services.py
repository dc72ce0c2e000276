"""Real servers on 127.0.0.1 for the production-profile tests: PostgreSQL, S3 (moto), MLflow, Prefect.

Each server is started by ``tests.support.servers.start`` (its own process group, a free port, a
log file) and ended by ``Server.stop`` (by its PID's process group).
``ServiceUnavailable`` means a prerequisite is not installed (``infra/ci/install_services.sh``);
a server that starts but never answers raises ``RuntimeError`` with its log's tail.
"""

from __future__ import annotations

import glob
import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.servers import Server, free_port, http_ok, start, wait_until

BIN = Path(sys.executable).parent
PG_USER = "regionops"
PG_PASSWORD = "regionops-ci"
S3_KEY, S3_SECRET = "regionops-ci", "regionops-ci-secret"
MLFLOW_USER, MLFLOW_PASSWORD = "regionops", "regionops-ci-login"  # the MLflow server's admin
# The login roles and users infra/ makes for each client (postgres-roles.sh, mlflow_pipeline_user.py).
DB_PASSWORDS = {
    "MLFLOW_DB_PASSWORD": "regionops-ci-mlflow-db",
    "PREFECT_DB_PASSWORD": "regionops-ci-prefect-db",
    "REGIONOPS_LOCK_DB_PASSWORD": "regionops-ci-lock-db",
}
PIPELINE_USER, PIPELINE_PASSWORD = "regionops-pipeline", "regionops-ci-pipeline"
PREFECT_AUTH = (
    "regionops:regionops-ci-prefect"  # PREFECT_SERVER_API_AUTH_STRING / PREFECT_API_AUTH_STRING
)
MLFLOW_BUCKET, DVC_BUCKET = "regionops-mlflow", "regionops-dvc"
INFRA = Path(__file__).resolve().parents[2] / "infra"


class ServiceUnavailable(RuntimeError):
    """A server's program is not installed here."""


def _popen(
    name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None, url: str = "", **kwargs
) -> Server:
    # A server must not talk to another server named in this process's environment.
    base = {
        k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")
    }
    return start(name, cmd, log, {**base, **(env or {})}, url, **kwargs)


def _pg_bin(program: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    if not found:
        raise ServiceUnavailable("PostgreSQL is not installed: run infra/ci/install_services.sh")
    return found[-1]


def start_postgres() -> Server:
    """A throw-away cluster on 127.0.0.1 with password auth, the databases of infra/postgres-init.sql."""
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    # Its own folder under /tmp: pytest's temp dirs are private to root, and the server runs
    # as the postgres user when we are root. The caller removes it (Server.extra["root"]).
    root = Path(tempfile.mkdtemp(prefix="regionops-pg-"))
    data, sockets, pwfile = root / "data", root / "sockets", root / "pwfile"
    sockets.mkdir(exist_ok=True)
    pwfile.write_text(PG_PASSWORD)
    run_as: dict = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as Debian's postgres user
        account = pwd.getpwnam("postgres")
        for path in (root, sockets, pwfile):
            os.chown(path, account.pw_uid, account.pw_gid)
        run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    log = root / "postgres.log"
    subprocess.run(
        [
            initdb,
            "-D",
            str(data),
            "-U",
            PG_USER,
            "--pwfile",
            str(pwfile),
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-instructions",
        ],
        check=True,
        capture_output=True,
        **run_as,
    )
    port = free_port()
    server = _popen(
        "postgres",
        [
            postgres,
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        log,
        url=f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}",
        **run_as,
    )
    server.extra.update(port=port, root=root)
    isready = _pg_bin("pg_isready")

    def ready() -> bool:
        return (
            subprocess.run(
                [isready, "-h", "127.0.0.1", "-p", str(port)], capture_output=True, check=False
            ).returncode
            == 0
        )

    wait_until(server, ready, 60)
    try:
        _create_databases(server.url)
        _create_roles(port)
    except Exception:
        server.stop()
        raise
    return server


def _create_databases(url: str) -> None:
    """compose's POSTGRES_DB, then infra/postgres-init.sql as the image's entrypoint would run it."""
    import psycopg2

    init = "\n".join(
        line
        for line in (INFRA / "postgres-init.sql").read_text().splitlines()
        if not line.strip().startswith("--")
    )
    connection = psycopg2.connect(f"{url}/postgres")
    connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE mlflow")
            for statement in filter(str.strip, init.split(";")):
                cursor.execute(statement)
    finally:
        connection.close()


def _create_roles(port: int) -> None:
    """infra/postgres-roles.sh, as the image's entrypoint runs it (here over TCP as the superuser)."""
    env = {
        **os.environ,
        **DB_PASSWORDS,
        "POSTGRES_USER": PG_USER,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGPASSWORD": PG_PASSWORD,
        "PATH": f"{Path(_pg_bin('psql')).parent}:{os.environ['PATH']}",
    }
    subprocess.run(
        ["sh", str(INFRA / "postgres-roles.sh")], env=env, check=True, capture_output=True
    )


def role_url(postgres: Server, role: str, database: str) -> str:
    """A client's own login (postgres-roles.sh), never the superuser's."""
    password = {
        "mlflow": DB_PASSWORDS["MLFLOW_DB_PASSWORD"],
        "prefect": DB_PASSWORDS["PREFECT_DB_PASSWORD"],
        "regionops_lock": DB_PASSWORDS["REGIONOPS_LOCK_DB_PASSWORD"],
    }[role]
    return f"postgresql://{role}:{password}@127.0.0.1:{postgres.extra['port']}/{database}"


def start_s3(root: Path) -> Server:
    """moto's S3 server, with the buckets compose's minio-setup job creates.

    moto does not enforce IAM policies, so the per-bucket MinIO users are checked statically
    (tests/platform/test_infra_security.py), not here."""
    if not (BIN / "moto_server").exists():
        raise ServiceUnavailable("moto_server is missing: pip install -e '.[dev]'")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "moto.log"
    server = _popen(
        "s3",
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        log,
        url=f"http://127.0.0.1:{port}",
    )
    wait_until(server, lambda: http_ok(f"{server.url}/moto-api/"), 60)
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    try:
        for bucket in (MLFLOW_BUCKET, DVC_BUCKET):
            s3.create_bucket(Bucket=bucket)
    except Exception:
        server.stop()
        raise
    return server


def s3_env() -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def start_mlflow(root: Path, postgres: Server, s3: Server) -> Server:
    """``mlflow server`` as in infra/compose.yaml: PostgreSQL backend, S3 artifacts, basic auth."""
    root.mkdir(parents=True, exist_ok=True)
    auth_ini = root / "basic_auth.ini"
    # auth_cache_ttl_seconds as in compose: without it every request re-runs the PBKDF2 check.
    auth_ini.write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {role_url(postgres, 'mlflow', 'mlflow_auth')}\n"
        "auth_cache_ttl_seconds = 60\n"
    )
    port = free_port()
    log = root / "mlflow.log"
    env = {
        **s3_env(),
        "MLFLOW_S3_ENDPOINT_URL": s3.url,
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": MLFLOW_USER,
        "MLFLOW_AUTH_ADMIN_PASSWORD": MLFLOW_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "regionops-ci-flask-secret",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        # The job runner (GenAI scorers) is unused here and doubles start-up time.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    cmd = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        role_url(postgres, "mlflow", "mlflow"),
        "--artifacts-destination",
        f"s3://{MLFLOW_BUCKET}/artifacts",
        "--app-name",
        "basic-auth",
        "--workers",
        "1",
    ]
    server = _popen("mlflow", cmd, log, env, f"http://127.0.0.1:{port}", cwd=root)
    return wait_until(server, lambda: http_ok(f"{server.url}/health"), 180)


def start_prefect(root: Path, postgres: Server) -> Server:
    """``prefect server start`` with its database on PostgreSQL (PREFECT_API_DATABASE_CONNECTION_URL)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "prefect.log"
    env = {
        "PREFECT_HOME": str(root / "home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": role_url(postgres, "prefect", "prefect").replace(
            "postgresql://", "postgresql+asyncpg://"
        ),
        "PREFECT_SERVER_API_AUTH_STRING": PREFECT_AUTH,  # basic auth, as infra/ runs it
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "DO_NOT_TRACK": "true",
    }
    server = _popen(
        "prefect",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        log,
        env,
        f"http://127.0.0.1:{port}/api",
        cwd=root,
    )
    return wait_until(server, lambda: http_ok(f"{server.url}/health"), 180)


def create_pipeline_user(mlflow: Server) -> None:
    """infra/mlflow_pipeline_user.py with the admin login: the pipeline's own non-admin login."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow.url,
        "MLFLOW_TRACKING_USERNAME": MLFLOW_USER,
        "MLFLOW_TRACKING_PASSWORD": MLFLOW_PASSWORD,
        "PIPELINE_MLFLOW_USERNAME": PIPELINE_USER,
        "PIPELINE_MLFLOW_PASSWORD": PIPELINE_PASSWORD,
    }
    subprocess.run(
        [sys.executable, str(INFRA / "mlflow_pipeline_user.py")],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def stop_all(servers: list[Server]) -> None:
    for server in reversed(servers):
        server.stop()
