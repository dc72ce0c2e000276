"""One formatter and one linter for the whole repository, enforced by `make test` (issue 30)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUFF), *args], cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_check_is_clean():
    proc = _ruff("check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_ruff_format_leaves_every_file_as_it_is():
    proc = _ruff("format", "--check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_format_check_fails_on_an_unformatted_file(tmp_path):
    """The check above can fail: a badly formatted file is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("x = {  'a':1 }\n")
    proc = subprocess.run(
        [str(RUFF), "format", "--check", "--no-cache", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and "bad.py" in proc.stdout
