"""The pull step of ``prefect.yaml``'s deployments: enter the project folder the worker names.

Prefect runs pull steps in each flow run's process before it loads the flow. The folder is
read from ``$REGIONOPS_PROJECT_DIR`` there, at run time, so a deployment records no path of the
machine that deployed it. (``set_working_directory`` with a ``{{ $REGIONOPS_PROJECT_DIR }}``
placeholder would not do: ``prefect deploy`` fills such a placeholder from the deploying
shell when the variable is set there, and stores that path.)
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR_ENV = "REGIONOPS_PROJECT_DIR"
PROJECT_FILES = ("dvc.yaml", "params.yaml")


def enter_project_dir() -> dict[str, str]:
    """``chdir`` into ``$REGIONOPS_PROJECT_DIR``; the flows' ``project_dir="."`` then means it."""
    named = os.environ.get(PROJECT_DIR_ENV)
    if not named:
        raise RuntimeError(
            f"{PROJECT_DIR_ENV} is not set on this worker: set it to the regionops project "
            "folder the flow runs work in (the image's /app, or a checkout with a DVC remote)"
        )
    folder = Path(named).expanduser().resolve()
    missing = [name for name in PROJECT_FILES if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(
            f"{PROJECT_DIR_ENV}={named} is not a regionops project: no {', '.join(missing)}"
        )
    os.chdir(folder)
    return {"directory": str(folder)}
