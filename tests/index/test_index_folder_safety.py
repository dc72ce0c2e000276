"""The index folder: saves delete only what the index wrote, take turns, and checksums catch damage."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest

from components.config import IndexParams
from components.index import storage
from components.index.region_index import CURRENT, IndexFormatError, PageMeta, RegionIndex
from components.index.version_folders import MARKER_NAME, UnsafeIndexTargetError

G, D = 4, 32


def _index(n: int = 12, seed: int = 0, storage: str = "float16") -> RegionIndex:
    rng = np.random.default_rng(seed)
    cells = rng.standard_normal((n, G * G, D)).astype(np.float32)
    metas = [PageMeta(page_id=f"d{i}#0", doc=f"d{i}") for i in range(n)]
    return RegionIndex.build(metas, cells, IndexParams(storage=storage), "fp")


def _versions(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("v-"))


def test_index_save_keeps_foreign_files(tmp_path):
    idx = tmp_path / "idx"
    _index().save(idx)
    (idx / "notes.txt").write_text("mine")
    (idx / "my-data").mkdir()
    (idx / "my-data" / "a.csv").write_text("1,2")
    lookalike = idx / "v-20200101T000000-deadbeef"  # a version's name, but not written by the index
    lookalike.mkdir()
    (lookalike / "thesis.tex").write_text("keep me")
    (idx / ".CURRENT.v-20200101T000000-deadbeef.tmp").write_text("someone else's file")
    _index(seed=1).save(idx)
    _index(seed=2).save(idx)
    assert (idx / "notes.txt").read_text() == "mine"
    assert (idx / "my-data" / "a.csv").read_text() == "1,2"
    assert (lookalike / "thesis.tex").read_text() == "keep me"
    assert (idx / ".CURRENT.v-20200101T000000-deadbeef.tmp").exists()
    live = (idx / CURRENT).read_text()
    assert _versions(idx) == sorted([live, lookalike.name])  # the older real versions are gone
    assert len(RegionIndex.load(idx)) == 12


def test_index_save_refuses_a_non_empty_folder_that_is_not_an_index(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "README.md").write_text("my project")
    (work / "src").mkdir()
    with pytest.raises(UnsafeIndexTargetError, match="not empty and holds no region index"):
        _index().save(work)
    assert sorted(p.name for p in work.iterdir()) == ["README.md", "src"]
    empty = tmp_path / "empty"
    empty.mkdir()
    _index().save(empty)  # an empty folder is fine
    assert len(RegionIndex.load(empty)) == 12


def test_index_save_removes_its_own_crash_debris(tmp_path, monkeypatch):
    idx = tmp_path / "idx"
    _index().save(idx)

    def boom(index, folder):
        (folder / "cells.npy").write_bytes(b"half")
        raise KeyboardInterrupt  # the except branch removes the temp folder; simulate a hard kill:

    real_rmtree = storage.shutil.rmtree
    monkeypatch.setattr(storage.shutil, "rmtree", lambda *a, **k: None)
    monkeypatch.setattr(storage, "write_parts", boom)
    with pytest.raises(KeyboardInterrupt):
        _index(seed=1).save(idx)
    monkeypatch.setattr(storage.shutil, "rmtree", real_rmtree)
    monkeypatch.undo()
    debris = [p for p in idx.iterdir() if p.name.endswith(".tmp")]
    assert len(debris) == 1 and (debris[0] / MARKER_NAME).is_file()
    _index(seed=2).save(idx)
    assert not [p for p in idx.iterdir() if p.name.endswith(".tmp")]


def _slow_save(folder: str, seed: int, start) -> None:
    real = storage._write_bytes_synced

    def slow(path, write):
        real(path, write)
        time.sleep(0.15)  # widen the window in which two saves overlap

    storage._write_bytes_synced = slow
    start.wait()
    _index(seed=seed).save(Path(folder))


@pytest.mark.slow
def test_overlapping_index_saves_leave_current_loadable(tmp_path):
    idx = tmp_path / "idx"
    _index().save(idx)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_slow_save, args=(str(idx), seed, start)) for seed in (1, 2)]
    for p in procs:
        p.start()
    time.sleep(3)  # both children imported and waiting
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]  # both saves succeeded
    live = (idx / CURRENT).read_text()
    assert _versions(idx) == [live]
    assert len(RegionIndex.load(idx)) == 12


def _damage_flip(folder: Path) -> str:
    data = bytearray((folder / "cells.npy").read_bytes())
    data[-3] ^= 0x40  # a byte of the vectors, not the header: np.load would read it silently
    (folder / "cells.npy").write_bytes(bytes(data))
    return "cells.npy"


def _damage_truncate(folder: Path) -> str:
    data = (folder / "candidates.faiss").read_bytes()
    (folder / "candidates.faiss").write_bytes(data[: len(data) // 2])
    return "candidates.faiss"


def _damage_json(folder: Path) -> str:
    (folder / "pages.json").write_text('[{"page_id": "d0#0", ')
    return "pages.json"


def _damage_manifest(folder: Path) -> str:
    (folder / "manifest.json").write_text("{not json")
    return "manifest.json"


@pytest.mark.parametrize("damage", [_damage_flip, _damage_truncate, _damage_json, _damage_manifest])
def test_damaged_index_file_raises_index_format_error_naming_it(tmp_path, damage):
    folder = _index().save(tmp_path / "idx")
    name = damage(folder)
    with pytest.raises(IndexFormatError, match=name.replace(".", r"\.")):
        RegionIndex.load(tmp_path / "idx")


@pytest.mark.parametrize("damage", [_damage_truncate, _damage_json])
def test_unverified_load_still_names_the_unreadable_file(tmp_path, damage):
    folder = _index().save(tmp_path / "idx")
    name = damage(folder)
    with pytest.raises(IndexFormatError, match=name.replace(".", r"\.")):
        RegionIndex.load(tmp_path / "idx", verify=False)


def test_manifest_records_a_sha256_per_file(tmp_path):
    folder = _index(storage="pq_residual", n=40).save(tmp_path / "idx")
    files = json.loads((folder / "manifest.json").read_text())["files"]
    on_disk = {p.name for p in folder.iterdir()} - {"manifest.json", MARKER_NAME}
    assert set(files) == on_disk and all(len(v) == 64 for v in files.values())


def test_index_verify_command_names_the_damaged_file(tmp_path):
    from typer.testing import CliRunner

    from components.cli import app

    folder = _index().save(tmp_path / "idx")
    ok = CliRunner().invoke(app, ["index", "verify", "--index", str(tmp_path / "idx")])
    assert ok.exit_code == 0 and '"ok": true' in ok.output
    _damage_flip(folder)
    bad = CliRunner().invoke(app, ["index", "verify", "--index", str(tmp_path / "idx")])
    assert bad.exit_code == 1 and "cells.npy" in bad.output


def test_index_build_refuses_a_working_directory_before_encoding(tmp_path):
    from typer.testing import CliRunner

    from components.cli import app

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('mine')")
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    result = CliRunner().invoke(
        app,
        [
            "index",
            "build",
            "--out",
            str(tmp_path),
            "--params",
            str(params),
            "--model",
            str(tmp_path / "no-model"),
        ],
    )
    assert result.exit_code == 2 and "holds no region index" in result.output
    assert (tmp_path / "src" / "main.py").read_text() == "print('mine')"
