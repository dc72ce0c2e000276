"""The ``regionops`` command line: one command per pipeline stage, plus the tools users need.

DVC stages, Prefect tasks and people all call these same commands. Heavy imports stay inside
the commands so that ``--help`` answers at once. One module per command family; what they all
share (results on stdout, logs on stderr, missing files named) is in ``common``.
"""

from __future__ import annotations

from components.cli import bench, data, deploy, evaluate, index, registry, train  # noqa: F401  (registers commands)
from components.cli.common import SUB_APPS, app, results_on_stdout

# `regionops --help` lists the commands in pipeline order, whichever module defines them.
COMMAND_ORDER = (
    "generate",
    "import",
    "validate",
    "show",
    "train",
    "evaluate",
    "tune-regions",
    "train-reader",
    "search",
    "gate",
    "register",
    "rollback",
    "reproduce",
    "history",
    "compare",
    "bench",
    "deploy",
)


def _name(command) -> str:
    return command.name or command.callback.__name__.replace("_", "-")


app.registered_commands.sort(key=lambda c: COMMAND_ORDER.index(_name(c)))

# Every command: results on stdout, everything else on stderr, missing files named (see common).
for _typer_app in (app, *SUB_APPS):
    for _command in _typer_app.registered_commands:
        _command.callback = results_on_stdout(_command.callback)


def main() -> None:  # pragma: no cover - console entry
    app()


__all__ = ["app", "main"]
