"""Re-score the current champion on the candidate's evaluation set, so the gate never compares
old numbers with new ones.

The champion's bundle (retriever, index, params) is downloaded from the registry and
evaluated exactly as the candidate was: same corpus, same split, same evaluation settings,
the champion's own model, region and RAG settings. When the champion's index does not hold
the same pages as the candidate's, the champion's retriever re-encodes the candidate's
corpus first (otherwise the champion would be scored on a different page set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.config import ConfigError, Params, load_params
from components.data.corpus import Corpus
from components.registry.gate import Rescore


def champion_eval_params(champion_params: Params, candidate_params: Params) -> Params:
    """The champion's behaviour settings, the candidate's evaluation set and evaluation settings."""
    return champion_params.model_copy(
        update={
            "data": candidate_params.data,
            "evaluate": candidate_params.evaluate,
            "registry": candidate_params.registry,
            "gate": candidate_params.gate,
        }
    )


def _page_ids(index_dir: Path) -> set[str]:
    from components.index.region_index import RegionIndex

    return set(RegionIndex.load(index_dir).page_ids)


def rescore_champion(
    params: Params,
    corpus: Corpus,
    candidate_index_dir: Path,
    candidate_metrics: dict,
    workdir: Path,
) -> Rescore:
    """Evaluate the champion on the candidate's evaluation set (nothing logged to MLflow)."""
    from components.evaluation.evaluate import run_evaluation
    from components.registry.store import download_champion

    workdir = Path(workdir)
    champ = download_champion(params, workdir / "champion")
    if champ is None:
        return Rescore(None, None, ["no champion to re-score"])
    version = champ["version"]
    try:
        champ_params = champion_eval_params(load_params(champ["params_file"]), params)
    except ConfigError as exc:
        # A champion from an older params schema cannot be rebuilt here: the gate falls back
        # to its recorded metrics and says so.
        return Rescore(
            version, None, [f"champion v{version} params no longer load ({exc}); not re-scored"]
        )

    notes = []
    index_dir = champ["index_dir"]
    wanted = _page_ids(candidate_index_dir)
    if _page_ids(index_dir) != wanted:
        from components.index.build import build_index

        missing = sorted(wanted - {p.id for p in corpus.pages})
        if missing:
            raise RuntimeError(
                f"the candidate's index holds {len(missing)} pages the corpus lacks "
                f"(e.g. {missing[0]}): cannot re-encode them for the champion"
            )
        pages = Corpus(corpus.root, [p for p in corpus.pages if p.id in wanted], corpus.questions)
        index_dir = workdir / "champion_index"
        build_index(champ_params, pages, champ["model_dir"], index_dir)
        notes.append(f"champion v{version} index re-built on the candidate's {len(wanted)} pages")
    # The champion's bundled reader (if any) answers too, so its reader metrics are today's as well.
    metrics = run_evaluation(
        champ_params,
        corpus,
        champ["model_dir"],
        index_dir,
        workdir / "champion_eval",
        log_mlflow=False,
        reader_dir=champ.get("reader_dir"),
    )
    if metrics["dataset_id"] != candidate_metrics.get("dataset_id"):
        # Same questions and pages by construction; a mismatch means the inputs moved under us.
        raise RuntimeError(
            f"champion v{version} was re-scored on dataset {metrics['dataset_id'][:12]}, the candidate on "
            f"{str(candidate_metrics.get('dataset_id'))[:12]}: refusing to compare different evaluation sets"
        )
    notes.append(f"champion v{version} re-scored on dataset {metrics['dataset_id'][:12]}")
    return Rescore(version, metrics, notes)


def already_registered(
    params: Params, model_dir: Path, index_dir: Path, reader_dir: Path | None = None
) -> str | None:
    """The version that already holds this exact candidate (then there is nothing to gate or re-score)."""
    from components.registry.bundle import content_hash
    from components.registry.client import registry_client
    from components.registry.store import find_by_hash, read_train_run

    run_id = read_train_run(Path(model_dir)).get("run_id") or "none"
    existing = find_by_hash(
        registry_client(),
        params.registry.model_name,
        content_hash(Path(model_dir), Path(index_dir), params, run_id, reader_dir),
    )
    return None if existing is None else str(existing.version)


def gate_and_register_rescored(
    params: Params,
    corpus: Corpus,
    model_dir: Path,
    index_dir: Path,
    metrics_path: Path,
    lineage: dict | None = None,
    reader_dir: Path | None = None,
) -> dict[str, Any]:
    """The promote step: re-score the champion on the candidate's eval set, then gate and register.

    A candidate that is already registered is not re-scored (``gate_and_register`` answers
    ``unchanged``). If the champion moves between the re-score and the gate, the gate falls
    back to the new champion's recorded metrics and its reasons say so.
    """
    import tempfile

    from components.registry.bundle import served_params, served_reader
    from components.registry.client import registry_client
    from components.registry.promote import gate_and_register
    from components.registry.store import read_candidate

    rescore = Rescore(None, None, ["candidate already registered: champion not re-scored"])
    # Checked against its evaluation run before minutes of re-scoring, not after.
    candidate = read_candidate(registry_client(), Path(metrics_path), Path(model_dir))
    # The identity of a registered version includes the region settings it serves with.
    served = served_params(params, candidate)
    if (
        already_registered(
            served, model_dir, index_dir, served_reader(served, candidate, reader_dir)[0]
        )
        is None
    ):
        with tempfile.TemporaryDirectory(prefix="regionops-rescore-") as tmp:
            rescore = rescore_champion(params, corpus, Path(index_dir), candidate, Path(tmp))
    outcome = gate_and_register(
        params,
        model_dir,
        index_dir,
        metrics_path,
        lineage=lineage,
        rescore=rescore,
        reader_dir=reader_dir,
        page_images=[(p.id, corpus.image_path(p)) for p in corpus.pages],
    )
    return {
        **outcome,
        "rescore": rescore.to_dict()
        | {
            "metrics": None
            if rescore.metrics is None
            else {
                "systems": {"regionops": rescore.metrics["systems"]["regionops"]},
                "dataset_id": rescore.metrics["dataset_id"],
            }
        },
    }
