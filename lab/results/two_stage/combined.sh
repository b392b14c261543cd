#!/usr/bin/env bash
# The knobs that helped, together: t ~ U[0.02, 0.5]·T (B7), the fake score at AdamW 3e-4 (B5) and L_dmd on
# re-noised samples (B3). Given B3's generator steps (1,128 in its 10 minutes; the same cost per step), so that it
# can share the machine.
set -euo pipefail
cd "$(dirname "$0")/../../.."  # the repository root
rm -rf runs/long_B8_combined
.venv/bin/signs fit --config configs/trainer/cpu.yaml --config configs/data/mnist16.yaml --config configs/sign_mnist.yaml \
  --config configs/sign_mnist_dmd.yaml \
  --model.init_args.teacher runs/demo_unipc0/teacher --model.init_args.init_from runs/long_A/checkpoints/last.ckpt \
  --model.init_args.max_generator_steps 1128 \
  --trainer.val_check_interval 1000 --trainer.enable_progress_bar false \
  --trainer.callbacks+=signs_lightning.run.callbacks.TrainingCurve \
  --model.init_args.dmd.init_args.optimizer.class_path torch.optim.AdamW \
  --model.init_args.dmd.init_args.optimizer.init_args.lr 3e-4 \
  --model.init_args.dmd.init_args.renoised_fraction 0.5 \
  --model.init_args.dmd.init_args.t_max 0.5 \
  --trainer.default_root_dir runs/long_B8_combined > runs/long_B8_combined.log 2>&1
.venv/bin/python -m lab.studies.score_checkpoints runs/long_B8_combined/checkpoints/last.ckpt \
  --output lab/results/two_stage/combined_scores.json
echo done
