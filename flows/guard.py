"""One training flow at a time: ``pipeline`` and ``retrain`` hold the same Prefect global concurrency limit.

The limit (one slot, named by ``orchestrate.concurrency_limit``) is created when missing, so
the guard works on a fresh server and on Prefect's temporary one alike; ``strict=True``
makes a missing limit an error instead of Prefect's silent no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency


def ensure_limit(name: str, slots: int = 1) -> None:
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, slots)


@contextmanager
def training_slot(name: str, timeout_seconds: float | None = 6 * 3600) -> Iterator[None]:
    """Wait for the single training slot (a queued retrain waits for a running pipeline), then hold it."""
    ensure_limit(name)
    get_run_logger().info("waiting for concurrency slot %r", name)
    with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, strict=True):
        get_run_logger().info("holding concurrency slot %r", name)
        yield
