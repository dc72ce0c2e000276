"""Page encoding in worker processes (index.encode_workers, ADR 15) gives the serial features."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from components.index.parallel_encode import (
    MIN_PAGES_PER_WORKER,
    effective_workers,
    encode_pages_in_processes,
)


def test_small_corpora_do_not_start_workers():
    assert effective_workers(10, 2) == 1
    assert effective_workers(MIN_PAGES_PER_WORKER * 2 - 1, 2) == 1
    assert effective_workers(MIN_PAGES_PER_WORKER * 2, 2) == 2
    assert effective_workers(10_000, 2) == 2
    assert effective_workers(10_000, 1) == 1


@pytest.fixture(scope="module")
def model_dir(tiny_params, tmp_path_factory) -> Path:
    from components.model.io import save_retriever
    from components.model.retriever import build_retriever

    model = build_retriever(tiny_params.model)
    model.eval()
    out = tmp_path_factory.mktemp("retriever")
    save_retriever(model, out)
    return out


def test_processes_encode_what_one_process_encodes(tiny_corpus, model_dir, monkeypatch):
    from components.index import parallel_encode
    from components.model.encode import encode_pages
    from components.model.io import load_retriever

    monkeypatch.setattr(
        parallel_encode, "PART_PAGES", 5
    )  # several parts per worker, finished out of order
    pages = list(tiny_corpus.pages)
    serial = encode_pages(load_retriever(model_dir), tiny_corpus, pages, progress=False, threads=1)
    parallel = encode_pages_in_processes(
        tiny_corpus, pages, model_dir, workers=2, threads=1, progress=False
    )
    assert parallel.shape == serial.shape and parallel.dtype == np.float32
    np.testing.assert_allclose(parallel, serial, atol=1e-5)


def test_a_failing_worker_fails_the_encode(tiny_corpus, model_dir, tmp_path):
    from components.data.corpus import Corpus

    # A copy of the corpus whose second page lost its image: the worker's error reaches the caller.
    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus.root, root)
    pages = list(tiny_corpus.pages)[:4]
    (root / pages[1].image).unlink()
    broken = Corpus(root=root, pages=pages, questions=[])
    with pytest.raises(FileNotFoundError):
        encode_pages_in_processes(broken, pages, model_dir, workers=2, threads=1, progress=False)
