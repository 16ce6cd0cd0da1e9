#!/usr/bin/env bash
# The binarization table of leaderboards/results/binarization/README.md: cpu preset, 8/255 Linf,
# first 20 test images, seed 0. Run from the repository root; resumes (finished samples stay).
set -euo pipefail
DATA=${MI_BENCH_DATA:-../shared/data}
OUT=leaderboards/results/binarization/store
common=(--suite binarization --binarization-preset cpu --n-examples 20 --data-dir "$DATA"
        --out "$OUT" --no-progress)
for ckpt_def in "prn18w16-iat-s0 mi-ol" "prn18w16-mixup-s0 mi-ol" "prn18w16-iat-s0 gaussian-noise" \
                "prn18w16-iat-s0 rotation"; do
    set -- $ckpt_def
    mi-bench attack --checkpoint "$1" --defense "$2" --inner-attack pgd "${common[@]}"
    mi-bench attack --checkpoint "$1" --defense "$2" --inner-attack eot-pgd --steps 20 "${common[@]}"
done
mi-bench attack --checkpoint prn18w16-iat-s0 --defense mi-ol --inner-attack eot-pgd \
    --attack-preset tramer "${common[@]}"
# mixup + MI-OL: with the cpu preset's readout (C = 1) every sample fails setup (the readout
# leaves 3 of 201 training points on the wrong side); a weaker regularization, C = 100:
mi-bench attack --checkpoint prn18w16-mixup-s0 --defense mi-ol --inner-attack eot-pgd --steps 20 \
    --binarization-opt c=100 "${common[@]}"
# the AutoAttack ensemble as the inner attack, with the headline's settings (EOT 5, K = 1)
mi-bench attack --checkpoint prn18w16-iat-s0 --defense mi-ol --inner-attack autoattack \
    --eot-iter 5 --attack-draws 1 "${common[@]}"
# the ensemble on IAT + MI-OL at the cpu preset's own sample count (100 images)
mi-bench attack --checkpoint prn18w16-iat-s0 --defense mi-ol --inner-attack autoattack \
    --eot-iter 5 --attack-draws 1 "${common[@]}" --n-examples 100  # the last --n-examples wins
# session 10: the cells behind the headline's adaptive columns at the preset's 100 samples, with
# two threads (OMP_NUM_THREADS=2): EOT-PGD-20 and the Tramèr preset on IAT + MI-OL, EOT-PGD-20
# on IAT + gaussian-noise
for extra in "--defense mi-ol --steps 20" "--defense mi-ol --attack-preset tramer" \
             "--defense gaussian-noise --steps 20"; do
    # shellcheck disable=SC2086
    mi-bench attack --checkpoint prn18w16-iat-s0 $extra --inner-attack eot-pgd "${common[@]}" \
        --n-examples 100
done
# session 11: the ensemble (EOT 5, K = 1, the headline's settings) and the Tramèr preset as inner
# attacks on the two baselines, first 20 images, two threads (OMP_NUM_THREADS=2)
for def in gaussian-noise rotation; do
    mi-bench attack --checkpoint prn18w16-iat-s0 --defense "$def" --inner-attack autoattack \
        --eot-iter 5 --attack-draws 1 "${common[@]}"
    mi-bench attack --checkpoint prn18w16-iat-s0 --defense "$def" --inner-attack eot-pgd \
        --attack-preset tramer "${common[@]}"
done
# session 11: oblivious PGD on IAT + MI-OL at the preset's 100 samples, one thread
# (OMP_NUM_THREADS=1; seconds per sample are not comparable with the two-thread cells)
mi-bench attack --checkpoint prn18w16-iat-s0 --defense mi-ol --inner-attack pgd "${common[@]}" \
    --n-examples 100
# session 11: oblivious PGD on IAT + rotation at the preset's 100 samples, two threads
mi-bench attack --checkpoint prn18w16-iat-s0 --defense rotation --inner-attack pgd "${common[@]}" \
    --n-examples 100
# session 12: EOT-PGD-20 on IAT + rotation and oblivious PGD on IAT + gaussian-noise at the
# preset's 100 samples, one thread (beside a two-rank sweep, so seconds per sample run high)
mi-bench attack --checkpoint prn18w16-iat-s0 --defense rotation --inner-attack eot-pgd --steps 20 \
    "${common[@]}" --n-examples 100
mi-bench attack --checkpoint prn18w16-iat-s0 --defense gaussian-noise --inner-attack pgd \
    "${common[@]}" --n-examples 100
# session 12: the attack behind the headline's EOT-PGD column on IAT + MI-OL (EOT-PGD-20, margin
# loss, EOT 10, K = 15), first 20 samples, one thread
mi-bench attack --checkpoint prn18w16-iat-s0 --defense mi-ol --inner-attack eot-pgd --steps 20 \
    --eot-iter 10 --loss margin --attack-draws 15 "${common[@]}"
# session 12: the official preset (the MI case study: 999 inner points + 1 corner, 100
# validation points, MI-OL with 15 draws and lambda 0.6), EOT-PGD-20, 20 of its 512 samples
mi-bench attack --checkpoint prn18w16-iat-s0 --defense mi-ol --inner-attack eot-pgd --steps 20 \
    --suite binarization --binarization-preset official --n-examples 20 --data-dir "$DATA" \
    --out "$OUT" --no-progress
