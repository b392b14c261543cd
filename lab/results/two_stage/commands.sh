#!/usr/bin/env bash
# Issue 13 item 2: does distribution matching help on top of a regression-trained f? (two-phase, DMD2's stage 2)
set -euo pipefail
cd "$(dirname "$0")/../../.."  # the repository root
T=runs/demo_unipc0/teacher
BASE=(--config configs/trainer/cpu.yaml --config configs/data/mnist16.yaml --config configs/sign_mnist.yaml
      --model.init_args.teacher $T --model.init_args.max_generator_steps null
      --trainer.val_check_interval 1000 --trainer.enable_progress_bar false
      --trainer.callbacks+=signs_lightning.run.callbacks.TrainingCurve)
phase2() {  # name, minutes, extra args...
  local name=$1 minutes=$2; shift 2
  rm -rf runs/long_$name
  .venv/bin/signs fit "${BASE[@]}" --trainer.default_root_dir runs/long_$name \
    --trainer.max_time 00:00:$minutes:00 --model.init_args.init_from runs/long_A/checkpoints/last.ckpt "$@" \
    > runs/long_$name.log 2>&1
}
rm -rf runs/long_A
.venv/bin/signs fit "${BASE[@]}" --trainer.default_root_dir runs/long_A --trainer.max_time 00:00:20:00 > runs/long_A.log 2>&1
phase2 C 10
phase2 B1 10 --model.init_args.dmd signs_lightning.losses.DistributionMatching --model.init_args.gen_every 5
phase2 B2 10 --model.init_args.dmd signs_lightning.losses.DistributionMatching --model.init_args.dmd.init_args.weight 0.1 --model.init_args.gen_every 5
echo done
