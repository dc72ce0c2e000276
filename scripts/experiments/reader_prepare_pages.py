"""Import + index a real question set for reader experiments (cached; see components/reader/real_pages.py).

    python scripts/experiments/reader_prepare_pages.py --set /work/data/realdocs/train --model /work/main/data/model
    python scripts/experiments/reader_prepare_pages.py --set /work/data/realdocs/dev --model /work/main/data/model --eval

``--eval`` allows a dev set (for scoring only: the cache lands under reader-eval-pages/, which
training never reads).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from components.config import load_params
from components.model.io import load_retriever, retriever_dir
from components.reader import real_pages
from components.settings import configure_environment


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--eval", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    params, settings = load_params(), configure_environment()
    retriever = load_retriever(retriever_dir(args.model))
    cache = settings.home / ("reader-eval-pages" if args.eval else "reader-pages")
    corpus, _ = real_pages.prepare_real_pages(
        params, args.set, args.model, retriever.fingerprint, cache, for_training=not args.eval
    )
    print(f"{len(corpus.pages)} pages, {len(corpus.questions)} questions -> {cache}")


if __name__ == "__main__":
    main()
