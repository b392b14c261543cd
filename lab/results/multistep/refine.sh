#!/usr/bin/env bash
# Issue 18 item 1: the second stage (configs/sign_mnist_dmd.yaml) from `make demo`'s first-stage checkpoint, with and
# without L_refine (losses.Refinement: f(q(sg[f(z)], t)) regressed onto the teacher's DDIM-4 from there), seeds
# 0, 1, 2. Two runs at a time, one torch thread each (two 2-thread torch processes slow each other 5-20x).
set -euo pipefail
cd "$(dirname "$0")/../../.."  # the repository root
DEMO=${DEMO:-runs/demo}
REFINE='[{class_path: signs_lightning.losses.Refinement, init_args: {weight: 1.0}}]'
run() {  # name seed extra-args...
  local name=$1 seed=$2; shift 2
  rm -rf runs/ms/$name
  mkdir -p runs/ms
  OMP_NUM_THREADS=1 .venv/bin/signs fit --config configs/sign_mnist_dmd.yaml --seed_everything "$seed" \
    --model.init_args.teacher $DEMO/teacher --model.init_args.init_from $DEMO/sign_logs/checkpoints/last.ckpt \
    --trainer.enable_progress_bar false --trainer.callbacks+=signs_lightning.run.callbacks.TrainingCurve \
    --trainer.default_root_dir runs/ms/$name "$@" > runs/ms/$name.log 2>&1
}
for seed in ${SEEDS:-0 1 2}; do
  run refine_s$seed $seed --model.init_args.extra_losses "$REFINE" &
  run base_s$seed $seed &
  wait
done
echo done
