"""Scale-out: the index build's page encoding as sharded tasks on a Dask cluster (prefect-dask).

Selected by ``orchestrate.task_runner: dask``. ``orchestrate.dask_address`` points at an
existing Dask scheduler (remote workers); without it a LocalCluster of
``orchestrate.dask_workers`` processes is started. Shards are cached by content (the
retriever's weights hash, the corpus tables' hash, the page ids) plus the task's source,
with JSON results (no pickle): an unchanged shard is not encoded twice.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, NONE, TASK_SOURCE

from components.config import Params, load_params
from components.index import shards
from components.paths import ProjectPaths
from flows import SETTINGS

RELATIVE = ProjectPaths.from_root()  # the flow's defaults, relative to its project_dir


def make_task_runner(params: Params):
    """A DaskTaskRunner for the params: the given scheduler, or a LocalCluster of worker processes."""
    try:
        from prefect_dask import DaskTaskRunner
    except ModuleNotFoundError as exc:  # the `dask` extra is optional (pyproject.toml)
        raise RuntimeError(
            "orchestrate.task_runner: dask needs prefect-dask: pip install -e '.[dask]' "
            "(or set orchestrate.task_runner: thread)"
        ) from exc

    o = params.orchestrate
    if o.dask_address:
        return DaskTaskRunner(address=o.dask_address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": o.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        },
    )


@task(name="plan-shards", cache_policy=NONE, timeout_seconds=300)
def plan_shards(corpus_dir: str, accepted: str | None, model_dir: str, n_shards: int) -> dict:
    corpus = shards.load_index_corpus(Path(corpus_dir), Path(accepted) if accepted else None)
    if not corpus.pages:
        raise ValueError(f"corpus {corpus_dir} has no pages to index")
    return {
        "shards": shards.shard_page_ids([p.id for p in corpus.pages], n_shards),
        "model": shards.model_digest(Path(model_dir)),
        "corpus": shards.corpus_digest(Path(corpus_dir), Path(accepted) if accepted else None),
    }


# Keyed on content: model and corpus hashes and the page ids are inputs, so a cached shard is the same vectors.
@task(
    name="encode-shard",
    task_run_name="encode-shard-{shard_no}",
    cache_policy=INPUTS + TASK_SOURCE,
    persist_result=True,
    result_serializer="json",
    retries=1,
    retry_delay_seconds=5,
    timeout_seconds=3600,
)
def encode_shard(
    corpus_dir: str,
    accepted: str | None,
    model_dir: str,
    page_ids: list[str],
    out_file: str,
    model_hash: str,
    corpus_hash: str,
    shard_no: int,
    threads: int = 1,
) -> dict:
    # One intra-op thread per Dask worker process (index.encode_threads): torch's default, one per
    # core in every worker, oversubscribes the machine (ADR 11, ADR 15).
    return shards.encode_shard(
        Path(corpus_dir),
        Path(accepted) if accepted else None,
        Path(model_dir),
        page_ids,
        Path(out_file),
        threads=threads,
    )


@task(name="assemble-index", cache_policy=NONE, timeout_seconds=3600)
def assemble_index(
    project_dir: str,
    params_file: str,
    corpus_dir: str,
    accepted: str | None,
    model_dir: str,
    shard_files: list[str],
    out_dir: str,
) -> dict:
    params = load_params(Path(project_dir) / params_file)
    corpus = shards.load_index_corpus(Path(corpus_dir), Path(accepted) if accepted else None)
    return shards.build_index_from_shards(
        params, corpus, Path(model_dir), [Path(f) for f in shard_files], Path(out_dir)
    )


@flow(name="index-sharded")
def build_index_sharded(
    project_dir: str = ".",
    params_file: str = "params.yaml",
    model_dir: str = str(RELATIVE.model),
    out_dir: str = str(RELATIVE.index),
) -> dict:
    """Encode the pages in shards on the flow's task runner, then build and save the index once."""
    logger = get_run_logger()
    root = Path(project_dir).resolve()
    params = load_params(root / params_file)
    corpus_dir = str(root / params.data.corpus_dir)
    accepted_file = ProjectPaths.from_root(root).accepted
    accepted = str(accepted_file) if accepted_file.exists() else None
    model = str(root / model_dir)
    plan = plan_shards(corpus_dir, accepted, model, params.orchestrate.encode_shards)
    shard_dir = SETTINGS.home / "shards"
    outs = [
        str(
            shard_dir
            / f"{plan['model'][:16]}-{plan['corpus'][:16]}-{k}of{len(plan['shards'])}.safetensors"
        )
        for k in range(len(plan["shards"]))
    ]
    args = [
        (
            corpus_dir,
            accepted,
            model,
            ids,
            out,
            plan["model"],
            plan["corpus"],
            k,
            params.index.encode_threads,
        )
        for k, (ids, out) in enumerate(zip(plan["shards"], outs))
    ]
    records = [f.result() for f in [encode_shard.submit(*a) for a in args]]
    for k, record in enumerate(records):
        if not Path(
            record["file"]
        ).exists():  # a cached record whose file was cleaned away: encode again
            records[k] = encode_shard.with_options(refresh_cache=True)(*args[k])
    logger.info("encoded %d pages in %d shards", sum(r["pages"] for r in records), len(records))
    return assemble_index(
        str(root),
        params_file,
        corpus_dir,
        accepted,
        model,
        [r["file"] for r in records],
        str(root / out_dir),
    )


def run_sharded(project_dir: str, params_file: str) -> dict:
    """``build_index_sharded`` on the task runner the params choose (called from the train flow)."""
    params = load_params(Path(project_dir) / params_file)
    return build_index_sharded.with_options(task_runner=make_task_runner(params))(
        project_dir, params_file
    )
