"""The benchmark's corpus: generated, its retriever loaded, its pages encoded as the index build
encodes them, its questions picked. Shared by ``make bench`` (components.bench) and the A/B
experiments in scripts/experiments/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.config import Params
from components.data.corpus import load_corpus


def load_retriever_or_fresh(params: Params, model_dir: Path | None):
    """The trained retriever when there is one; otherwise a freshly initialised one (flagged)."""
    from components.model.io import load_retriever, retriever_dir
    from components.model.retriever import build_retriever

    if model_dir is not None and (retriever_dir(model_dir) / "config.json").exists():
        return load_retriever(retriever_dir(model_dir)), True
    model = build_retriever(params.model)
    model.eval()
    return model, False


def export_dir(model, model_dir: Path | None, scratch: Path) -> Path:
    """An exported retriever folder worker processes can load: the trained one, or ``model`` saved to ``scratch``."""
    from components.model.io import retriever_dir, save_retriever

    if model_dir is not None:
        return retriever_dir(model_dir)
    save_retriever(model, scratch)
    return scratch


def encode_all(
    model, corpus, pages: list, export: Path, workers: int, threads: int, progress: bool = True
) -> np.ndarray:
    """The index build's encoding path (components/index/build.py): ``workers`` processes, or this one."""
    from components.index.parallel_encode import encode_pages_in_processes
    from components.model.encode import encode_pages

    if workers > 1:
        return encode_pages_in_processes(corpus, pages, export, workers, threads, progress=progress)
    return encode_pages(model, corpus, pages, progress=progress, threads=threads)


def spread(items: list, n: int) -> list:
    """Up to ``n`` items evenly spaced over the list (questions are stored page by page)."""
    if len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def bench_questions(corpus, page_ids: set[str], max_queries: int) -> tuple[list, int]:
    """Text questions with a gold box on the given pages, spread to ``max_queries``; and how many there were."""
    available = [
        q for q in corpus.questions if q.page_id in page_ids and q.box and not q.query_image
    ]
    return spread(available, max_queries), len(available)


def synthetic_corpus(params: Params, n_pages: int, root: Path) -> tuple[object, dict]:
    """A generated corpus of about ``n_pages`` pages in ``root``, loaded, and the generator's report."""
    from components.data.synthetic import generate_corpus

    gen_params = params.model_copy(deep=True)
    gen_params.data.n_docs = max(1, round(n_pages / ((1 + params.data.max_pages_per_doc) / 2)))
    report = generate_corpus(gen_params, root)
    return load_corpus(root), report
