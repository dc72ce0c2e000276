"""Two MLflow runs side by side: which params differ, and every metric of both with its delta.

``regionops compare RUN_A RUN_B`` prints this; reviewers use it to see what a change did
without clicking through the UI. Deltas are B - A.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


class RunNotFound(LookupError):
    """A run id that the tracking store does not know."""


@dataclass(frozen=True)
class ParamRow:
    key: str
    a: str | None  # None: the run has no such param
    b: str | None


@dataclass(frozen=True)
class MetricRow:
    key: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        if self.a is None or self.b is None or math.isnan(self.a) or math.isnan(self.b):
            return None
        return self.b - self.a


@dataclass
class RunDiff:
    run_a: str
    run_b: str
    params: list[ParamRow]  # only the params whose values differ (or exist in one run only)
    n_same_params: int
    metrics: list[MetricRow]  # every metric either run has

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "params_changed": [asdict(p) for p in self.params],
            "n_same_params": self.n_same_params,
            "metrics": [{**asdict(m), "delta": m.delta} for m in self.metrics],
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Run diff: A = `{self.run_a}`, B = `{self.run_b}`",
            "",
            f"## Params ({len(self.params)} changed, {self.n_same_params} the same)",
            "",
        ]
        if self.params:
            lines += ["| param | A | B |", "|---|---|---|"]
            lines += [f"| {p.key} | {_cell(p.a)} | {_cell(p.b)} |" for p in self.params]
        else:
            lines.append("No param differs.")
        lines += [
            "",
            "## Metrics (delta = B - A)",
            "",
            "| metric | A | B | delta |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {m.key} | {_num(m.a)} | {_num(m.b)} | {_num(m.delta, signed=True)} |"
            for m in self.metrics
        ]
        return "\n".join(lines) + "\n"


def _cell(value: str | None) -> str:
    return "(absent)" if value is None else value


def _num(value: float | None, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _run(client: MlflowClient, run_id: str):
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        raise RunNotFound(
            f"run {run_id!r} not found in the tracking store: {exc.message}"
        ) from None


def diff_runs(client: MlflowClient, run_a: str, run_b: str) -> RunDiff:
    """Params that differ and all metrics (latest value of each), with B - A deltas."""
    a, b = _run(client, run_a), _run(client, run_b)
    pa, pb = a.data.params, b.data.params
    changed, same = [], 0
    for key in sorted(set(pa) | set(pb)):
        if pa.get(key) == pb.get(key):
            same += 1
        else:
            changed.append(ParamRow(key, pa.get(key), pb.get(key)))
    ma, mb = a.data.metrics, b.data.metrics
    metrics = [MetricRow(key, ma.get(key), mb.get(key)) for key in sorted(set(ma) | set(mb))]
    return RunDiff(run_a, run_b, changed, same, metrics)
