#!/usr/bin/env bash
# Issue 13 item 4: B1 (A + L_dmd weight 1, 5:1) repeated with two more seeds from the same stage-1 checkpoint,
# each given B1's generator steps (1,281 in its 10 minutes), so the runs do equal work whatever else is running.
set -euo pipefail
cd "$(dirname "$0")/../../.."  # the repository root
T=runs/demo_unipc0/teacher
for seed in 1 2; do  # B1
  rm -rf runs/long_B1_s$seed
  .venv/bin/signs fit --config configs/trainer/cpu.yaml --config configs/data/mnist16.yaml --config configs/sign_mnist.yaml \
    --config configs/sign_mnist_dmd.yaml --seed_everything $seed \
    --model.init_args.teacher $T --model.init_args.init_from runs/long_A/checkpoints/last.ckpt \
    --model.init_args.max_generator_steps 1281 \
    --trainer.val_check_interval 1000 --trainer.enable_progress_bar false \
    --trainer.callbacks+=signs_lightning.run.callbacks.TrainingCurve \
    --trainer.default_root_dir runs/long_B1_s$seed > runs/long_B1_s$seed.log 2>&1
done
# The winner of knobs.sh, B7 (t ~ U[0.02, 0.5]·T, now configs/sign_mnist_dmd.yaml), with two more seeds at its
# 1,205 generator steps.
for seed in 1 2; do
  rm -rf runs/long_B7_s$seed
  .venv/bin/signs fit --config configs/trainer/cpu.yaml --config configs/data/mnist16.yaml --config configs/sign_mnist.yaml \
    --config configs/sign_mnist_dmd.yaml --seed_everything $seed \
    --model.init_args.teacher $T --model.init_args.init_from runs/long_A/checkpoints/last.ckpt \
    --model.init_args.max_generator_steps 1205 \
    --trainer.val_check_interval 1000 --trainer.enable_progress_bar false \
    --trainer.callbacks+=signs_lightning.run.callbacks.TrainingCurve \
    --trainer.default_root_dir runs/long_B7_s$seed > runs/long_B7_s$seed.log 2>&1
done
echo done
