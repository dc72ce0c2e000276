#!/bin/sh
# Issue 26's seed runs: the retriever `make run` trains (params.yaml as it stands, plus any
# --set in SETS), retrained with each seed and scored on a real folder (all six systems).
# Usage: sh scripts/experiments/retriever_seeds.sh DOCS QUESTIONS REGIONS_FROM OUT SEED...
#   DOCS/QUESTIONS: a real dev set (scripts/realdocs.py); REGIONS_FROM: region settings tuned on
#   real *train* questions; SETS (env, optional): extra overrides, e.g.
#   SETS="train.local_loss=none" for the global-only ablation.
# Then: python -m scripts.experiments.seed_runs_paired OUT/dev-seed*/per_question.jsonl
set -e
DOCS=$1 QUESTIONS=$2 REGIONS_FROM=$3 OUT=$4
: "${DOCS:?usage: DOCS QUESTIONS REGIONS_FROM OUT SEED...}" "${OUT:?}"
shift 4
[ $# -gt 0 ] || { echo "give at least one seed" >&2; exit 2; }
export REGIONOPS_HOME="$OUT/home"  # private MLflow store and checkpoints: no resume across seeds
mkdir -p "$OUT"
extra=""
for s in $SETS; do extra="$extra --set $s"; done
for seed in "$@"; do
  # shellcheck disable=SC2086  # $extra is a list of --set options
  regionops train --out "$OUT/model-seed$seed" --set seed="$seed" $extra
  regionops evaluate --docs "$DOCS" --questions "$QUESTIONS" --model "$OUT/model-seed$seed" \
    --regions-from "$REGIONS_FROM" --out "$OUT/dev-seed$seed"
done
