#!/usr/bin/env bash
# Regenerate the results page: every example, every lane, on its test split.
#   scripts/reproduce.sh                 full sizes (the task files' evaluation.limit), every lane
#   scripts/reproduce.sh EXAMPLE...      only those examples (the page keeps the others' last run);
#                                        also the experiments (snips_json_grpo: sft vs sft+grpo)
#   scripts/reproduce.sh --quick         2 cases per example, cheap lanes that need no training,
#                                        decided by the rules (the CI smoke test:
#                                        tests/test_reproduce.py)
# Reports land in $OUT (default out/results). A full run also records each example's report,
# wall time and commit in docs/results/runs/EXAMPLE/, and the page (docs/results.md) is built
# from those records, so examples run in separate sittings make one page and each section says
# when and at which commit it ran. --quick writes its page to $OUT/results.md only.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/results}
COMPOUNDAI=${COMPOUNDAI:-compoundai}
ALL=(squad_docs_qa banking77 snips_json hh_preferences)
# experiments: named on the command line only (not in a bare run, not in --quick)
EXPERIMENTS=(snips_json_grpo)
quick=0
EXAMPLES=()
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *)
      if [ ! -f "examples/$arg/task.yaml" ]; then
        echo "unknown example '$arg': choose from ${ALL[*]} ${EXPERIMENTS[*]}" >&2
        exit 2
      fi
      EXAMPLES+=("$arg") ;;
  esac
done
[ ${#EXAMPLES[@]} -eq 0 ] && EXAMPLES=("${ALL[@]}")
RECORD=docs/results/runs
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# uncommitted changes to anything but the records this script writes mark the commit
[ -z "$(git status --porcelain --untracked-files=all -- . ':!docs/results*' 2>/dev/null)" ] \
  || commit="$commit+changes"
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
    # --rules-only: the smoke test is of the reports and the page; measuring the decision on
    # 64 dev cases per example took most of its time (over 25 minutes in fp32 on a 2-core
    # CPU), and tests/test_real_models.py runs the measured decision with the real models
    $COMPOUNDAI --no-progress run "examples/$ex/task.yaml" -o "$OUT/$ex" --limit 2 --lanes "$lanes" \
      --rules-only
  else
    case $ex in
      # sft vs sft+grpo at the task's own settings, on the same test cases
      snips_json_grpo) extra=(--rules-only --lanes finetune) ;;
      *) extra=() ;;
    esac
    $COMPOUNDAI run "examples/$ex/task.yaml" -o "$OUT/$ex" "${extra[@]}"
  fi
  # wall time of this example's run (cached answers and adapters make a re-run shorter)
  echo "$((SECONDS - start))" > "$OUT/$ex/wall_seconds"
  echo "$commit" > "$OUT/$ex/commit"
  if [ "$quick" = 0 ]; then
    mkdir -p "$RECORD/$ex"
    rm -f "$RECORD/$ex/note"  # a note (what the numbers do not say) belongs to the run it was written for
    cp "$OUT/$ex/report.json" "$OUT/$ex/wall_seconds" "$OUT/$ex/commit" "$RECORD/$ex/"
    cp "$OUT/$ex/report.html" "docs/results/$ex.html"
  fi
done
if [ "$quick" = 1 ]; then
  python scripts/results_page.py "$OUT" -o "$OUT/results.md"
else
  python scripts/results_page.py "$RECORD" -o docs/results.md
fi
