"""Region settings (the rule included) tuned on a real question set, for ``--regions-from`` (ADR 27).

Imports the folder and indexes it with the model (both cached under ``--work``, shared with
``region_rules_ab``), then runs the evaluate stage's own tuner (``tune_regions_on``: gold-page
fused heatmaps of the boxed text questions, the full grid, both region rules) and writes
``{"regions": {"chosen": ..., ...}, "table": [...]}``. Tune on the real *train* set (packages never
evaluated), then score dev with the choice:
``python -m scripts.experiments.tune_regions_real --model data/model --docs .regionops/realdocs/train/docs
--questions .regionops/realdocs/train/questions.jsonl --work .regionops/realtrain-work --out reports/regions_real_train.json``
then ``regionops evaluate --docs <dev docs> --questions <dev questions> --model data/model
--regions-from reports/regions_real_train.json --out <dir>``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from components.config import load_params
from components.data.corpus import load_corpus
from components.data.importer import import_documents
from components.evaluation.evaluate import tune_regions_on
from components.index.build import build_index
from components.rag.engine import RagEngine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, type=Path, help="training export (with retriever/)")
    ap.add_argument("--docs", required=True, type=Path)
    ap.add_argument("--questions", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path, help="cache folder: imported corpus + index")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    params = load_params(Path("params.yaml"))
    corpus_dir, index_dir = args.work / "corpus", args.work / "index"
    if not (corpus_dir / "pages.jsonl").is_file():
        import_documents(args.docs, args.questions, corpus_dir, params, collection="eval")
    corpus = load_corpus(corpus_dir)
    if not index_dir.is_dir():
        build_index(params, corpus, args.model, index_dir)
    engine = RagEngine.from_dirs(args.model, index_dir, params)
    tuned = tune_regions_on(params, list(corpus.questions), engine)
    if tuned is None:
        raise SystemExit("no boxed text question with an indexed gold page: nothing to tune on")
    _, record = tuned
    out = {"regions": {"tuned_on": f"{args.questions} ({record['n_tuned']} questions)", **record}}
    print(json.dumps(out, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
