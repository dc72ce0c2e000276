"""Killing an index build takes its encoder worker processes with it (no orphans)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]

# The build's encode step on many pages (the tiny corpus repeated), so it is mid-run when killed.
_BUILD = """
import sys
from pathlib import Path
from components.data.corpus import load_corpus
from components.index import parallel_encode
corpus = load_corpus(Path(sys.argv[1]))
parallel_encode.PART_PAGES = 4
print("STARTED", flush=True)
parallel_encode.encode_pages_in_processes(corpus, list(corpus.pages) * 40, Path(sys.argv[2]), workers=2)
"""


@pytest.fixture(scope="module")
def model_dir(tiny_params, tmp_path_factory) -> Path:
    from components.model.io import save_retriever
    from components.model.retriever import build_retriever

    model = build_retriever(tiny_params.model)
    model.eval()
    out = tmp_path_factory.mktemp("retriever")
    save_retriever(model, out)
    return out


def _gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [
            p
            for p in alive
            if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        time.sleep(0.2)
    return alive


@pytest.mark.slow
def test_killed_index_build_leaves_no_encoder_processes(tiny_corpus, model_dir):
    build = subprocess.Popen(
        [sys.executable, "-c", _BUILD, str(tiny_corpus.root), str(model_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    workers: list[int] = []
    try:
        assert build.stdout.readline().strip() == "STARTED"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(workers) < 2:  # both encoders started
            workers = [
                c.pid
                for c in psutil.Process(build.pid).children(recursive=True)
                if "resource_tracker" not in " ".join(c.cmdline())
            ]
            time.sleep(0.2)
        assert len(workers) >= 2, "the build never started its encoder processes"
        time.sleep(3)  # past the workers' start-up: they are encoding
        os.kill(build.pid, signal.SIGKILL)  # no cleanup handler of the parent runs
        build.wait(timeout=30)
        assert _gone(workers, 20) == []
    finally:
        for pid in workers:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
        if build.poll() is None:
            os.killpg(build.pid, signal.SIGKILL)
