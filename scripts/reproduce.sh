#!/usr/bin/env bash
# Regenerate the results page: every example, every lane, on its test split.
#   scripts/reproduce.sh            full sizes (the task files' evaluation.limit), every lane
#   scripts/reproduce.sh --quick    8 cases per example, the lanes that need no training
# Reports land in $OUT (default out/results); the page in docs/results.md (--quick: $OUT/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/results}
COMPOUNDAI=${COMPOUNDAI:-compoundai}
EXAMPLES=(squad_docs_qa banking77 snips_json hh_preferences)
quick=0
[ "${1:-}" = "--quick" ] && quick=1
for ex in "${EXAMPLES[@]}"; do
  echo "== $ex" >&2
  if [ "$quick" = 1 ]; then
    $COMPOUNDAI --no-progress run "examples/$ex/task.yaml" -o "$OUT/$ex" --limit 8 --lanes prompt,rag
  else
    $COMPOUNDAI run "examples/$ex/task.yaml" -o "$OUT/$ex"
  fi
done
page=docs/results.md
[ "$quick" = 1 ] && page="$OUT/results.md"
python scripts/results_page.py "$OUT" -o "$page"
