"""Real pages in training (``data.real_train_dir``, ADR 23): a folder of documents plus the
questions derived from them (``scripts/real_docs.py``'s train split, or any folder in the import
format) joins the training corpus.

The folder goes through ``regionops import``'s own path into a cache under
``$REGIONOPS_HOME/real_train/<digest>`` (imported once per folder content and import settings),
with its own train/val split per document and no test share, so real val pages also count in the
fused val metric the export selects on. Questions marked ``labelled: false`` keep no training box
and go through pseudo-labels. Never point this at the real dev set: that is the judge.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from components.config import Params
from components.data.corpus import Corpus, load_corpus, safe_join
from components.data.schema import Page


class JoinedCorpus(Corpus):
    """Pages of several corpus folders; each page's image resolves against its own folder."""

    def __init__(self, parts: list[Corpus]):
        ids = [p.id for part in parts for p in part.pages]
        if len(ids) != len(set(ids)):
            raise ValueError(
                "joined corpora share page ids: the real training folder collides with the corpus"
            )
        self._roots = {p.id: part.root for part in parts for p in part.pages}
        super().__init__(
            root=parts[0].root,
            pages=[p for part in parts for p in part.pages],
            questions=[q for part in parts for q in part.questions],
        )

    def image_path(self, page: Page) -> Path:
        return safe_join(self._roots.get(page.id, self.root), page.image)


def _folder_digest(docs: Path, questions: Path, params: Params) -> str:
    digest = hashlib.sha256(
        json.dumps(params.data.model_dump(mode="json"), sort_keys=True).encode()
    )
    digest.update(str(params.seed).encode())
    for path in sorted(p for p in docs.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(docs)}:{path.stat().st_size}".encode())
    digest.update(questions.read_bytes())
    return digest.hexdigest()[:16]


def real_training_corpus(params: Params, home: Path) -> Corpus | None:
    """The imported real training folder (None when ``data.real_train_dir`` is unset)."""
    if not params.data.real_train_dir:
        return None
    from components.data.importer import import_documents

    folder = Path(params.data.real_train_dir)
    docs, questions = folder / "docs", folder / "questions.jsonl"
    if not docs.is_dir() or not questions.is_file():
        raise FileNotFoundError(f"data.real_train_dir={folder}: needs docs/ and questions.jsonl")
    import_params = params.model_copy(
        update={"data": params.data.model_copy(update={"test_fraction": 0.0})}
    )
    cache = Path(home) / "real_train" / _folder_digest(docs, questions, import_params)
    if not (cache / "corpus" / "pages.jsonl").is_file():
        import_documents(docs, questions, cache / "corpus", import_params, collection="real_train")
    return load_corpus(cache / "corpus")


def with_real_pages(corpus: Corpus, params: Params, home: Path) -> Corpus:
    """``corpus`` joined with the real training folder's pages and questions, if one is set."""
    real = real_training_corpus(params, home)
    return corpus if real is None else JoinedCorpus([corpus, real])
