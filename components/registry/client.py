"""The MLflow client for the project's tracking/registry URI, and the registry lock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow import MlflowClient

from components.settings import Settings, get_settings
from components.tracking import ensure_experiment  # noqa: F401  (re-exported for registry callers)

log = logging.getLogger(__name__)
POSTGRES_SCHEMES = ("postgresql", "postgres")


def registry_client() -> MlflowClient:
    """An MlflowClient on the project's tracking URI (sqlite in the embedded default)."""
    uri = get_settings().tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _is_postgres(uri: str | None) -> bool:
    return bool(uri) and urlparse(uri).scheme.split("+")[0] in POSTGRES_SCHEMES


def _libpq_url(uri: str) -> str:
    """SQLAlchemy's ``postgresql+psycopg2://`` spelling as libpq wants it (``postgresql://``)."""
    scheme, rest = uri.split("://", 1)
    return f"{scheme.split('+')[0]}://{rest}"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (Python's hash() differs per process)."""
    return int.from_bytes(
        hashlib.sha256(f"regionops.registry:{name}".encode()).digest()[:8], "big", signed=True
    )


@contextlib.contextmanager
def _postgres_lock(url: str, name: str) -> Iterator[None]:
    """A session-level advisory lock: every client of this database waits on the same key, on any
    machine, and a holder that dies releases it with its connection."""
    try:
        import psycopg2
    except ImportError as exc:  # the [production] extra
        raise RuntimeError(
            "the registry lock on PostgreSQL needs psycopg2: pip install 'regionops[production]'"
        ) from exc
    connection = psycopg2.connect(_libpq_url(url), application_name="regionops-registry-lock")
    connection.autocommit = True  # the lock is the session's, not a transaction's
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (advisory_key(name),))
        yield
    finally:
        connection.close()  # ends the session, which releases its advisory locks


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def lock_location(settings: Settings, name: str) -> tuple[str, str]:
    """Where the lock of model ``name`` lives: ("postgres", url) or ("file", path).

    It lives with the registry, so every process that writes the same registry waits on it:
    * a PostgreSQL tracking URI: an advisory lock in that database;
    * ``REGIONOPS_REGISTRY_LOCK_URL`` (the production profile, whose tracking URI is the MLflow
      server's HTTP address): an advisory lock in that PostgreSQL database;
    * an sqlite tracking URI: a file lock next to the database file, whatever $REGIONOPS_HOME is;
    * anything else (an HTTP server in the embedded profile): a file lock under $REGIONOPS_HOME,
      which serialises only the processes sharing that home (a warning says so).
    """
    uri = settings.tracking_uri
    lock_file = f"{name.replace('/', '_')}.lock"
    if _is_postgres(uri):
        return "postgres", uri
    if settings.registry_lock_url:
        return "postgres", settings.registry_lock_url
    if uri.startswith("sqlite:///"):
        database = Path(uri[len("sqlite:///") :])
        return "file", str(database.parent / f"{database.name}.locks" / lock_file)
    return "file", str(settings.home / "locks" / lock_file)


@contextlib.contextmanager
def registry_lock(name: str) -> Iterator[None]:
    """Serialise every alias move and audit event of one registered model.

    MLflow has no compare-and-set on aliases or tags, so two promotions or rollbacks racing
    could each read the same champion and the same last audit number. Holding this lock
    around read-decide-register-move makes the sequence atomic for every writer of the registry.
    """
    settings = get_settings()
    kind, where = lock_location(settings, name)
    if kind == "postgres":
        with _postgres_lock(where, name):
            yield
        return
    if not settings.uses_embedded_mlflow and not _is_postgres(settings.tracking_uri):
        log.warning(
            "registry lock for %s is a file under %s: set REGIONOPS_REGISTRY_LOCK_URL to serialise "
            "writers on other machines",
            name,
            settings.home,
        )
    with _file_lock(Path(where)):
        yield


promotion_lock = registry_lock  # the earlier name, for callers on other branches
