"""Packaging: faiss comes from exactly one of the `cpu`/`gpu` extras, optional extras fail with the
install command, and every third-party import the code makes is a declared dependency."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.conftest import REPO


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    import re

    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_faiss_builds_are_alternative_extras_never_both_in_one_install():
    project = _project()
    extras = project["optional-dependencies"]
    assert not _names(project["dependencies"]) & {"faiss-cpu", "faiss-gpu-cu12"}
    assert "faiss-cpu" in _names(extras["cpu"]) and "faiss-gpu-cu12" in _names(extras["gpu"])
    assert not _names(extras["dev"]) & {"faiss-cpu", "faiss-gpu-cu12"}, (
        "dev must not force a faiss build"
    )
    assert "prefect-dask" not in _names(project["dependencies"])
    assert "prefect-dask" in _names(extras["dask"])
    makefile = (REPO / "Makefile").read_text()
    assert "EXTRAS ?= dev,cpu" in makefile and "'.[$(EXTRAS)]'" in makefile


def test_missing_faiss_names_the_extra_to_install():
    code = "import sys; sys.modules['faiss'] = None; import components.index.region_index"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "the `cpu` extra" in proc.stderr and "pip install -e '.[cpu]'" in proc.stderr


def test_modules_the_code_imports_are_declared_dependencies():
    """tqdm and psutil were imported (directly or by MLflow's system metrics) without being declared."""
    core = _names(_project()["dependencies"])
    assert {"tqdm", "psutil", "rich"} <= core
