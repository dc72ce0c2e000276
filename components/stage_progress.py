"""The progress line a training stage logs, and its parser: one owner for the format.

``progress <stage> step=<n>/<max> <name>=<value> ...`` is written by the Lightning callback
``components.training.progress.StepProgress`` and read back by whoever runs the stage as a
child process (the Prefect flows forward it as a progress artifact). No Lightning import here:
the reader side must stay light.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_LINE = re.compile(
    r"progress (?P<stage>[\w.-]+) step=(?P<step>\d+)/(?P<max>\d+)(?P<rest>(?: [\w/.-]+=\S+)*)\s*$"
)
_PAIR = re.compile(r"([\w/.-]+)=(\S+)")


@dataclass(frozen=True)
class StepProgressLine:
    stage: str
    step: int
    max_steps: int
    values: dict[str, float] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return 100.0 * min(self.step, self.max_steps) / self.max_steps if self.max_steps else 0.0


def format_progress(stage: str, step: int, max_steps: int, values: dict[str, float]) -> str:
    pairs = " ".join(
        f"{name}={value:.6g}" for name, value in sorted(values.items()) if math.isfinite(value)
    )
    return f"progress {stage} step={step}/{max_steps}" + (f" {pairs}" if pairs else "")


def parse_progress(line: str) -> StepProgressLine | None:
    """The progress record in a log line (anything may precede it: time, level, logger name), or None."""
    match = _LINE.search(line)
    if match is None:
        return None
    values = {}
    for name, raw in _PAIR.findall(match["rest"]):
        try:
            values[name] = float(raw)
        except ValueError:
            continue  # a value that is not a number is not a metric: keep the rest of the line
    return StepProgressLine(match["stage"], int(match["step"]), int(match["max"]), values)
