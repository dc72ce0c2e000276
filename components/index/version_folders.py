"""The region index folder's housekeeping: what the index owns there, its lock, its checksums.

An index folder holds ``CURRENT`` and version folders ``v-<time>-<hex8>``; a save writes a new
version next to the live one and then repoints ``CURRENT`` (region_index.RegionIndex.save). The
rules kept here:

* Only what the index itself wrote is ever deleted: a version folder (or a crashed save's
  ``.v-….tmp`` folder) is recognised by its name pattern AND the marker file written into it
  first; a crashed pointer swap's ``.CURRENT.v-….tmp`` by its name and its content. Anything else
  in the folder is left alone, and a non-empty folder that is not an index is refused outright
  (``regionops index build --out .`` must not wipe a working directory).
* One save at a time per folder: a file lock (``filelock``: an OS lock, released if the saving
  process dies). Cleanup runs under it, so it never removes a version another save is writing,
  and it always keeps the version ``CURRENT`` names.
* Every file of a version has its sha256 in the manifest; ``verify_files`` names the first file
  that is missing, truncated or altered.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
LOCK_NAME = ".regionops-index.lock"
MARKER_NAME = ".regionops-index-version"  # written first into every version folder a save creates
MANIFEST_FORMAT = "regionops-region-index"
_VERSION = r"v-\d{8}T\d{6}-[0-9a-f]{8}"
_VERSION_RE = re.compile(rf"^{_VERSION}$")
_TMP_DIR_RE = re.compile(rf"^\.({_VERSION})\.tmp$")
_TMP_POINTER_RE = re.compile(rf"^\.{CURRENT}\.({_VERSION})\.tmp$")
# Seconds between "still waiting" log lines while another save holds the folder's lock.
_LOCK_LOG_EVERY = 30.0


class UnsafeIndexTargetError(ValueError):
    """The folder given for an index holds content the index did not write."""


class ChecksumMismatchError(ValueError):
    """A version file is missing or its bytes differ from the sha256 its manifest records."""


def new_version_name() -> str:
    return f"v-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


def is_version_name(name: str) -> bool:
    return bool(_VERSION_RE.match(name))


def temp_folder(out_dir: Path, version: str) -> Path:
    return out_dir / f".{version}.tmp"


def temp_pointer(out_dir: Path, version: str) -> Path:
    return out_dir / f".{CURRENT}.{version}.tmp"


def mark_version(folder: Path, version: str) -> None:
    """Claim ``folder`` as the index's own before anything else is written into it."""
    (folder / MARKER_NAME).write_text(version + "\n", "utf-8")


def _marked(folder: Path, version: str) -> bool:
    marker = folder / MARKER_NAME
    if marker.is_file():
        return marker.read_text("utf-8").strip() == version
    # A version saved before markers existed: its manifest names the index format.
    manifest = folder / "manifest.json"
    try:
        return manifest.is_file() and f'"format": "{MANIFEST_FORMAT}"' in manifest.read_text(
            "utf-8"
        )
    except (OSError, UnicodeDecodeError):
        return False


def owned_entry(path: Path) -> bool:
    """True for the entries of an index folder that the index itself wrote."""
    name = path.name
    if name in (CURRENT, LOCK_NAME):
        return path.is_file() and not path.is_symlink()
    if path.is_symlink():
        return False
    if path.is_dir():
        match = _VERSION_RE.match(name) or _TMP_DIR_RE.match(name)
        version = match.group(1) if match and match.groups() else name
        return bool(match) and _marked(path, version)
    pointer = _TMP_POINTER_RE.match(name)
    if pointer and path.is_file() and path.stat().st_size < 256:
        return path.read_text("utf-8", "replace").strip() == pointer.group(1)
    return False


def is_index_folder(out_dir: Path) -> bool:
    return (out_dir / CURRENT).is_file() or any(
        owned_entry(p) and p.name != LOCK_NAME for p in out_dir.iterdir()
    )


def check_target(out_dir: Path) -> None:
    """Refuse an existing folder that is neither empty nor already a region index."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UnsafeIndexTargetError(f"{out_dir} is not a folder")
    entries = [p for p in out_dir.iterdir() if p.name != LOCK_NAME]
    if entries and not is_index_folder(out_dir):
        shown = ", ".join(sorted(p.name for p in entries)[:5])
        raise UnsafeIndexTargetError(
            f"{out_dir} is not empty and holds no region index ({shown}…): refusing to write an "
            "index there, since saving replaces the folder's versions. Give an empty or new folder."
        )


@contextmanager
def index_lock(out_dir: Path) -> Iterator[None]:
    """Hold the folder's save lock; waits (logging) while another save holds it."""
    lock = FileLock(str(out_dir / LOCK_NAME))
    waited = 0.0
    while True:
        try:
            lock.acquire(timeout=_LOCK_LOG_EVERY)
            break
        except Timeout:
            waited += _LOCK_LOG_EVERY
            log.warning(
                "index %s: another save holds %s; waited %.0f s", out_dir, LOCK_NAME, waited
            )
    try:
        yield
    finally:
        lock.release()


def remove_stale(out_dir: Path, keep: str) -> list[str]:
    """Delete older versions and crashed saves' debris the index wrote; call under ``index_lock``.

    Keeps ``keep`` and whatever ``CURRENT`` names (they are the same unless something outside
    the lock moved it), and everything the index did not write.
    """
    pointer = out_dir / CURRENT
    live = pointer.read_text("utf-8").strip() if pointer.is_file() else keep
    removed = []
    for child in out_dir.iterdir():
        if child.name in (keep, live, CURRENT, LOCK_NAME) or not owned_entry(child):
            continue
        shutil.rmtree(child) if child.is_dir() else child.unlink()
        removed.append(child.name)
    return removed


def file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_checksums(folder: Path) -> dict[str, str]:
    """sha256 of every data file in a version folder (the manifest and marker excluded)."""
    return {
        p.name: file_digest(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name not in ("manifest.json", MARKER_NAME)
    }


def verify_files(folder: Path, checksums: dict[str, str]) -> None:
    """Raise ``ChecksumMismatchError`` naming the first file missing or altered."""
    for name, expected in sorted(checksums.items()):
        path = folder / name
        if "/" in name or not path.is_file():
            raise ChecksumMismatchError(f"{path}: missing (the manifest lists it)")
        if file_digest(path) != expected:
            raise ChecksumMismatchError(
                f"{path}: contents differ from the sha256 in the manifest (truncated or altered)"
            )
