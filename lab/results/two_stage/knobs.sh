#!/usr/bin/env bash
# Issue 13 item 2, the knobs of the second stage: each run is B1 (configs/sign_mnist_dmd.yaml from run A's last
# checkpoint, seed 0) with one change, for the same 10 minutes of training on an otherwise idle 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/../../.."  # the repository root
T=runs/demo_unipc0/teacher
knob() {  # name, extra args...
  local name=$1; shift
  rm -rf runs/long_$name
  .venv/bin/signs fit --config configs/trainer/cpu.yaml --config configs/data/mnist16.yaml --config configs/sign_mnist.yaml \
    --config configs/sign_mnist_dmd.yaml \
    --model.init_args.teacher $T --model.init_args.init_from runs/long_A/checkpoints/last.ckpt \
    --model.init_args.max_generator_steps null --trainer.max_time 00:00:10:00 \
    --trainer.val_check_interval 1000 --trainer.enable_progress_bar false \
    --trainer.callbacks+=signs_lightning.run.callbacks.TrainingCurve \
    --trainer.default_root_dir runs/long_$name "$@" > runs/long_$name.log 2>&1
}
knob B3_renoised --model.init_args.dmd.init_args.renoised_fraction 0.5     # L_dmd on the multi-step sampler's inputs too
knob B4_warmup --model.init_args.generator_warmup 500                      # fake score alone for 500 batches first
knob B5_fake_lr --model.init_args.dmd.init_args.optimizer.class_path torch.optim.AdamW \
  --model.init_args.dmd.init_args.optimizer.init_args.lr 3e-4              # the fake score's own, slower learning rate
knob B6_weight3 --model.init_args.dmd.init_args.weight 3                   # L_dmd 3x L_reg (1 and 0.1 tried)
knob B7_tmax05 --model.init_args.dmd.init_args.t_max 0.5                   # t ~ U[0.02, 0.5]·T: only the detail scales
echo done
