#!/usr/bin/env bash
# MI against the MI paper's randomized baselines, every column on the same 100 test images:
# clean, oblivious PGD-10, adaptive EOT-PGD (PGD-20, EOT 10, K = 1 draw per gradient sample),
# transfer from mixup-s1, at 4/255 and 8/255; AutoAttack at 8/255 (standard on the bare models,
# APGD-CE + APGD-DLR with EOT 5 through the randomized defenses: EOT 20, as published, costs 4x
# more than this CPU allows). One seed. Rerunnable: finished records are skipped, a killed run
# resumes at its first missing batch.
# Usage: MI_BENCH_DATA=../shared/data bash leaderboards/defense_comparison.sh [mixup|iat ...]
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-leaderboards/results/store}
DATA=(--data-dir "${MI_BENCH_DATA:-../shared/data}")
N=${N:-100}
DEFENSES=(none mi-ol gaussian-noise uniform-noise rotation xie guo)
COMMON=(--n-examples "$N" --batch-size 50 --seeds 0 --eval-repeats 5 --attack-draws 1)
atk() { mi-bench attack "${DATA[@]}" --out "$STORE" --no-progress "${COMMON[@]}" "$@"; }

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(mixup iat)
for target in "${targets[@]}"; do
  for d in "${DEFENSES[@]}"; do
    atk --checkpoint "$target" --defense "$d" --suite pgd --eps 4/255,8/255
    atk --checkpoint "$target" --defense "$d" --suite transfer --surrogate mixup-s1 \
      --eps 4/255,8/255
    if [ "$d" = none ]; then eot=1; else eot=10; fi
    atk --checkpoint "$target" --defense "$d" --suite eot-pgd --steps 20 --eot-iter "$eot" \
      --eps 4/255,8/255
  done
  for d in "${DEFENSES[@]}"; do
    if [ "$d" = none ]; then
      atk --checkpoint "$target" --defense none --suite autoattack --eps 8/255
    else
      atk --checkpoint "$target" --defense "$d" --suite autoattack --aa-version rand \
        --eot-iter 5 --eps 8/255
    fi
  done
done
