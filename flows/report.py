"""What a platform team sees of a training run in Prefect: a markdown artifact and a final state.

A failed gate never looks like a plain success: with a champion in place the run ends in a
``Completed`` state named ``KeptChampion`` (the champion still serves); without one it is
``Failed``. Either way the message gives the reasons and the artifact holds the gate table.
"""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State

KEPT_CHAMPION = "KeptChampion"


def gate_table(gate: dict[str, Any]) -> list[str]:
    lines = ["| rule | metric | value | bound | passed |", "|---|---|---|---|---|"]
    for rule in gate.get("rules") or []:
        lines.append(
            f"| {rule['kind']} | {rule['metric']} | {rule.get('value')} | {rule.get('bound')} "
            f"| {rule['passed']} |"
        )
    return lines


def _result(stage: dict) -> str:
    return "ran" if stage["ran"] else "up to date (skipped)"


def summary_markdown(
    title: str,
    stages: list[dict],
    outcome: dict,
    extra: list[str] | None = None,
    links: dict[str, str] | None = None,
    pushed: str | None = None,
) -> str:
    lines = [f"# {title}", ""]
    lines += extra or []
    lines += ["| stage | result |", "|---|---|"]
    lines += [f"| {s['stage']} | {_result(s)} |" for s in stages]
    lines += [
        "",
        f"**Registration:** {outcome.get('status')} (version {outcome.get('version')})",
        "",
    ]
    links = links or {}
    if links:
        named = [
            f"[{'model version ' + str(outcome.get('version')) if k == 'model_version' else 'MLflow run'}]({url})"
            for k, url in links.items()
        ]
        lines += ["**MLflow:** " + " · ".join(named), ""]
    if pushed:
        lines += [f"**DVC remote:** {pushed}", ""]
    gate = outcome.get("gate") or {}
    if gate.get("rules"):
        lines += [f"**Gate:** {'passed' if gate.get('passed') else 'FAILED'}", ""]
        if gate.get("evaluation_run_id"):  # the MLflow run the candidate's numbers were read from
            lines += [f"Decided from evaluation run `{gate['evaluation_run_id']}`.", ""]
        lines += gate_table(gate)
    if gate.get("reasons"):
        lines += ["", "Reasons:", *[f"- {reason}" for reason in gate["reasons"]]]
    return "\n".join(lines)


def stage_rows(
    stages: list[dict], outcome: dict, links: dict[str, str] | None = None
) -> list[dict]:
    """One row per stage (result, seconds), then the registration with its MLflow links."""
    rows = [
        {"step": s["stage"], "result": _result(s), "seconds": s.get("seconds"), "link": ""}
        for s in stages
    ]
    links = links or {}
    rows.append(
        {
            "step": "register",
            "result": f"{outcome.get('status')} v{outcome.get('version')}",
            "seconds": None,
            "link": links.get("model_version", ""),
        }
    )
    if links.get("run"):
        rows.append(
            {
                "step": "mlflow run",
                "result": str(outcome.get("run_id")),
                "seconds": None,
                "link": links["run"],
            }
        )
    return rows


def publish(
    key: str,
    title: str,
    stages: list[dict],
    outcome: dict,
    extra: list[str] | None = None,
    links: dict[str, str] | None = None,
    pushed: str | None = None,
) -> None:
    """The markdown summary (gate table included) and a table of the stages with their durations."""
    create_markdown_artifact(
        key=key,
        markdown=summary_markdown(title, stages, outcome, extra, links, pushed),
        description="stages run or skipped, and the gate decision with its table",
    )
    create_table_artifact(
        key=f"{key}-table",
        table=stage_rows(stages, outcome, links),
        description="each stage's result and duration; the registered version and MLflow run",
    )


def final_state(result: dict[str, Any]) -> State | dict[str, Any]:
    """The run's end state from the registration outcome: plain result, KeptChampion, or Failed."""
    outcome = result["registration"]
    if outcome.get("status") != "challenger":
        return result
    reasons = "; ".join((outcome.get("gate") or {}).get("reasons") or []) or "gate failed"
    if outcome.get("champion_before"):
        return Completed(
            name=KEPT_CHAMPION,
            data=result,
            message=f"gate failed, kept champion v{outcome['champion_before']}: {reasons}",
        )
    return Failed(data=result, message=f"gate failed and there is no champion to keep: {reasons}")
