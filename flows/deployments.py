"""Register the regionops deployments on the Prefect server at PREFECT_API_URL (``make deploy``).

* ``pipeline/pipeline``: the full pipeline, run on demand on the process work pool;
* ``retrain/retrain``: retrain, on the cron schedule ``orchestrate.retrain_cron`` and on each
  ``regionops.landing.files-arrived`` event for this project (a deployment trigger);
* ``landing-watch/landing-watch``: the fallback poll, every ``orchestrate.watch_interval_seconds``
  (hourly): starts ``retrain`` when files sit in the landing folder and no event came;
* with ``REGIONOPS_NOTIFY_WEBHOOK_URL`` set, two automations POST failed runs and kept
  champions to that webhook (``flows/events.py``).

All run on one work pool (a process pool, created if missing); the code is the installed
``flows`` package (module-path entrypoints), so any worker with regionops installed can
run them. The global concurrency limit that serialises pipeline and retrain is created here.

This is the one-machine shortcut: it records ``project_dir`` as this checkout's absolute path.
A team's shared server gets ``prefect.yaml`` instead (``prefect deploy --all``), whose flow
runs enter the folder their worker names in ``REGIONOPS_PROJECT_DIR`` (``flows/deploy_steps.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType
from prefect.exceptions import ObjectNotFound

from components.config import load_params
from flows import SETTINGS
from flows.events import ensure_notifications, retrain_trigger
from flows.guard import ensure_limit
from flows.pipeline import pipeline
from flows.retrain import retrain
from flows.watch import watch_landing


def ensure_work_pool(name: str, pool_type: str = "process") -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type=pool_type))


def deploy_all(
    project_dir: Path,
    work_pool: str | None = None,
    params_file: str = "params.yaml",
    cron: str | None = None,
    watch_interval: int | None = None,
) -> dict[str, str]:
    """Create or update the three deployments; returns {deployment name: id}."""
    project_dir = Path(project_dir).resolve()
    params = load_params(project_dir / params_file)
    orchestrate = params.orchestrate
    pool = work_pool or orchestrate.work_pool
    ensure_work_pool(pool)
    ensure_limit(orchestrate.concurrency_limit)
    common = {
        "work_pool_name": pool,
        "entrypoint_type": EntrypointType.MODULE_PATH,
        "build": False,
        "push": False,
        "print_next_steps": False,
        "tags": ["regionops"],
    }
    project = {"project_dir": str(project_dir), "params_file": params_file}
    ids = {
        "pipeline/pipeline": pipeline.deploy(
            name="pipeline",
            parameters=project,
            description="prepare -> train -> evaluate -> promote",
            **common,
        ),
        "retrain/retrain": retrain.deploy(
            name="retrain",
            parameters=project,
            cron=cron or orchestrate.retrain_cron,
            triggers=[retrain_trigger(project_dir, params_file)],
            description="take in the landing folder, rerun, gate, promote or keep the champion",
            **common,
        ),
        "landing-watch/landing-watch": watch_landing.deploy(
            name="landing-watch",
            parameters=project,
            interval=watch_interval or orchestrate.watch_interval_seconds,
            # one look at a time; runs that pile up while workers are busy are cancelled, not queued
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
            description="fallback poll: start retrain when files sit in the landing folder",
            **common,
        ),
    }
    ids.update(
        {f"automation: {name}": name for name in ensure_notifications(SETTINGS.notify_webhook_url)}
    )
    return {name: str(dep_id) for name, dep_id in ids.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="Register the regionops Prefect deployments.")
    parser.add_argument("--project-dir", default=".")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--work-pool", default=None)
    parser.add_argument("--cron", default=None)
    parser.add_argument("--watch-interval", type=int, default=None)
    args = parser.parse_args()
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():  # deployments on the temporary server would vanish with it
        raise SystemExit(
            "PREFECT_API_URL is not set: start `prefect server start` and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api first"
        )
    ids = deploy_all(
        Path(args.project_dir), args.work_pool, args.params, args.cron, args.watch_interval
    )
    for name, dep_id in ids.items():
        print(
            f"created {name}" if name.startswith("automation: ") else f"deployed {name} ({dep_id})"
        )
    if not SETTINGS.notify_webhook_url:
        print(
            "notifications off: set REGIONOPS_NOTIFY_WEBHOOK_URL and rerun deploy to be told of failed "
            "runs and kept champions"
        )


if __name__ == "__main__":
    main()
