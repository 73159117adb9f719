#!/usr/bin/env bash
# Regenerate the results page: every example, every lane, on its test split.
#   scripts/reproduce.sh            full sizes (the task files' evaluation.limit), every lane
#   scripts/reproduce.sh --quick    4 cases per example, cheap lanes that need no training (the CI
#                                   smoke test: tests/test_reproduce.py)
# Reports land in $OUT (default out/results); the page in docs/results.md (--quick: $OUT/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/results}
COMPOUNDAI=${COMPOUNDAI:-compoundai}
EXAMPLES=(squad_docs_qa banking77 snips_json hh_preferences)
quick=0
[ "${1:-}" = "--quick" ] && quick=1
mkdir -p "$OUT"
for ex in "${EXAMPLES[@]}"; do
  echo "== $ex ($(date -u +%H:%M:%S))" >&2
  start=$SECONDS
  if [ "$quick" = 1 ]; then
    # the lanes that need no training, and of those not the ones whose answers run to the
    # 256-token cap with an untrained model (zero-shot JSON on snips) or that do not apply
    # (rag on hh, which has no documents)
    case $ex in
      snips_json) lanes=rag ;;
      hh_preferences) lanes=prompt ;;
      *) lanes=prompt,rag ;;
    esac
    $COMPOUNDAI --no-progress run "examples/$ex/task.yaml" -o "$OUT/$ex" --limit 4 --lanes "$lanes"
  else
    $COMPOUNDAI run "examples/$ex/task.yaml" -o "$OUT/$ex"
  fi
  # wall time of this example's run (cached answers and adapters make a re-run shorter)
  echo "$((SECONDS - start))" > "$OUT/$ex/wall_seconds"
done
page=docs/results.md
[ "$quick" = 1 ] && page="$OUT/results.md"
python scripts/results_page.py "$OUT" -o "$page"
