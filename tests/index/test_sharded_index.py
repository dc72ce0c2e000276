"""Sharded page encoding: the shards split the pages exactly, and the Dask-built index equals the serial one."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from components.index.shards import shard_page_ids
from tests.conftest import REPO, TINY_OVERRIDES


def test_shards_cover_every_page_once_in_order():
    ids = [f"p{i}" for i in range(11)]
    for n in (1, 2, 3, 11, 20):
        parts = shard_page_ids(ids, n)
        assert [pid for part in parts for pid in part] == ids
        assert len(parts) == min(n, len(ids)) and all(parts)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError):
        shard_page_ids(ids, 0)


@pytest.mark.slow
def test_dask_sharded_index_equals_the_serial_build(tmp_path: Path, tiny_params, tiny_corpus):
    from prefect_dask import DaskTaskRunner

    from components.config import load_params
    from components.index.build import build_index
    from components.index.region_index import RegionIndex
    from components.model.io import save_retriever
    from components.model.retriever import build_retriever
    from flows.scale import build_index_sharded, make_task_runner

    model_dir = tmp_path / "project" / "data" / "model"
    model = build_retriever(tiny_params.model)
    model.eval()
    save_retriever(model, model_dir)
    project = tmp_path / "project"
    overrides = TINY_OVERRIDES + [
        f"data.corpus_dir={tiny_corpus.root}",
        "orchestrate.task_runner=dask",
        "orchestrate.dask_workers=2",
        "orchestrate.encode_shards=3",
    ]
    params = load_params(REPO / "params.yaml", overrides)
    (project / "params.yaml").write_text(yaml.safe_dump(params.to_dict(), sort_keys=False))

    serial_stats = build_index(params, tiny_corpus, model_dir, tmp_path / "serial")
    configured = make_task_runner(params)
    assert type(configured).__name__ == "DaskTaskRunner"
    assert (
        configured.cluster_kwargs["n_workers"] == 2
        and configured.cluster_kwargs["processes"] is True
    )
    # The same runner with worker threads: on 2 shared cores, worker processes would each import
    # torch and transformers again; Dask schedules the shards the same way.
    runner = DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={**configured.cluster_kwargs, "processes": False},
    )
    sharded_stats = build_index_sharded.with_options(task_runner=runner)(
        str(project), "params.yaml"
    )
    assert sharded_stats["shards"] == 3

    serial = RegionIndex.load(tmp_path / "serial")
    sharded = RegionIndex.load(project / "data" / "index")
    assert [m.page_id for m in sharded.metas] == [m.page_id for m in serial.metas]
    assert sharded.fingerprint == serial.fingerprint
    np.testing.assert_allclose(sharded.pooled, serial.pooled, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(sharded.cells, dtype=np.float32),
        np.asarray(serial.cells, dtype=np.float32),
        atol=2e-3,
    )  # float16 storage: one rounding step apart at most
    assert sharded_stats["pages"] == serial_stats["pages"] == len(tiny_corpus.pages)
    # both builds describe the same pictures (two-stage stage 1, ADR 8)
    assert [m.pictures for m in sharded.metas] == [m.pictures for m in serial.metas]
    assert sharded_stats["pictures"] == serial_stats["pictures"] > 0


def test_dask_runner_without_prefect_dask_says_which_extra_to_install(tiny_params, monkeypatch):
    from flows.scale import make_task_runner

    monkeypatch.setitem(
        sys.modules, "prefect_dask", None
    )  # as if the `dask` extra were not installed
    params = tiny_params.model_copy(
        update={"orchestrate": tiny_params.orchestrate.model_copy(update={"task_runner": "dask"})}
    )
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[dask\]'"):
        make_task_runner(params)
