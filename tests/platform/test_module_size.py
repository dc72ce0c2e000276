"""No module of the package over 400 lines without a one-sentence reason in its docstring (issue 30).

A long module is allowed when its docstring says why it is one module ("Over 400 lines on
purpose: ..."); otherwise it is a sign that it holds more than one job and should be split.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIMIT = 400
REASON = "Over 400 lines on purpose:"


def long_modules_without_reason(root: Path, limit: int = LIMIT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text("utf-8")
        if source.count("\n") <= limit:
            continue
        docstring = ast.get_docstring(ast.parse(source)) or ""
        if REASON not in " ".join(docstring.split()):
            found.append(f"{path.relative_to(root.parent)} ({source.count(chr(10))} lines)")
    return found


def test_long_modules_say_why_they_are_one_module():
    missing = [
        m
        for package in ("components", "flows")
        for m in long_modules_without_reason(REPO / package)
    ]
    assert not missing, "split these modules or say why in their docstring: " + ", ".join(missing)


def test_the_check_finds_a_long_module_without_a_reason(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "long.py").write_text('"""One job."""\n' + "x = 1\n" * (LIMIT + 1))
    (package / "reasoned.py").write_text(
        f'"""One job.\n\n{REASON} it is one schema.\n"""\n' + "x = 1\n" * (LIMIT + 1)
    )
    (package / "short.py").write_text("x = 1\n")
    assert long_modules_without_reason(package) == [f"pkg/long.py ({LIMIT + 2} lines)"]
