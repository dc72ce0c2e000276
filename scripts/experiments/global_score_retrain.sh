#!/bin/sh
# ADR 28's paired retrain: the same code, corpus, seed and budget, trained with each
# train.global_score, each exported model then scored on a real folder (all six systems).
# Usage: sh scripts/experiments/global_score_retrain.sh DOCS QUESTIONS REGIONS_FROM OUT [STEPS]
#   DOCS/QUESTIONS: a real dev set (scripts/realdocs.py); REGIONS_FROM: region settings tuned on
#   real *train* questions (`regionops tune-regions --out`); STEPS defaults to 50.
# Then: python -m scripts.experiments.join_runs OUT/dev-late_interaction/per_question.jsonl
#   OUT/dev-max_cell/per_question.jsonl --suffix @max_cell --out OUT/joined.jsonl
#   and python -m scripts.experiments.paired_systems OUT/joined.jsonl --system regionops_dense
#   --against regionops_dense@max_cell dense_blocks
set -e
DOCS=$1 QUESTIONS=$2 REGIONS_FROM=$3 OUT=$4 STEPS=${5:-50}
: "${DOCS:?usage: DOCS QUESTIONS REGIONS_FROM OUT [STEPS]}" "${OUT:?}"
export REGIONOPS_HOME="$OUT/home"  # private MLflow store and checkpoints: no resume across rules
mkdir -p "$OUT"
for rule in late_interaction max_cell; do
  regionops train --out "$OUT/model-$rule" --set train.global_score=$rule --set train.max_steps="$STEPS"
done
for rule in late_interaction max_cell; do
  regionops evaluate --docs "$DOCS" --questions "$QUESTIONS" --model "$OUT/model-$rule" \
    --regions-from "$REGIONS_FROM" --out "$OUT/dev-$rule"
  python -m scripts.experiments.page_scoring_ab --model "$OUT/model-$rule" --docs "$DOCS" \
    --questions "$QUESTIONS" --work "$OUT/page-scoring-corpus" --out "$OUT/page-scoring-$rule.json"
done
