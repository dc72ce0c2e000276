"""``regionops deploy``: register the Prefect deployments (Prefect itself lives in flows/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from components.cli.common import (
    DEFAULT_PARAMS,
    ParamsOpt,
    app,
)
from components.cli.common import load as params_from


@app.command()
def deploy(
    project_dir: Annotated[Path, typer.Option(help="project the deployments run in")] = Path("."),
    work_pool: Annotated[
        str | None, typer.Option(help="work pool (default: orchestrate.work_pool)")
    ] = None,
    cron: Annotated[
        str | None, typer.Option(help="retrain schedule (default: orchestrate.retrain_cron)")
    ] = None,
    params_path: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Register the Prefect deployments (pipeline, retrain with its cron, landing watcher) on PREFECT_API_URL."""
    import subprocess
    import sys

    params_from(
        project_dir / params_path, None
    )  # fail on a bad parameter before touching the server
    cmd = [
        sys.executable,
        "-m",
        "flows.deployments",
        "--project-dir",
        str(project_dir.resolve()),
        "--params",
        str(params_path),
    ]
    if work_pool:
        cmd += ["--work-pool", work_pool]
    if cron:
        cmd += ["--cron", cron]
    # Prefect lives in flows/, never in components/: the deployments module does the work.
    raise typer.Exit(subprocess.run(cmd, check=False).returncode)
