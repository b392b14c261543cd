#!/usr/bin/env bash
# Issue 13 item 5: how far apart three trainings of the demo's teacher land (seeds 1, 2 besides make demo's seed 0),
# 2,500 steps each as configs/teacher_mnist.yaml, scored by DDIM-10 and -50 on 2,000 samples (make demo's noise).
set -euo pipefail
cd "$(dirname "$0")/../../.."  # the repository root
teacher() {  # name, extra args...
  local name=$1; shift
  rm -rf runs/teacher_$name
  .venv/bin/signs fit --config configs/trainer/cpu.yaml --config configs/data/mnist16.yaml --config configs/teacher_mnist.yaml \
    --model.init_args.output_dir runs/teacher_$name/teacher --trainer.default_root_dir runs/teacher_$name \
    --trainer.enable_progress_bar false "$@" > runs/teacher_$name.log 2>&1
}
teacher s1 --seed_everything 1
teacher s2 --seed_everything 2
.venv/bin/python -m lab.studies.score_checkpoints runs/demo_unipc0/teacher runs/teacher_{s1,s2}/teacher \
  --teacher-nfe 10 50 --output lab/results/teacher_seeds/scores.json
echo done
