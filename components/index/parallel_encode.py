"""Page encoding spread over worker processes on one machine (``index.encode_workers``, ADR 15).

One process on one intra-op thread is the fastest way to run the encoder on a shared machine
(ADR 11), so the second core is used by a second process rather than a second thread. Each
worker loads the exported retriever once, encodes parts of the page list and writes each part's
cell vectors to a shard file (``shard_files.write_shard``); the parent stacks them in page order. The
features do not depend on how the pages were split (tests/model/test_parallel_encode.py).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from components.data.corpus import Corpus
from components.data.schema import Page
from components.index.shard_files import read_shard, shard_page_ids, write_shard

# A worker costs a process start plus a model load (~5 s here); below this many pages per worker
# one process is faster, so small corpora (tests, `make run`'s pipeline on 450 pages) stay serial-ish.
MIN_PAGES_PER_WORKER = 64
# Pages per part: parts are what the progress bar counts and what a fast worker picks up next.
PART_PAGES = 128

_worker: dict = {}  # per worker process: the loaded retriever


def effective_workers(n_pages: int, workers: int) -> int:
    """How many processes are worth starting for ``n_pages`` (at least 1)."""
    return max(1, min(int(workers), n_pages // MIN_PAGES_PER_WORKER))


def _init_worker(model_dir: str, threads: int, parent_pid: int) -> None:
    import torch

    from components.index.worker_guard import die_with_parent
    from components.model.io import load_retriever

    die_with_parent(parent_pid)  # a killed build must not leave encoders running

    torch.set_num_threads(threads)
    _worker["model"] = load_retriever(Path(model_dir))


def _encode_part(root: str, pages_file: str, out_file: str) -> int:
    from components.model.encode import encode_pages

    pages = [
        Page.model_validate_json(line) for line in Path(pages_file).read_text("utf-8").splitlines()
    ]
    corpus = Corpus(root=Path(root), pages=pages, questions=[])
    model = _worker["model"]
    write_shard(
        Path(out_file),
        encode_pages(model, corpus, pages, progress=False),
        [p.id for p in pages],
        model.fingerprint,
    )
    return len(pages)


def _read_part(path: Path, expected_ids: list[str]) -> np.ndarray:
    ids, cells = read_shard(path)
    if ids != expected_ids:
        raise RuntimeError(f"{path}: a worker encoded other pages than it was given")
    return cells


def encode_pages_in_processes(
    corpus: Corpus,
    pages: list[Page],
    model_dir: Path,
    workers: int,
    threads: int = 1,
    progress: bool = True,
) -> np.ndarray:
    """float32 [N, G*G, dim] cell vectors of ``pages`` (in order), encoded by ``workers`` processes
    each running the exported retriever in ``model_dir`` on ``threads`` intra-op threads."""
    if not pages:
        raise ValueError("no pages to encode")
    parts = shard_page_ids(pages, max(workers, math.ceil(len(pages) / PART_PAGES)))
    # spawn, not fork: a forked child inherits torch's OpenMP pool mid-state and can hang.
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="regionops-encode-") as tmp:
        jobs = []
        for k, part in enumerate(parts):
            pages_file = Path(tmp) / f"part-{k}.jsonl"
            pages_file.write_text("\n".join(p.model_dump_json() for p in part), "utf-8")
            jobs.append((str(pages_file), str(Path(tmp) / f"part-{k}.safetensors")))
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(str(model_dir), threads, os.getpid()),
        ) as pool:
            futures = {
                pool.submit(_encode_part, str(corpus.root), pf, out): k
                for k, (pf, out) in enumerate(jobs)
            }
            bar = tqdm(
                total=len(pages),
                desc=f"encode pages ({workers} processes)",
                unit="page",
                disable=not (progress and sys.stderr.isatty()),
            )
            for future in as_completed(futures):
                bar.update(future.result())  # re-raises a worker's error here
            bar.close()
        return np.concatenate(
            [_read_part(Path(out), [p.id for p in part]) for (_, out), part in zip(jobs, parts)]
        )
