"""Sharded page encoding for the index build: split the pages, encode each shard anywhere, build once.

Each shard is a pure function of (retriever weights, corpus tables, page ids): it writes its
cell vectors to a shard file (shard_files.py, atomically) and returns a small JSON-able record, so an
orchestrator can run shards on other processes or machines and cache them by content.
``build_index_from_shards`` stacks the shards in page order and builds the same index as
``build_index`` does from one serial pass.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from components.config import Params
from components.data.corpus import Corpus, load_corpus
from components.index.build import page_metas, retriever_dir
from components.index.region_index import RegionIndex
from components.index.shard_files import read_shard, shard_page_ids, write_shard

# shard_page_ids is part of this module's interface (flows/scale.py plans shards with it).
__all__ = [
    "build_index_from_shards",
    "corpus_digest",
    "encode_shard",
    "load_index_corpus",
    "model_digest",
    "read_shard",
    "shard_page_ids",
    "write_shard",
]


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
    return load_corpus(
        corpus_dir, accepted if accepted is not None and Path(accepted).exists() else None
    )


def encode_shard(
    corpus_dir: Path,
    accepted: Path | None,
    model_dir: Path,
    page_ids: list[str],
    out_file: Path,
    threads: int | None = None,
) -> dict[str, Any]:
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
    return {
        "file": str(out_file),
        "pages": len(page_ids),
        "seconds": round(seconds, 3),
        "fingerprint": model.fingerprint,
    }


def build_index_from_shards(
    params: Params, corpus: Corpus, model_dir: Path, shard_files: list[Path], out_dir: Path
) -> dict[str, Any]:
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
        raise ValueError(
            f"shards cover {len(ids)} pages, the corpus has {len(expected)} (or in another order)"
        )
    from components.model.io import read_retriever_config

    grid = read_retriever_config(retriever_dir(Path(model_dir)))["model"]["grid"]
    index = RegionIndex.build(
        page_metas(corpus, corpus.pages),
        np.concatenate(parts),
        params.index,
        fingerprint,
        grid,
        seed=params.seed,
    )
    folder = index.save(Path(out_dir))
    return {**index.stats(), "path": str(folder), "shards": len(shard_files)}
