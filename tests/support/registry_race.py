"""Racing rollbacks from separate processes and homes against one registry (sqlite or MLflow over HTTP).

Each worker is a spawned process with its own ``REGIONOPS_HOME`` (as pods on different
machines have): what serialises them must live with the registry, not with the home.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

from mlflow import MlflowClient

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 6  # rollbacks per worker


def make_versions(client: MlflowClient, name: str, count: int) -> list[str]:
    """``count`` versions whose gate passed (a tiny logged artifact each); the last one is champion."""
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    client.create_registered_model(name)
    versions = []
    for i in range(count):
        run = client.create_run(experiment_id, run_name=f"race-{i}")
        client.log_text(run.info.run_id, f"version {i}", "model/MLmodel")
        client.set_terminated(run.info.run_id)
        mv = client.create_model_version(
            name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run.info.run_id,
            tags={"gate.passed": "true"},
        )
        versions.append(str(mv.version))
    client.set_registered_model_alias(name, "champion", versions[-1])
    return versions


def _rollback_worker(env: dict[str, str], name: str, targets: list[str], barrier, results) -> None:
    os.environ.update(env)  # before the settings are read: this process's own home
    from components.config import load_params
    from components.registry.audit import rollback
    from components.registry.errors import RegistryError

    params = load_params(
        REPO / "params.yaml", [f"registry.model_name={name}", f"registry.experiment={name}"]
    )
    barrier.wait(timeout=120)
    moved = refused = 0
    try:
        for round_, target in enumerate(targets):
            try:
                rollback(params, target, f"race {env['REGIONOPS_HOME']} round {round_}")
                moved += 1
            except RegistryError as exc:
                if "already the champion" not in str(exc):
                    raise
                refused += 1
        results.put({"moved": moved, "refused": refused})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test with it
        results.put({"error": repr(exc)})


def race_rollbacks(name: str, envs: list[dict[str, str]], versions: list[str]) -> list[dict]:
    """Each worker rolls ``champion`` through ``versions`` ROUNDS times, all starting at once."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(len(envs)), ctx.Queue()
    procs = []
    for i, env in enumerate(envs):
        order = versions if i % 2 == 0 else versions[::-1]
        targets = [order[r % len(order)] for r in range(ROUNDS)]
        procs.append(
            ctx.Process(target=_rollback_worker, args=(env, name, targets, barrier, results))
        )
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    assert not [o for o in outcomes if "error" in o], outcomes
    return outcomes


def assert_one_chain(events: list[dict], outcomes: list[dict], first_champion: str) -> None:
    """Distinct, consecutive sequence numbers; each move starts where the previous one ended."""
    moves = sum(o["moved"] for o in outcomes)
    assert moves >= 2, outcomes
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), [e["seq"] for e in events]
    assert len(events) == moves, (
        f"{moves} rollbacks but {len(events)} audit events: some overwrote others"
    )
    holder = first_champion
    for event in events:
        assert event["from_version"] == holder, (event, holder)
        assert event["to_version"] != holder
        holder = event["to_version"]
