"""Real pages for the reader: a real-PDF question set imported and indexed by the retriever, cached.

The reader trains on span tasks derived from real PDFs' text layers (cloze, definition,
caption, heading; ``components.data.derived_questions``) beside the synthetic questions. Those
pages must be imported (text layer, words) and indexed by the current retriever (cell vectors
for visual tokens; retrieval for the contexts), which takes minutes, so the pair is cached
under ``$REGIONOPS_HOME/reader-pages/<key>``; the key covers the question file, the documents,
the retriever and every non-reader parameter, so any change rebuilds it. A set whose
``summary.json`` names it the dev set (the judge) is refused: the reader never trains on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from components.config import Params

log = logging.getLogger(__name__)
COLLECTION = "realpages"
FORBIDDEN_SETS = ("dev", "test")  # the judge's sets: never reader training data


def resolve_set_dir(path: str | Path, home: Path) -> Path:
    """``path`` as given when absolute, else under ``home`` ($REGIONOPS_HOME)."""
    path = Path(path)
    return path if path.is_absolute() else Path(home) / path


def check_trainable(set_dir: Path) -> None:
    """Refuse a question set that is the judge (summary.json ``set`` dev/test)."""
    summary = Path(set_dir) / "summary.json"
    if summary.is_file():
        name = json.loads(summary.read_text("utf-8")).get("set")
        if name in FORBIDDEN_SETS:
            raise ValueError(
                f"{set_dir} is the real {name} set (the judge): the reader never trains on it"
            )


def pages_key(params: Params, set_dir: Path, retriever_fingerprint: str) -> str:
    """Digest of the questions, the documents (paths, sizes, mtimes), the retriever and non-reader params."""
    h = hashlib.sha256()
    with open(set_dir / "questions.jsonl", "rb") as f:
        h.update(hashlib.file_digest(f, "sha256").digest())
    for pdf in sorted((set_dir / "docs").rglob("*")):
        if pdf.is_file():
            st = pdf.stat()
            h.update(
                f"{pdf.relative_to(set_dir).as_posix()}:{st.st_size}:{st.st_mtime_ns}\n".encode()
            )
    tree = {k: v for k, v in params.to_dict().items() if k != "reader"}
    h.update(
        json.dumps(
            {"params": tree, "retriever": retriever_fingerprint}, sort_keys=True, default=str
        ).encode()
    )
    return h.hexdigest()[:16]


def prepare_real_pages(
    params: Params,
    set_dir: Path,
    model_dir: Path,
    retriever_fingerprint: str,
    cache_root: Path,
    for_training: bool = True,
):
    """(corpus, index) of a real question set (``docs/`` + ``questions.jsonl``), built once per key.

    ``for_training`` refuses the judge's sets (``check_trainable``); scoring passes False.

    Built into a temporary sibling and renamed into place when complete, so a crash never
    leaves half a cache that a later run would trust.
    """
    from components.data.corpus import load_corpus
    from components.data.importer import import_documents
    from components.index.build import build_index
    from components.index.region_index import RegionIndex

    set_dir = Path(set_dir)
    if not (set_dir / "questions.jsonl").is_file() or not (set_dir / "docs").is_dir():
        raise FileNotFoundError(
            f"{set_dir} has no docs/ and questions.jsonl (scripts/real_docs.py builds them)"
        )
    if for_training:
        check_trainable(set_dir)
    final = Path(cache_root) / pages_key(params, set_dir, retriever_fingerprint)
    if not (final / "DONE").is_file():
        tmp = final.with_name(final.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log.warning(
            "reader: importing and indexing the real pages of %s (cached in %s)", set_dir, final
        )
        import_documents(
            set_dir / "docs",
            set_dir / "questions.jsonl",
            tmp / "corpus",
            params,
            collection=COLLECTION,
        )
        build_index(params, load_corpus(tmp / "corpus"), Path(model_dir), tmp / "index")
        (tmp / "DONE").write_text(str(set_dir) + "\n", encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)  # an unfinished earlier build of the same key
        os.replace(tmp, final)
    corpus = load_corpus(final / "corpus")
    return corpus, RegionIndex.load(final / "index", expected_fingerprint=retriever_fingerprint)
