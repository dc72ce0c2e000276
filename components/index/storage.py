"""Persistence of the region index: versioned folders, fsync, a manifest with checksums (no pickle).

On disk (all safe formats)::

    <dir>/CURRENT             name of the live version folder (replaced atomically)
    <dir>/v-<id>/manifest.json  fingerprint, grid, dim, params, sha256 of every file
    <dir>/v-<id>/pages.json     per-page metadata and text layer
    <dir>/v-<id>/cells.npy      stored cell codes, [N, G*G, ...] (every storage mode)
    <dir>/v-<id>/pooled.npy     float32 pooled page vectors [N, dim] ([N, 0] unless candidate_vectors=pooled)
    <dir>/v-<id>/candidates.faiss   the candidate stage (candidate_stages/)
    <dir>/v-<id>/...            each storage mode's and stage's own parts (storage_modes/, candidate_stages/)

A save writes a new version folder, fsyncs it and atomically repoints CURRENT; saves to one folder
take turns, and only versions and debris the index wrote are ever deleted (version_folders). The
manifest records the index parameters; a manifest of before the per-mode sections (issue 30)
records them flat, and ``upgrade_index_params`` reads those.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from components.config import IndexParams, upgrade_index_params
from components.index.errors import FingerprintMismatchError, IndexError_, IndexFormatError
from components.index.version_folders import (
    CURRENT,
    ChecksumMismatchError,
    check_target,
    file_checksums,
    index_lock,
    mark_version,
    new_version_name,
    remove_stale,
    temp_folder,
    temp_pointer,
    verify_files,
)

# The index class load_index builds (RegionIndex; passed in, so this module never imports it).
IndexT = TypeVar("IndexT")

FORMAT_VERSION = 1
FORMAT_NAME = "regionops-region-index"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bytes_synced(path: Path, write) -> None:
    with open(path, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def read_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def save_index(index: Any, out_dir: Path) -> Path:
    """Write a new version folder of ``index`` (a RegionIndex), fsync it, then atomically repoint
    CURRENT; returns the folder.

    A crash at any point before the CURRENT swap leaves the previous version live; a leftover
    half-written version is removed by the next successful save. Saves to one folder take
    turns (a file lock), and only versions and debris the index wrote are ever deleted; a
    non-empty folder that is not an index is refused (version_folders).
    """
    out_dir = Path(out_dir)
    check_target(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with index_lock(out_dir):
        version = new_version_name()
        tmp = temp_folder(out_dir, version)
        tmp.mkdir()
        try:
            mark_version(tmp, version)
            write_parts(index, tmp)
            _fsync_dir(tmp)
            final = out_dir / version
            os.replace(tmp, final)
            pointer = temp_pointer(out_dir, version)
            _write_bytes_synced(pointer, lambda fh: fh.write(version.encode()))
            os.replace(pointer, out_dir / CURRENT)
            _fsync_dir(out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        remove_stale(out_dir, keep=version)  # older versions and debris of crashed saves
    return final


def write_parts(index: Any, folder: Path) -> None:
    """Every part of ``index`` into ``folder``, fsynced; the manifest last."""

    def write(name: str, data: np.ndarray | bytes) -> None:
        if isinstance(data, np.ndarray):
            _write_bytes_synced(folder / name, lambda fh: np.save(fh, data, allow_pickle=False))
        else:
            _write_bytes_synced(folder / name, lambda fh: fh.write(data))

    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fingerprint": index.fingerprint,
        "grid": index.grid,
        "dim": index.dim,
        "n_pages": len(index.metas),
        "params": index.params.model_dump(mode="json"),
    }
    write("cells.npy", index.cells)
    write("pooled.npy", index.pooled)
    write("pages.json", json.dumps([asdict(m) for m in index.metas], ensure_ascii=False).encode())
    index.stage.write_parts(write)
    index.storage_mode.write_parts(write)
    manifest["files"] = file_checksums(folder)  # sha256 per file, checked on load
    # The manifest goes last: a version folder without it is never treated as complete.
    write("manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())


def load_index(
    cls: type[IndexT], index_dir: Path, expected_fingerprint: str | None = None, verify: bool = True
) -> IndexT:
    """Load the version ``CURRENT`` names; with ``verify`` every file's sha256 is checked first.

    Damage (byte flips, truncation, bad JSON, a missing file) raises ``IndexFormatError``
    naming the file.
    """
    index_dir = Path(index_dir)
    pointer = index_dir / CURRENT
    if not pointer.is_file():
        raise IndexFormatError(
            f"{index_dir} holds no region index ({CURRENT} missing): run `regionops index build`"
        )
    version = pointer.read_text().strip()
    folder = index_dir / version
    if "/" in version or not (folder / "manifest.json").is_file():
        raise IndexFormatError(
            f"{index_dir}: {CURRENT} points at an incomplete version {version!r}"
        )

    def part(name: str, read: Callable[[Path], Any]):
        try:
            return read(folder / name)
        except IndexError_:
            raise
        except (ValueError, KeyError, TypeError, RuntimeError, OSError, EOFError) as exc:
            raise IndexFormatError(
                f"{folder / name}: unreadable ({type(exc).__name__}: {exc}); rebuild the index"
            ) from exc

    manifest = part("manifest.json", lambda p: json.loads(p.read_text("utf-8")))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
        raise IndexFormatError(f"{folder / 'manifest.json'}: not an index manifest")
    if verify and "files" in manifest:  # indexes saved before checksums have none to check
        try:
            verify_files(folder, manifest["files"])
        except ChecksumMismatchError as exc:
            raise IndexFormatError(f"{exc}; rebuild the index") from exc
    # Errors past the per-file reads (a key the manifest lacks, parts that do not fit) name
    # the manifest, which describes them.
    return part(
        "manifest.json",
        lambda _: _from_parts(cls, folder, manifest, index_dir, expected_fingerprint, part),
    )


def _from_parts(
    cls: type[IndexT],
    folder: Path,
    manifest: dict,
    index_dir: Path,
    expected_fingerprint: str | None,
    part,
) -> IndexT:
    from components.index.pages import PageMeta

    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(
            f"{folder}: format version {manifest.get('format_version')} != {FORMAT_VERSION}; rebuild the index"
        )
    if expected_fingerprint is not None and manifest["fingerprint"] != expected_fingerprint:
        raise FingerprintMismatchError(
            f"index {index_dir} was built by encoder {manifest['fingerprint'][:16]}…, "
            f"but the query encoder is {expected_fingerprint[:16]}…: its cell vectors would be "
            "meaningless for these queries. Rebuild it with `regionops index build`."
        )
    params = IndexParams.model_validate(upgrade_index_params(manifest["params"]))
    index = cls(params, manifest["grid"], manifest["dim"], manifest["fingerprint"])
    cells = part("cells.npy", read_npy)
    # An index saved when every mode kept them drops the unused mean vectors.
    index.pooled = part("pooled.npy", read_npy)[:, : index.stage.pooled_width]
    index.metas = part(
        "pages.json", lambda p: [PageMeta(**m) for m in json.loads(p.read_text("utf-8"))]
    )
    for m in index.metas:  # an index saved before blocks were stored: group them from the words
        if not m.blocks and m.words:
            from components.data.layout import blocks_from_words

            m.blocks = [list(b.box) for b in blocks_from_words(m.page_id, m.words)]
    index._pos = {m.page_id: i for i, m in enumerate(index.metas)}
    index.storage_mode.read_parts(part, cells, folder)
    index.stage.read_parts(part, index, folder)
    if len(index.metas) != manifest["n_pages"] or len(index.cells) != len(index.metas):
        raise IndexFormatError(f"{folder}: parts disagree on the page count; rebuild the index")
    return index
