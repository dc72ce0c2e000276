#!/bin/sh
# Re-derive a realdocs set with this checkout's gold code and score this checkout's blocks on it.
# Usage: sh scripts/experiments/gold_ab.sh SET_DIR OUT_DIR   (e.g. /work/data/realdocs/dev .regionops/rd/dev)
set -e
PYTHONPATH=. python scripts/experiments/rederive_questions.py "$1" "$2" > /dev/null
PYTHONPATH=. python scripts/experiments/block_misses.py "$2" --json "$2/misses.json"
