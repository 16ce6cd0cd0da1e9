#!/usr/bin/env bash
# The GPU check, on one CUDA card, in under 8 minutes: the CUDA tests; the MI, attack and
# training throughput benchmarks on CUDA beside the CPU figure; one short AutoAttack run through
# MI on the CPU and on CUDA on the same 16 images, which must agree.
#
#   bash benchmarks/gpu_check.sh 2>&1 | tee gpu_check.log     # then paste into benchmarks/README.md
#
# GPU_CHECK_DEVICE=cpu runs the same steps with the CPU in place of the GPU (a rehearsal of the
# script on a machine without one; the figures then mean nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
DEV=${GPU_CHECK_DEVICE:-cuda}
START=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - START )) s)"; }

step "machine"
if [ "$DEV" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"
fi
echo "$(nproc) CPU cores"

step "CUDA tests"
if [ "$DEV" = cuda ]; then
  $PY -m pytest -q -rs tests/test_cuda.py
else
  echo "(skipped: no GPU)"
fi

step "MI throughput: CPU, then $DEV"
$PY benchmarks/mi_throughput.py --device cpu --models small-cnn,resnet18 --repeats 3
$PY benchmarks/mi_throughput.py --device "$DEV" --models small-cnn,resnet18 --repeats 5 \
  --batch 256 --max-batch 8192

step "attack throughput (gradient calls through MI): CPU, then $DEV"
$PY benchmarks/attack_throughput.py --device cpu --k 5,30 --repeats 3
$PY benchmarks/attack_throughput.py --device "$DEV" --k 5,30 --repeats 5 --batch 128 \
  --max-batch 8192 --min-passes 20000

step "training throughput: CPU (fp32), then $DEV (bf16 autocast, channels_last)"
$PY benchmarks/train_throughput.py --device cpu --steps 2 --repeats 3
$PY benchmarks/train_throughput.py --device "$DEV" --steps 20 --repeats 5

step "AutoAttack through MI on the CPU and on $DEV, the same 16 images: must agree"
$PY benchmarks/aa_devices.py --n 16 --devices "cpu,$DEV"

step "done"
