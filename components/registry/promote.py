"""The promote step: read the candidate, judge it against the champion, register it, move an alias.

It only orchestrates (ZenML's compute metrics → compare → promote): the candidate's numbers come
from its evaluation run (``store.read_candidate``), the decision from the one gate path
(``gate.judge`` over ``store.champion_reference``), the bundle from ``bundle``, and every alias
move goes through the audit trail (``audit.record_move``).

Aliases of ``params.registry.model_name``:
* ``champion``: the version that serves; only a version whose gate passed gets it
  (``audit.rollback`` may move it back to an earlier champion);
* ``challenger``: the latest version whose gate failed, with the reasons in its tags.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from components.config import Params
from components.registry import lineage as lineage_mod
from components.registry.audit import last_move, read_events, record_move
from components.registry.bundle import (
    PageImages,
    content_hash,
    log_bundle,
    served_params,
    served_reader,
    smoke_check,
    stage_artifacts,
)
from components.registry.client import ensure_experiment, registry_client, registry_lock
from components.registry.gate import GateDecision, Rescore, judge, system_metrics
from components.registry.store import (
    CHALLENGER,
    CHAMPION,
    GATE_CHAMPION_TAG,
    HASH_TAG,
    METRIC_TAG,
    aliases_of,
    champion_reference,
    champion_version,
    find_by_hash,
    read_candidate,
    read_train_run,
)
from components.registry.store import version_number as _v


def _resolve_run(
    client: MlflowClient, params: Params, train_run: dict[str, Any]
) -> tuple[str, bool]:
    """The training run to log into; a fresh run when it is unknown to this tracking store."""
    run_id = train_run.get("run_id")
    if run_id:
        try:
            client.get_run(run_id)
            return run_id, True
        except MlflowException:
            pass
    experiment_id = ensure_experiment(client, params.registry.experiment)
    run = client.create_run(
        experiment_id,
        run_name="register",
        tags={"regionops.note": f"training run {run_id or '(none)'} not found in this store"},
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id, False


def _metric_tags(candidate: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in system_metrics(candidate).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{METRIC_TAG}{key}"] = repr(float(value))
    return out


def _retag_decision(
    client: MlflowClient,
    name: str,
    version: str,
    decision: GateDecision,
    champion: ModelVersion | None,
) -> None:
    tags = {
        **decision.tags(),
        "gate.decision": decision.to_json()[:4900],
        GATE_CHAMPION_TAG: _v(champion) or "none",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def _finish_registration(
    client: MlflowClient, params: Params, existing: ModelVersion, candidate: dict, digest: str
) -> dict[str, Any]:
    """The candidate is already version ``existing``: make sure its alias move was made (caller holds the lock).

    A run can stop between ``register_model`` and the alias move (a crash, or a transient error
    before the task's retry); the version then exists but never became champion or challenger,
    and the next run found it by hash and stopped. "unchanged" means registered AND moved as
    its gate decided: a version the audit trail never moved an alias to gets that move now,
    recorded as completing the earlier run's, unless a newer version holds the alias since.
    A passed gate is decided again when the champion is no longer the one it was compared with.
    """
    name, version = params.registry.model_name, str(existing.version)
    passed = existing.tags.get("gate.passed") == "true"
    gate = json.loads(existing.tags.get("gate.decision", "{}") or "{}")
    outcome = {
        "status": "unchanged",
        "version": version,
        "model_uri": f"models:/{name}@{CHAMPION}",
        "gate": gate,
        "content_hash": digest,
        "run_id": existing.run_id,
        "message": f"version {version} already holds this candidate (same run, weights, index, params)",
    }
    events = read_events(client, name)
    if any(
        str(e.get("to_version")) == version and e.get("alias") in (CHAMPION, CHALLENGER)
        for e in events
    ):
        return {**outcome, "aliases": aliases_of(client, name, version)}

    champion = champion_version(client, name)
    if (
        passed
        and existing.tags.get(GATE_CHAMPION_TAG) != (_v(champion) or "none")
        and _v(champion) != version
    ):
        decision = judge(candidate, champion_reference(client, champion), params.gate)
        decision.reasons.append(
            f"decided again when completing v{version}'s move: the champion is v{_v(champion)} now"
        )
        _retag_decision(client, name, version, decision, champion)
        passed, gate = decision.passed, decision.to_dict()
    alias = CHAMPION if passed else CHALLENGER
    holder = champion_version(client, name, alias)
    if holder is not None and int(holder.version) > int(version):
        return {
            **outcome,
            "gate": gate,
            "aliases": aliases_of(client, name, version),
            "message": f"version {version} already holds this candidate; its {alias} move was never made "
            f"and the newer v{holder.version} holds {alias} now, so it stays as is",
        }
    previous = (last_move(events, alias) or {}).get("to_version")
    verdict = "; ".join(r["reason"] for r in gate.get("rules", []) if r["passed"] == passed)[:400]
    record_move(
        client,
        name,
        alias=alias,
        action="promote" if passed else "challenger",
        from_version=previous if _v(holder) == version else _v(holder),
        to_version=version,
        reason=f"completing v{version}'s registration (its run stopped before the alias move): "
        f"gate {'passed' if passed else 'failed'}: {verdict}",
    )
    return {
        **outcome,
        "status": "promoted" if passed else "challenger",
        "gate": gate,
        "aliases": [alias],
        "champion_before": _v(champion),
        "completed_move": True,
        "message": f"version {version} was registered but never moved to {alias}; moved now",
    }


def gate_and_register(
    params: Params,
    model_dir: Path,
    index_dir: Path,
    metrics_path: Path,
    lineage: dict | None = None,
    rescore: Rescore | None = None,
    reader_dir: Path | None = None,
    page_images: PageImages | None = None,
) -> dict[str, Any]:
    """Gate the candidate against floors and the champion, register it, move ``champion``/``challenger``.

    The candidate's metrics are read back from its MLflow evaluation run (``mlflow_run_id`` in
    ``metrics_path``), which metrics.json must agree with (``read_candidate``); the decision
    records that run's id.

    ``reader_dir``: the exported span reader; bundled when ``served_reader`` says so (then the
    served checkpoint answers with it; otherwise from the top region's text layer). ``page_images``: ``(page_id,
    image path)`` pairs bundled for highlight crops (``registry.bundle_page_images``).

    ``rescore``: the champion re-scored on the candidate's eval set (``rescore.rescore_champion``), valid
    for the version it names; without it (or if the champion has moved since), the champion's
    metrics recorded at its registration are used, and the decision says so (``gate.judge``).
    """
    model_dir, index_dir, metrics_path = Path(model_dir), Path(index_dir), Path(metrics_path)
    for required in (model_dir, index_dir, metrics_path):
        if not required.exists():
            raise FileNotFoundError(f"cannot register: {required} does not exist")
    client = registry_client()
    candidate = read_candidate(
        client, metrics_path, model_dir
    )  # the gate's numbers: the evaluation run's
    params = served_params(params, candidate)
    reader_dir, answerer_reason = served_reader(params, candidate, reader_dir)
    name = params.registry.model_name
    train_run = read_train_run(model_dir)

    with registry_lock(name):
        run_id, found = _resolve_run(client, params, train_run)
        digest = content_hash(
            model_dir, index_dir, params, train_run.get("run_id") or "none", reader_dir
        )
        existing = find_by_hash(client, name, digest)
        if existing is not None:
            return _finish_registration(client, params, existing, candidate, digest)

        champion = champion_version(client, name)
        decision = judge(candidate, champion_reference(client, champion, rescore), params.gate)
        lineage_tags = lineage_mod.as_tags(lineage_mod.collect(params, candidate, lineage))

        with tempfile.TemporaryDirectory(prefix="regionops-register-") as tmp:
            artifacts = stage_artifacts(
                params, model_dir, index_dir, Path(tmp), reader_dir, page_images
            )
            smoke_check(artifacts)
            with mlflow.start_run(run_id=run_id):
                info = log_bundle(artifacts)
                mlflow.log_dict(decision.to_dict(), "gate/gate.json")
                mlflow.log_text(decision.to_markdown(), "gate/gate.md")
                mlflow.set_tags({**decision.tags(), **lineage_tags, HASH_TAG: digest})

        version_tags = {
            **decision.tags(),
            **lineage_tags,
            **_metric_tags(candidate),
            HASH_TAG: digest,
            "gate.decision": decision.to_json()[:4900],
            "train_run_found": str(found).lower(),
            GATE_CHAMPION_TAG: _v(champion) or "none",
            "reader.bundled": str(reader_dir is not None).lower(),
            "answerer": "reader" if reader_dir is not None else "text",
            "answerer.reason": answerer_reason[:4900],
        }
        mv = mlflow.register_model(info.model_uri, name, tags=version_tags)
        client.update_model_version(
            name,
            str(mv.version),
            description=lineage_mod.version_description(
                candidate,
                decision,
                client.get_run(run_id).info.run_name,
                "reader" if reader_dir is not None else "text layer",
                answerer_reason,
            ),
        )

        # Re-read the champion right before moving it: if it changed (a promotion from another
        # machine that bypassed our lock), re-decide against the champion that is there now.
        current = champion_version(client, name)
        if _v(current) != _v(champion):
            decision = judge(candidate, champion_reference(client, current, rescore), params.gate)
            _retag_decision(client, name, str(mv.version), decision, current)
            champion = current

        if decision.passed:
            reason = "gate passed: " + "; ".join(r.reason for r in decision.rules if r.passed)[:500]
            record_move(
                client,
                name,
                alias=CHAMPION,
                action="promote",
                from_version=_v(champion),
                to_version=str(mv.version),
                reason=reason,
            )
            status = "promoted"
        else:
            previous = champion_version(client, name, CHALLENGER)
            record_move(
                client,
                name,
                alias=CHALLENGER,
                action="challenger",
                from_version=_v(previous),
                to_version=str(mv.version),
                reason="gate failed: " + "; ".join(decision.reasons)[:500],
            )
            status = "challenger"

    return {
        "status": status,
        "version": str(mv.version),
        "model_uri": f"models:/{name}@{CHAMPION}",
        "aliases": [CHAMPION if decision.passed else CHALLENGER],
        "gate": decision.to_dict(),
        "content_hash": digest,
        "run_id": run_id,
        "champion_before": _v(champion),
        "answerer": "reader" if reader_dir is not None else "text",
        "answerer_reason": answerer_reason,
    }
