"""Region index: storage modes, two-step search, add/delete, filters, atomic save, fingerprint, device."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from components.config import IndexParams
from components.index import device
from components.index import storage as index_storage
from components.index.region_index import (
    CURRENT,
    FingerprintMismatchError,
    IndexFormatError,
    PageMeta,
    RegionIndex,
)
from tests.support.cell_vectors import index_params

REPO = Path(__file__).resolve().parents[2]
G, D = 4, 32


def _corpus(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    cells = rng.standard_normal((n, G * G, D)).astype(np.float32)
    cells /= np.linalg.norm(cells, axis=-1, keepdims=True)
    metas = [
        PageMeta(
            page_id=f"doc{i // 2}.pdf#{i % 2}",
            doc=f"doc{i // 2}.pdf",
            collection="left" if i < n // 2 else "right",
            tags=["odd"] if i % 2 else [],
            width=100,
            height=130,
            words=[[f"w{i}", 0.1, 0.1, 0.2, 0.15]],
        )
        for i in range(n)
    ]
    return metas, cells


def _exact(cells: np.ndarray, q: np.ndarray) -> np.ndarray:
    return (cells @ q).max(1)


@pytest.mark.parametrize("storage", ["float16", "pq", "binary", "pq_residual"])
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_search_finds_planted_cell_and_heatmap_is_exact(storage, kind):
    metas, cells = _corpus()
    params = index_params(
        storage=storage,
        faiss=kind,
        candidates=40,
        pq__m=8,
        pq_residual__centroids=4,
        pq_residual__pq_m=8,
        pq_residual__candidates="stored" if kind == "flat" else "separate",
    )
    index = RegionIndex.build(metas, cells, params, "fp")
    q = cells[11, 5]
    hits = index.search(q, 3)
    assert hits[0].page_id == metas[11].page_id
    assert hits[0].heatmap.shape == (G, G)
    # The heatmap's argmax is the planted cell (row-major over the grid).
    assert int(np.argmax(hits[0].heatmap)) == 5
    if storage == "float16":
        np.testing.assert_allclose(hits[0].heatmap.ravel(), cells[11] @ q, atol=2e-3)
    assert hits[0].score == pytest.approx(float(hits[0].heatmap.max()))


def test_pq_heatmap_equals_decoded_dot_product():
    metas, cells = _corpus()
    index = RegionIndex.build(metas, cells, index_params(storage="pq", pq__m=8), "fp")
    q = cells[3, 0]
    decoded = index.decoded_cells([3])[0]
    np.testing.assert_allclose(index.heatmap(metas[3].page_id, q).ravel(), decoded @ q, atol=1e-4)


def test_bytes_per_page_shrink_with_compression():
    metas, cells = _corpus()
    sizes = {
        s: RegionIndex.build(metas, cells, index_params(storage=s, pq__m=8), "fp").stats()[
            "bytes_per_page"
        ]["cells"]
        for s in ("float16", "pq", "binary")
    }
    assert sizes["float16"] == G * G * D * 2
    assert sizes["pq"] == G * G * 8
    assert sizes["binary"] == G * G * D / 8


@pytest.mark.parametrize("vectors", ["pooled", "cells"])
def test_candidate_stage_recall_equals_exhaustive_on_small_flat_index(vectors):
    metas, cells = _corpus(40)
    params = IndexParams(faiss="flat", candidates=40, candidate_vectors=vectors)
    index = RegionIndex.build(metas, cells, params, "fp")
    rng = np.random.default_rng(1)
    for _ in range(10):
        q = rng.standard_normal(D).astype(np.float32)
        staged = [h.page_id for h in index.search(q, 5)]
        exhaustive = [h.page_id for h in index.search(q, 5, exhaustive=True)]
        assert staged == exhaustive
        order = np.argsort(-_exact(cells, q), kind="stable")[:5]
        assert exhaustive == [metas[i].page_id for i in order]


def test_filters_apply_inside_the_search_not_after_top_k():
    metas, cells = _corpus(40)
    index = RegionIndex.build(metas, cells, IndexParams(faiss="hnsw", candidates=6), "fp")
    q = cells[0, 0]  # page 0 is in "left"; ask for "right" pages with tag "odd"
    hits = index.search(q, 5, filters={"collection": "right", "tags": ["odd"]})
    assert len(hits) == 5  # a post-filter of the unfiltered top 6 would return fewer
    for h in hits:
        meta = index.meta(h.page_id)
        assert meta.collection == "right" and "odd" in meta.tags
    # 10 pages pass the filter, more than the 6 candidates: the faiss stage ran with the selector.
    expected = [
        i for i in np.argsort(-_exact(cells, q)) if metas[i].collection == "right" and metas[i].tags
    ][:5]
    exhaustive = index.search(
        q, 5, filters={"collection": "right", "tags": ["odd"]}, exhaustive=True
    )
    assert [h.page_id for h in exhaustive] == [metas[i].page_id for i in expected]
    assert hits[0].page_id == exhaustive[0].page_id
    only = index.search(q, 5, filters={"doc": "doc3.pdf"})
    assert {h.page_id for h in only} == {"doc3.pdf#0", "doc3.pdf#1"}
    with pytest.raises(ValueError, match="unknown filter"):
        index.search(q, 5, filters={"author": "x"})


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_add_and_delete_doc(kind):
    metas, cells = _corpus(40)
    index = RegionIndex.build(metas[:30], cells[:30], IndexParams(faiss=kind, candidates=40), "fp")
    q = cells[35, 2]
    assert metas[35].page_id not in [h.page_id for h in index.search(q, 3)]
    assert index.add(metas[30:], cells[30:]) == 10
    assert len(index) == 40
    assert index.search(q, 1)[0].page_id == metas[35].page_id
    with pytest.raises(ValueError, match="already in the index"):
        index.add(metas[:1], cells[:1])
    assert index.delete_doc(metas[35].doc) == 2
    assert len(index) == 38 and not index.has_page(metas[35].page_id)
    assert metas[35].doc not in {h.page_id.split("#")[0] for h in index.search(q, 38)}
    assert index.delete_doc("missing.pdf") == 0


def test_save_load_roundtrip_and_fingerprint_check(tmp_path):
    metas, cells = _corpus()
    index = RegionIndex.build(
        metas, cells, index_params(storage="pq", faiss="hnsw", pq__m=8), "enc-a"
    )
    index.save(tmp_path / "idx")
    loaded = RegionIndex.load(tmp_path / "idx", expected_fingerprint="enc-a")
    q = cells[7, 1]
    assert [h.page_id for h in loaded.search(q, 5)] == [h.page_id for h in index.search(q, 5)]
    assert loaded.meta(metas[7].page_id).words == metas[7].words
    with pytest.raises(FingerprintMismatchError, match="Rebuild"):
        RegionIndex.load(tmp_path / "idx", expected_fingerprint="enc-b")
    with pytest.raises(IndexFormatError):
        RegionIndex.load(tmp_path / "empty")
    # Only safe formats on disk: .npy without pickle, JSON, faiss.
    folder = tmp_path / "idx" / (tmp_path / "idx" / CURRENT).read_text()
    assert sorted(p.name for p in folder.iterdir()) == [
        ".regionops-index-version",
        "candidates.faiss",
        "cells.npy",
        "manifest.json",
        "pages.json",
        "pooled.npy",
        "pq.faiss",
    ]


def test_crash_mid_save_keeps_previous_index(tmp_path, monkeypatch):
    metas, cells = _corpus()
    good = RegionIndex.build(metas[:20], cells[:20], IndexParams(), "fp")
    good.save(tmp_path / "idx")
    bigger = RegionIndex.build(metas, cells, IndexParams(), "fp")

    def boom(index, folder):
        (folder / "cells.npy").write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(index_storage, "write_parts", boom)
    with pytest.raises(OSError, match="disk full"):
        bigger.save(tmp_path / "idx")
    monkeypatch.undo()
    assert len(RegionIndex.load(tmp_path / "idx")) == 20
    bigger.save(tmp_path / "idx")  # the next save succeeds and cleans up
    assert len(RegionIndex.load(tmp_path / "idx")) == 40
    assert len([p for p in (tmp_path / "idx").iterdir() if p.is_dir()]) == 1


_KILLED_SAVE = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from components.config import IndexParams
    from components.index import region_index as ri
    from components.index import storage
    rng = np.random.default_rng(0)
    cells = rng.standard_normal((30, 16, 32)).astype(np.float32)
    metas = [ri.PageMeta(page_id=f"d{i}#0", doc=f"d{i}") for i in range(30)]
    index = ri.RegionIndex.build(metas, cells, IndexParams(), "fp")
    real = storage._write_bytes_synced
    def slow(path, write):
        real(path, write)
        if path.name == "pooled.npy":
            print("WRITING", flush=True)
            time.sleep(60)
    storage._write_bytes_synced = slow
    index.save(sys.argv[1])
    """
)


@pytest.mark.slow
def test_real_kill_mid_save_keeps_previous_index(tmp_path):
    metas, cells = _corpus(20)
    RegionIndex.build(metas, cells, IndexParams(), "fp").save(tmp_path / "idx")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SAVE, str(tmp_path / "idx")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert len(RegionIndex.load(tmp_path / "idx")) == 20  # the killed save left the old index live
    debris = [p.name for p in (tmp_path / "idx").iterdir() if p.name.startswith(".")]
    assert debris  # the half-written version is there, but not referenced by CURRENT


def test_stats_report_bytes_per_part(tmp_path):
    metas, cells = _corpus()
    stats = RegionIndex.build(metas, cells, IndexParams(storage="binary"), "fp").stats()
    assert stats["pages"] == 40 and stats["storage"] == "binary" and stats["fingerprint"] == "fp"
    assert set(stats["bytes_per_page"]) >= {
        "cells",
        "pooled",
        "candidates",
        "text_layer",
        "vectors_total",
    }
    json.dumps(stats)


def test_gpu_selected_only_when_faiss_sees_gpus(monkeypatch):
    monkeypatch.setattr(device.faiss, "get_num_gpus", lambda: 0)
    assert device.select_device("flat") == "cpu"
    monkeypatch.setattr(device.faiss, "get_num_gpus", lambda: 2)
    monkeypatch.setattr(
        device.faiss, "index_cpu_to_all_gpus", lambda index: ("on-gpu", index), raising=False
    )
    assert device.select_device("flat") == "gpu"
    assert device.select_device("ivf") == "gpu"
    assert device.select_device("hnsw") == "cpu"  # faiss has no GPU HNSW
    moved, where = device.to_device("cpu-index", "flat")
    assert where == "gpu" and moved == ("on-gpu", "cpu-index")


def test_bad_inputs_are_clear_errors():
    metas, cells = _corpus(4)
    with pytest.raises(ValueError, match="square grid"):
        RegionIndex.build(metas, cells[:, :15], IndexParams(), "fp")
    with pytest.raises(ValueError, match="must divide"):
        RegionIndex.build(metas, cells, index_params(storage="pq", pq__m=5), "fp")
    bad = cells.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        RegionIndex.build(metas, bad, IndexParams(), "fp")
    index = RegionIndex.build(metas, cells, IndexParams(), "fp")
    with pytest.raises(ValueError, match="dims"):
        index.search(np.zeros(D + 1, dtype=np.float32), 1)
