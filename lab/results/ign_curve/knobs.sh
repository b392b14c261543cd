#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/../../.."  # the repository root
# Two of the knobs IGN's paper exposes, one at a time, for 600 steps (where the defaults had collapsed: FD 625, 10%
# coverage): λ_tight 0.5 (of 2.5) and λ_idem 5 (of 20).
ign_knob() {  # name, extra args...
  local name=$1; shift
  rm -rf runs/ign_$name
  .venv/bin/signs fit --config configs/trainer/cpu.yaml --config configs/data/mnist16.yaml --config configs/ign_mnist.yaml \
    --model.init_args.teacher runs/demo_unipc0/teacher --model.init_args.max_generator_steps 600 \
    --trainer.val_check_interval 100 --trainer.enable_progress_bar false \
    --trainer.callbacks+=signs_lightning.run.callbacks.TrainingCurve \
    --model.init_args.evaluator signs_lightning.evaluation.FIDEvaluator \
    --model.init_args.evaluator.init_args.extractor signs_lightning.evaluation.MNISTClassifierFeatures \
    --model.init_args.evaluator.init_args.extractor.init_args.image_size 16 \
    --model.init_args.evaluator.init_args.num_samples 1000 --model.init_args.evaluator.init_args.nfe '[1]' \
    --trainer.default_root_dir runs/ign_$name "$@" > runs/ign_$name.log 2>&1
}
ign_knob tight0.5 --model.init_args.lambda_tight 0.5
ign_knob idem5 --model.init_args.lambda_idem 5
