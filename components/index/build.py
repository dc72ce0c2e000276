"""Build or extend the region index from a corpus and an exported retriever (``regionops index ...``)."""

from __future__ import annotations

import time
from pathlib import Path

from components.config import Params
from components.data.corpus import Corpus
from components.index.region_index import PageMeta, RegionIndex


def retriever_dir(model_dir: Path) -> Path:
    """``<model_dir>/retriever`` (the training export layout), or ``model_dir`` itself if it is the export."""
    model_dir = Path(model_dir)
    nested = model_dir / "retriever"
    return nested if (nested / "config.json").is_file() else model_dir


def page_metas(corpus: Corpus, pages) -> list[PageMeta]:
    """Index metadata of ``pages``, each with its pictures described from its rendered image."""
    return [PageMeta.from_page(p, corpus.load_image(p)) for p in pages]


def _encode(params: Params, corpus: Corpus, pages, model_dir: Path, progress: bool = True):
    from components.index.parallel_encode import effective_workers, encode_pages_in_processes
    from components.model.encode import encode_pages
    from components.model.io import load_retriever

    model = load_retriever(retriever_dir(model_dir))
    workers = effective_workers(len(pages), params.index.encode_workers)
    start = time.perf_counter()
    if workers > 1:
        cells = encode_pages_in_processes(
            corpus,
            list(pages),
            retriever_dir(model_dir),
            workers,
            params.index.encode_threads,
            progress=progress,
        )
    else:
        cells = encode_pages(
            model, corpus, pages, progress=progress, threads=params.index.encode_threads
        )
    seconds = time.perf_counter() - start
    return model, cells, seconds


def build_index(params: Params, corpus: Corpus, model_dir: Path, out_dir: Path) -> dict:
    """Encode every page of ``corpus`` (already filtered to accepted pages), build, save atomically."""
    pages = list(corpus.pages)
    if not pages:
        raise ValueError(f"corpus {corpus.root} has no pages to index")
    model, cells, seconds = _encode(params, corpus, pages, model_dir)
    index = RegionIndex.build(
        page_metas(corpus, pages),
        cells,
        params.index,
        model.fingerprint,
        model.grid,
        seed=params.seed,
    )
    folder = index.save(Path(out_dir))
    stats = index.stats()
    stats.update(
        {
            "path": str(folder),
            "encode_seconds": round(seconds, 3),
            "encode_pages_per_s": round(len(pages) / max(seconds, 1e-9), 2),
        }
    )
    return stats


def add_to_index(params: Params, corpus: Corpus, model_dir: Path, index_dir: Path) -> dict:
    """Encode the corpus pages the index lacks and add them incrementally (no rebuild)."""
    from components.model.io import read_retriever_config

    fingerprint = read_retriever_config(retriever_dir(model_dir))["fingerprint"]
    index = RegionIndex.load(Path(index_dir), expected_fingerprint=fingerprint)
    new_pages = [p for p in corpus.pages if not index.has_page(p.id)]
    if new_pages:
        _, cells, _ = _encode(params, corpus, new_pages, model_dir)
        index.add(page_metas(corpus, new_pages), cells)
        index.save(Path(index_dir))
    return {"added": len(new_pages), **index.stats()}


def delete_from_index(index_dir: Path, doc: str) -> dict:
    """Remove one document's pages and save atomically."""
    index = RegionIndex.load(Path(index_dir))
    removed = index.delete_doc(doc)
    if removed:
        index.save(Path(index_dir))
    return {"removed": removed, "doc": doc, **index.stats()}
