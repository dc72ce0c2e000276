"""The promotion gate: absolute floors plus non-regression against the current champion.

Every rule's outcome is kept (value, bound, pass/fail, reason) so that the decision can be
recorded as tags, a ``gate.json`` artifact and a markdown table. A metric that is missing
from the candidate fails its rule: a gate must never pass by omission.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from components.config import GateParams

GATED_SYSTEM = "regionops"  # the system in metrics.json whose numbers are gated


@dataclass(frozen=True)
class RuleOutcome:
    metric: str
    kind: Literal["floor", "non_regression"]
    value: float | None  # candidate's value (None: missing)
    bound: float | None  # the minimum it had to reach (None: rule could not be evaluated)
    passed: bool
    reason: str


@dataclass
class GateDecision:
    passed: bool
    rules: list[RuleOutcome] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # why it failed, plus notes (e.g. no champion)
    evaluation_run_id: str | None = (
        None  # the MLflow evaluation run the candidate's numbers came from
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rules": [asdict(r) for r in self.rules],
            "reasons": list(self.reasons),
            "evaluation_run_id": self.evaluation_run_id,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_markdown(self) -> str:
        lines = [
            f"**Gate: {'PASSED' if self.passed else 'FAILED'}**",
            "",
            "| rule | metric | value | bound | passed | reason |",
            "|---|---|---|---|---|---|",
        ]
        if self.evaluation_run_id:
            lines[1:1] = ["", f"Candidate metrics from evaluation run `{self.evaluation_run_id}`."]
        for r in self.rules:
            lines.append(
                f"| {r.kind} | {r.metric} | {_fmt(r.value)} | {_fmt(r.bound)} | {'yes' if r.passed else 'no'} | {r.reason} |"
            )
        if self.reasons:
            lines += ["", *[f"- {reason}" for reason in self.reasons]]
        return "\n".join(lines)

    def tags(self, prefix: str = "gate") -> dict[str, str]:
        """Flat string tags for an MLflow run / model version (one per rule)."""
        out = {
            f"{prefix}.passed": str(self.passed).lower(),
            f"{prefix}.evaluation_run_id": self.evaluation_run_id or "none",
        }
        for r in self.rules:
            out[f"{prefix}.{r.kind}.{r.metric}"] = (
                f"{'pass' if r.passed else 'FAIL'} value={_fmt(r.value)} bound={_fmt(r.bound)}"
            )
        # MLflow tag values are capped (5000 chars for model versions); keep the reasons short.
        out[f"{prefix}.reasons"] = "; ".join(self.reasons)[:4000]
        return out


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def system_metrics(metrics: dict | None, system: str = GATED_SYSTEM) -> dict[str, Any]:
    """The gated system's metrics from a metrics.json-shaped dict ({} when absent)."""
    if not metrics:
        return {}
    return dict((metrics.get("systems") or {}).get(system) or {})


def _number(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(float(value)):
        return None
    return float(value)


def decide(
    candidate_metrics: dict, champion_metrics: dict | None, gate_params: GateParams
) -> GateDecision:
    """Apply the floors, then non-regression against the champion (if there is one).

    ``candidate_metrics``: as ``evaluation_run.candidate_evaluation`` read them back from the
    candidate's evaluation run; its ``mlflow_run_id`` is recorded in the decision.
    """
    cand = system_metrics(candidate_metrics)
    rules: list[RuleOutcome] = []
    notes: list[str] = []

    for metric, floor in sorted(gate_params.floors.items()):
        value = _number(cand, metric)
        if value is None:
            rules.append(
                RuleOutcome(
                    metric,
                    "floor",
                    None,
                    floor,
                    False,
                    f"candidate has no numeric {GATED_SYSTEM}.{metric}",
                )
            )
        else:
            ok = value >= floor
            rules.append(
                RuleOutcome(
                    metric,
                    "floor",
                    value,
                    floor,
                    ok,
                    f"{value:.4f} {'>=' if ok else '<'} floor {floor:.4f}",
                )
            )

    champ = system_metrics(champion_metrics)
    if champion_metrics is None:
        notes.append("non-regression skipped: there is no champion yet")
    else:
        for metric, tolerance in sorted(gate_params.tolerance.items()):
            value = _number(cand, metric)
            reference = _number(champ, metric)
            if value is None:
                rules.append(
                    RuleOutcome(
                        metric,
                        "non_regression",
                        None,
                        None,
                        False,
                        f"candidate has no numeric {GATED_SYSTEM}.{metric}",
                    )
                )
            elif reference is None:
                # The champion predates this metric: nothing to regress against; say so, do not fail.
                rules.append(
                    RuleOutcome(
                        metric,
                        "non_regression",
                        value,
                        None,
                        True,
                        f"champion has no {metric}; rule not applicable",
                    )
                )
            else:
                bound = reference - tolerance
                ok = value >= bound
                rules.append(
                    RuleOutcome(
                        metric,
                        "non_regression",
                        value,
                        bound,
                        ok,
                        f"{value:.4f} vs champion {reference:.4f} (tolerance {tolerance:.4f})"
                        + ("" if ok else f": dropped by {reference - value:.4f}"),
                    )
                )

    failed = [f"{r.kind} {r.metric}: {r.reason}" for r in rules if not r.passed]
    if not gate_params.floors and not gate_params.tolerance:
        notes.append("no gate rules configured")
    run_id = (candidate_metrics or {}).get("mlflow_run_id")
    return GateDecision(
        passed=not failed,
        rules=rules,
        reasons=failed + notes,
        evaluation_run_id=str(run_id) if run_id else None,
    )


@dataclass
class Rescore:
    """The champion's metrics on the candidate's evaluation set, or why there are none
    (``rescore.rescore_champion`` measures it; the gate only reads it)."""

    version: str | None
    metrics: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "metrics": self.metrics, "notes": list(self.notes)}


@dataclass(frozen=True)
class ChampionReference:
    """The champion a candidate is judged against (``store.champion_reference`` reads it)."""

    version: str
    recorded: dict  # its metrics as recorded at its registration (``metric.*`` version tags)
    rescored: dict | None = None  # its metrics re-scored now on the candidate's evaluation set
    notes: tuple[
        str, ...
    ] = ()  # what the re-score said (re-built index, params no longer load, ...)


def judge(
    candidate_metrics: dict, champion: ChampionReference | None, gate_params: GateParams
) -> GateDecision:
    """The one gate path (``regionops gate``, ``register``, the promote step and ``rescore``).

    Without a champion only the floors apply. With one, its re-scored metrics are the reference
    when there are any, else the metrics recorded at its registration; the decision's reasons
    say which, followed by the re-score's own notes.
    """
    if champion is None:
        return decide(candidate_metrics, None, gate_params)
    if champion.rescored is not None:
        decision = decide(candidate_metrics, champion.rescored, gate_params)
        basis = f"champion v{champion.version} re-scored on the same evaluation set"
    else:
        decision = decide(candidate_metrics, champion.recorded, gate_params)
        basis = f"champion v{champion.version} compared by the metrics recorded at its registration"
    decision.reasons.extend([basis, *champion.notes])
    return decision
