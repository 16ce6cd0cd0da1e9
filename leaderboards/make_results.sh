#!/usr/bin/env bash
# Makes every record behind the committed tables in leaderboards/results/, on the real CIFAR-10
# test set, and then the tables. Rerunnable: finished records are skipped and a killed run resumes
# at its first missing batch, so rerun the same command after an interruption.
# Usage: MI_BENCH_DATA=../shared/data bash leaderboards/make_results.sh [phase ...]
# phases: tradeoff pgd transfer eot autoattack misweep direct report (all, in order, by default)
# Two stores: store/ holds the main table's records (one setting per suite), sweeps/store/ the
# studies of one knob at a time (attack partners K, EOT, steps; MI's N and lambda).
# K (attack partners for the adaptive attacks) was chosen from the tradeoff phase; see README.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=leaderboards/results/store
SWEEPS=leaderboards/results/sweeps/store
DATA=(--data-dir "${MI_BENCH_DATA:-../shared/data}")
K=${K:-1}
SEEDS=0,1,2
SWEEP=1/255,2/255,4/255,8/255
TARGETS=(mixup iat)
# the adaptive attack's budget: PGD-20 with EOT 10 (the tradeoff phase compares it with
# PGD-100 / EOT 20 and with K up to N = 30)
EOT_PGD=(--suite eot-pgd --steps 20 --eot-iter 10)
atk() { mi-bench attack "${DATA[@]}" --out "${OUT:-$STORE}" --no-progress "$@"; }

tradeoff() {  # cost against strength, IAT + MI-OL at 8/255, 50 images, seed 0
  local OUT=$SWEEPS common=(--checkpoint iat --defense mi-ol --eps 8/255 --n-examples 50 --seeds 0)
  for k in 1 3 10; do atk "${common[@]}" "${EOT_PGD[@]}" --attack-mi-samples "$k"; done
  for e in 1 5 20; do
    atk "${common[@]}" --suite eot-pgd --steps 20 --eot-iter "$e" --attack-mi-samples 1
  done
  atk "${common[@]}" --suite eot-pgd --steps 100 --eot-iter 20 --attack-mi-samples 1
}

pgd() {  # oblivious: PGD-10 on the base model, evaluated with and without MI
  for t in "${TARGETS[@]}"; do for d in none mi-ol; do
    atk --checkpoint "$t" --defense "$d" --suite pgd --eps "$SWEEP" --n-examples 500 \
      --seeds "$SEEDS"
  done; done
}

transfer() {  # PGD-10 on a surrogate: another seed of mixup (sweep), ERM (another method)
  for t in "${TARGETS[@]}"; do for d in none mi-ol; do
    atk --checkpoint "$t" --defense "$d" --suite transfer --surrogate mixup-s1 --eps "$SWEEP" \
      --n-examples 500 --seeds "$SEEDS"
    atk --checkpoint "$t" --defense "$d" --suite transfer --surrogate erm --eps 8/255 \
      --n-examples 500 --seeds "$SEEDS"
  done; done
}

eot() {  # adaptive EOT-PGD through MI with K partners; full strength K = N = 30 on 20 images
  for t in "${TARGETS[@]}"; do
    # a deterministic base model needs one gradient per step, not an expectation
    atk --checkpoint "$t" --defense none --suite eot-pgd --steps 20 --eot-iter 1 \
      --eps "$SWEEP" --n-examples 100 --seeds "$SEEDS"
    atk --checkpoint "$t" --defense mi-ol "${EOT_PGD[@]}" --attack-mi-samples "$K" \
      --eps "$SWEEP" --n-examples 100 --seeds "$SEEDS"
  done
  local OUT=$SWEEPS  # the cheap attack against full strength, on the same 20 images
  for k in "$K" 30; do
    atk --checkpoint iat --defense mi-ol "${EOT_PGD[@]}" --attack-mi-samples "$k" --eps 8/255 \
      --n-examples 20 --batch-size 20 --seeds "$SEEDS"
  done
}

autoattack() {  # standard on the base models, rand (APGD-CE + APGD-DLR, EOT 20) through MI
  for t in "${TARGETS[@]}"; do for d in none mi-ol; do
    atk --checkpoint "$t" --defense "$d" --suite autoattack --attack-mi-samples "$K" \
      --eps "${AA_EPS:-8/255}" --n-examples "${AA_N:-50}" --seeds "$SEEDS"
  done; done
}

misweep() {  # MI's own knobs under oblivious PGD-10 (the paper's protocol), mixup at 4/255
  local OUT=$SWEEPS common=(--checkpoint mixup --suite pgd --eps 4/255 --n-examples 200
                            --seeds "$SEEDS")
  for n in 1 5 10 30; do atk "${common[@]}" --defense mi-ol --mi-n "$n"; done
  for lam in 0.3 0.7; do atk "${common[@]}" --defense mi-ol --mi-lambda "$lam"; done
  atk "${common[@]}" --defense none
}

direct() {  # the harness's AutoAttack number equals pyautoattack's own (example ResNet-18)
  python leaderboards/direct_autoattack.py "${DATA[@]}" --eps 2/255 --n 20 --store "$SWEEPS" \
    --out leaderboards/results/direct_autoattack.json
}

report() {
  mi-bench report --results "$STORE" --baseline robustbench:cifar10:Linf --format md,csv \
    --out leaderboards/results
  mi-bench report --results "$SWEEPS" --baseline robustbench:cifar10:Linf --format md,csv \
    --out leaderboards/results/sweeps
}

phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(tradeoff pgd transfer eot autoattack misweep direct report)
for p in "${phases[@]}"; do echo "== $p $(date -u +%H:%M:%S)"; "$p"; done
