"""Same figures before and after a training refactor: train the tests' tiny retriever and reader
(seeded, CPU) in a fresh REGIONOPS_HOME and print their run records' steps and final metrics.

Run it against two checkouts and diff the output, e.g. (issue 30, the one Lightning runner):
    git archive <old> | tar -x -C /dev/shm/old
    PYTHONPATH=/dev/shm/old python scripts/experiments/runner_equivalence.py > old.json
    PYTHONPATH=$PWD python scripts/experiments/runner_equivalence.py > new.json
    diff old.json new.json
``train_contexts`` is the reader's context source (``retrieved`` also exercises the retrieval step).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(train_contexts: str = "retrieved") -> dict:
    root = Path(tempfile.mkdtemp(prefix="runner-equivalence-"))
    os.environ["REGIONOPS_HOME"] = str(root / "home")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import TINY_OVERRIDES

    from components.config import load_params
    from components.data.corpus import load_corpus
    from components.data.synthetic import generate_corpus
    from components.index.build import build_index
    from components.reader.train import train_reader
    from components.settings import configure_environment
    from components.training.train import train_retriever

    settings = configure_environment()
    params = load_params(
        REPO / "params.yaml",
        [*TINY_OVERRIDES, f"reader.train_contexts={train_contexts}", "reader.real_train_dir=null"],
    )
    generate_corpus(params, root / "corpus")
    corpus = load_corpus(root / "corpus")
    retriever = train_retriever(params, corpus, root / "model", settings)
    build_index(params, corpus, root / "model", root / "index")
    reader, _ = train_reader(
        params, corpus, root / "model", root / "index", root / "reader", settings
    )
    keep = ("steps", "exported_step", "final", "fingerprint", "counts")
    return {
        "retriever": {k: retriever.get(k) for k in keep},
        "reader": {k: reader.get(k) for k in keep},
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:]), indent=2, sort_keys=True))
