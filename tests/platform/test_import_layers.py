"""The import layers of pyproject.toml's [tool.importlinter] hold (issue 30): `lint-imports` passes on
the repository, and the same contracts catch an upward import planted in a copy of the code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    # --no-cache: no .import_linter_cache folder in the checkout; cwd=root: its pyproject.toml and code
    # PYTHONPATH=root: that copy's packages, not the editable install's
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


def test_import_layers_and_no_cycles_hold():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "BROKEN" not in result.stdout


def test_an_upward_import_breaks_the_layer_contract(tmp_path):
    for name in ("components", "flows"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    text = tmp_path / "components" / "text.py"  # a bottom layer ...
    text.write_text(
        text.read_text() + "\nfrom components.rag import engine  # noqa: E402,F401\n"
    )  # ... importing up
    result = _lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "components.text -> components.rag.engine" in result.stdout
