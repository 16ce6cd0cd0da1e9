#!/usr/bin/env bash
# Trains the shipped checkpoints on the full CIFAR-10 training set, one after another, on a CPU.
# Rerunnable: --resume continues any run that was interrupted (its .resume.pt sits beside it).
# Usage: MI_BENCH_DATA=../shared/data bash checkpoints/make_checkpoints.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p checkpoints/logs
arch=(--arch preact-resnet18 --arch-opt width=16)
run() {  # name, then mi-bench train options
  local name=$1; shift
  if [ -f "checkpoints/$name.pt" ] && [ ! -f "checkpoints/$name.pt.resume.pt" ]; then
    echo "$name: done"; return
  fi
  mi-bench train "${arch[@]}" "$@" --out "checkpoints/$name.pt" --resume --no-progress \
    2>&1 | tee -a "checkpoints/logs/$name.log"
  rm -f "checkpoints/$name.pt.resume.pt"  # the finished checkpoint keeps weights and card
}
run prn18w16-mixup-s0 --method mixup --epochs 18 --seed 0
run prn18w16-erm-s0 --method erm --epochs 15 --seed 0
run prn18w16-iat-s0 --method iat --pgd-steps 1 --epochs 15 --seed 0
run prn18w16-mixup-s1 --method mixup --epochs 18 --seed 1
