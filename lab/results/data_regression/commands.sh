#!/usr/bin/env bash
# Issue 18 item 2: L_data (DataRegression) as a third stage, 400 generator steps from each second-stage seed, with and
# without it (the control), then the LeNet FD by NFE and the editing benchmark. Run from the repository root after
# lab/results/multistep/commands.sh (its runs/demo and runs/ms models).
set -euo pipefail
cd "$(dirname "$0")/../../.."
stage() {  # NAME INIT SEED [extra args]
  local name=$1 init=$2 seed=$3; shift 3
  OMP_NUM_THREADS=1 .venv/bin/signs fit --config configs/sign_mnist_dmd.yaml --seed_everything "$seed" \
    --model.init_args.teacher runs/demo/teacher --model.init_args.init_from "$init" \
    --model.init_args.max_generator_steps 400 --trainer.limit_val_batches 0 \
    --trainer.enable_progress_bar false --trainer.default_root_dir "runs/dr/$name" "$@" > "runs/dr/$name.log" 2>&1
}
mkdir -p runs/dr
DR='--model.init_args.extra_losses=[{class_path: signs_lightning.losses.DataRegression}]'
DR3='--model.init_args.extra_losses=[{class_path: signs_lightning.losses.DataRegression, init_args: {weight: 3.0}}]'
INIT=(runs/demo/sign_dmd_logs/checkpoints/last.ckpt runs/ms/base_s1/checkpoints/last.ckpt runs/ms/base_s2/checkpoints/last.ckpt)
for s in 0 1 2; do stage "data_s$s" "${INIT[$s]}" "$s" "$DR" & done; stage data_w3_s0 "${INIT[0]}" 0 "$DR3" & wait
for s in 0 1 2; do stage "ctrl_s$s" "${INIT[$s]}" "$s" & done; wait
.venv/bin/python -m lab.studies.renoise_levels runs/dr/data_s{0,1,2}/checkpoints/last.ckpt runs/dr/data_w3_s0/checkpoints/last.ckpt \
  runs/dr/ctrl_s0/checkpoints/last.ckpt --noise path --nfe 2 3 4 --max-levels 0.1 --output lab/results/data_regression/fd_data.json
.venv/bin/python -m lab.studies.renoise_levels runs/dr/ctrl_s{0,1,2}/checkpoints/last.ckpt --noise path --nfe 2 3 4 \
  --max-levels 0.1 --output lab/results/data_regression/fd_ctrl.json
# IGN for the editing tables: the published defaults, 400 generator steps.
.venv/bin/signs fit --config configs/ign_mnist.yaml --model.init_args.teacher runs/demo/teacher \
  --model.init_args.max_generator_steps 400 --trainer.enable_progress_bar false --trainer.default_root_dir runs/ign_edit
IGN=runs/ign_edit/checkpoints/last.ckpt
for run in data_s0:0 data_s1:1 data_s2:2 data_w3_s0:0 ctrl_s0:0 ctrl_s1:1 ctrl_s2:2; do
  OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.editing --sign "runs/dr/${run%%:*}/checkpoints/last.ckpt" --ign $IGN \
    --seed "${run##*:}" --output "lab/results/data_regression/editing_${run%%:*}"
done
for g in data ctrl; do
  .venv/bin/python -m lab.studies.editing_seeds lab/results/data_regression/editing_${g}_s{0,1,2}/editing.json \
    --output lab/results/data_regression/editing_$g
done
# Issue 18's multi-step targets with the promoted recipe (the third stage) and the demo model's promoted rule.
S1="runs/demo/sign_logs/checkpoints/last.ckpt runs/ms/stage1_s1/checkpoints/last.ckpt runs/ms/stage1_s2/checkpoints/last.ckpt"
S2="runs/demo/sign_dmd_logs/checkpoints/last.ckpt runs/ms/base_s1/checkpoints/last.ckpt runs/ms/base_s2/checkpoints/last.ckpt"
S3="runs/dr/data_s0/checkpoints/last.ckpt runs/dr/data_s1/checkpoints/last.ckpt runs/dr/data_s2/checkpoints/last.ckpt"
.venv/bin/python -m lab.studies.multistep_targets --results lab/results/multistep/seeds_path.json --stage1 $S1 --stage2 $S2 \
  --stage1-results lab/results/multistep/eta_stage1_constant.json --stage1-rule /eta0.4 \
  --stage3 $S3 --stage3-results lab/results/data_regression/fd_data.json --output lab/results/multistep/targets.json
