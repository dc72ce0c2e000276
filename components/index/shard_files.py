"""The shard file format of sharded page encoding: cell vectors [n, G*G, dim] and their page ids
in one safetensors file (no pickle), written atomically.

Both the process pool on one machine (parallel_encode) and the sharded build (shards) write and
read these files; keeping the format here, apart from the build, keeps the index package free of
import circles.
"""

from __future__ import annotations

import os
import tempfile
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

CELLS_KEY = "cells"


def shard_page_ids(page_ids: list[Any], n_shards: int) -> list[list[Any]]:
    """Contiguous, near-equal shards in the given order (empty shards are dropped)."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    bounds = np.linspace(0, len(page_ids), n_shards + 1).round().astype(int)
    return [page_ids[a:b] for a, b in pairwise(bounds) if b > a]


def write_shard(out_file: Path, cells: np.ndarray, page_ids: list[str], fingerprint: str) -> None:
    """Cells [n, G*G, dim] and their page ids as one safetensors file, written atomically."""
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_file.parent, prefix=f".{out_file.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(
            {CELLS_KEY: np.ascontiguousarray(cells)},
            tmp,
            metadata={"pages": "\n".join(page_ids), "fingerprint": fingerprint},
        )
        os.replace(tmp, out_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_shard(path: Path) -> tuple[list[str], np.ndarray]:
    """(page ids, cells) of one shard file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        page_ids = (fh.metadata() or {}).get("pages", "").split("\n")
    return page_ids, load_file(str(path))[CELLS_KEY]
