#!/usr/bin/env bash
# Issue 18 item 3: the editing benchmark on three training seeds of each stage (sample noise seeded by the same
# seed), with IGN (runs/ign_edit, lab/results/data_regression/commands.sh) and the corrupted input; then mean ± sd.
set -euo pipefail
cd "$(dirname "$0")/../../.."
IGN=runs/ign_edit/checkpoints/last.ckpt
i=0; for c in runs/demo/sign_dmd_logs runs/ms/base_s1 runs/ms/base_s2; do
  OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.editing --sign $c/checkpoints/last.ckpt --ign $IGN --seed $i \
    --output lab/results/editing_seeds/stage2_seed$i; i=$((i+1)); done
# Stage 1 with the sampler promoted after it was trained (configs/sign_mnist.yaml).
i=0; for c in runs/demo/sign_logs runs/ms/stage1_s1 runs/ms/stage1_s2; do
  OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.editing --sign $c/checkpoints/last.ckpt --ign $IGN --seed $i \
    --renoise-noise path --renoise-max-level 0.3 --renoise-spacing constant --renoise-eta 0.4 \
    --output lab/results/editing_seeds/stage1_seed$i; i=$((i+1)); done
for s in 1 2; do
  .venv/bin/python -m lab.studies.editing_seeds lab/results/editing_seeds/stage${s}_seed{0,1,2}/editing.json \
    --output lab/results/editing_seeds/stage$s
done
