#!/bin/sh
# Each trained retriever scored on the synthetic corpus's test split as `make run`'s evaluate
# stage scores it (region settings tuned on val; the six systems), with an index of its own.
# Usage: sh scripts/experiments/synthetic_test_of_models.sh OUT MODEL...
#   OUT/<parent>-<model folder>/ (e.g. seeds-model-seed14) gets index/ and eval/ (metrics.json,
#   per_question.jsonl, regions.json).
# Then: python -m scripts.experiments.seed_runs_paired OUT/*/eval/per_question.jsonl
set -e
OUT=$1
: "${OUT:?usage: OUT MODEL...}"
shift
[ $# -gt 0 ] || { echo "give at least one model folder" >&2; exit 2; }
for model in "$@"; do
  name=$(basename "$(dirname "$model")")-$(basename "$model")
  mkdir -p "$OUT/$name"
  regionops index build --model "$model" --out "$OUT/$name/index"
  regionops evaluate --model "$model" --index "$OUT/$name/index" --out "$OUT/$name/eval"
done
