"""Sharded page encoding for the index build: split the pages, encode each shard anywhere, build once.

Each shard is a pure function of (retriever weights, corpus tables, page ids): it writes its
cell vectors to a safetensors file (atomically) and returns a small JSON-able record, so an
orchestrator can run shards on other processes or machines and cache them by content.
``build_index_from_shards`` stacks the shards in page order and builds the same index as
``build_index`` does from one serial pass.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from components.config import Params
from components.data.corpus import Corpus, load_corpus
from components.index.build import page_metas, retriever_dir
from components.index.region_index import RegionIndex

CELLS_KEY = "cells"


def shard_page_ids(page_ids: list[Any], n_shards: int) -> list[list[Any]]:
    """Contiguous, near-equal shards in the given order (empty shards are dropped)."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    bounds = np.linspace(0, len(page_ids), n_shards + 1).round().astype(int)
    return [page_ids[a:b] for a, b in pairwise(bounds) if b > a]


def model_digest(model_dir: Path) -> str:
    """The exported retriever's fingerprint (sha256 of its weights, checked again at load)."""
    from components.model.io import read_retriever_config

    return read_retriever_config(retriever_dir(Path(model_dir)))["fingerprint"]


def corpus_digest(corpus_dir: Path, accepted: Path | None) -> str:
    """A hash of the corpus tables and the accepted-records list: what the encoded pages depend on."""
    digest = hashlib.sha256()
    for path in (Path(corpus_dir) / "pages.jsonl", accepted):
        if path is not None and Path(path).exists():
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def load_index_corpus(corpus_dir: Path, accepted: Path | None) -> Corpus:
    return load_corpus(corpus_dir, accepted if accepted is not None and Path(accepted).exists() else None)


def encode_shard(corpus_dir: Path, accepted: Path | None, model_dir: Path, page_ids: list[str],
                 out_file: Path, threads: int | None = None) -> dict[str, Any]:
    """Encode ``page_ids`` with the exported retriever on ``threads`` intra-op threads (None: torch's
    default); write float32 cells [n, G*G, dim] to ``out_file``."""
    from components.model.encode import encode_pages
    from components.model.io import load_retriever

    corpus = load_index_corpus(corpus_dir, accepted)
    pages = [corpus.page(pid) for pid in page_ids]
    model = load_retriever(retriever_dir(Path(model_dir)))
    start = time.perf_counter()
    cells = encode_pages(model, corpus, pages, progress=False, threads=threads)
    seconds = time.perf_counter() - start
    write_shard(Path(out_file), cells, page_ids, model.fingerprint)
    return {"file": str(out_file), "pages": len(page_ids), "seconds": round(seconds, 3),
            "fingerprint": model.fingerprint}


def write_shard(out_file: Path, cells: np.ndarray, page_ids: list[str], fingerprint: str) -> None:
    """Cells [n, G*G, dim] and their page ids as one safetensors file, written atomically."""
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_file.parent, prefix=f".{out_file.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({CELLS_KEY: np.ascontiguousarray(cells)}, tmp,
                  metadata={"pages": "\n".join(page_ids), "fingerprint": fingerprint})
        os.replace(tmp, out_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_shard(path: Path) -> tuple[list[str], np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        page_ids = (fh.metadata() or {}).get("pages", "").split("\n")
    return page_ids, load_file(str(path))[CELLS_KEY]


def build_index_from_shards(params: Params, corpus: Corpus, model_dir: Path, shard_files: list[Path],
                            out_dir: Path) -> dict[str, Any]:
    """Stack the shards (checked against the corpus page order) and save the index atomically."""
    fingerprint = model_digest(model_dir)
    ids: list[str] = []
    parts: list[np.ndarray] = []
    for path in shard_files:
        page_ids, cells = read_shard(Path(path))
        if len(page_ids) != len(cells):
            raise ValueError(f"shard {path}: {len(page_ids)} page ids for {len(cells)} cell blocks")
        ids += page_ids
        parts.append(cells)
    expected = [p.id for p in corpus.pages]
    if ids != expected:
        raise ValueError(f"shards cover {len(ids)} pages, the corpus has {len(expected)} (or in another order)")
    from components.model.io import read_retriever_config

    grid = read_retriever_config(retriever_dir(Path(model_dir)))["model"]["grid"]
    index = RegionIndex.build(page_metas(corpus, corpus.pages), np.concatenate(parts), params.index,
                              fingerprint, grid, seed=params.seed)
    folder = index.save(Path(out_dir))
    return {**index.stats(), "path": str(folder), "shards": len(shard_files)}
