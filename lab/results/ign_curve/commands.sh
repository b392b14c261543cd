#!/usr/bin/env bash
# Issue 13 item 7: how far IGN's curve comes in 15 minutes (published defaults, f from the teacher's UNet).
set -euo pipefail
cd "$(dirname "$0")/../../.."  # the repository root
rm -rf runs/long_ign
.venv/bin/signs fit --config configs/trainer/cpu.yaml --config configs/data/mnist16.yaml --config configs/ign_mnist.yaml \
  --model.init_args.teacher runs/demo_unipc0/teacher --model.init_args.max_generator_steps null \
  --trainer.max_time 00:00:15:00 --trainer.val_check_interval 100 --trainer.enable_progress_bar false \
  --trainer.callbacks+=signs_lightning.run.callbacks.TrainingCurve \
  --model.init_args.evaluator signs_lightning.evaluation.FIDEvaluator \
  --model.init_args.evaluator.init_args.extractor signs_lightning.evaluation.MNISTClassifierFeatures \
  --model.init_args.evaluator.init_args.extractor.init_args.image_size 16 \
  --model.init_args.evaluator.init_args.num_samples 1000 --model.init_args.evaluator.init_args.nfe '[1]' \
  --trainer.default_root_dir runs/long_ign > runs/long_ign.log 2>&1
