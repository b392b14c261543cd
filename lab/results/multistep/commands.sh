#!/usr/bin/env bash
# Issue 18 item 1: what f does to re-noised samples of itself, and the multi-step rules, on `make demo`'s models
# (stage 1: configs/sign_mnist.yaml; stage 2: configs/sign_mnist_dmd.yaml from it), then two more training seeds
# of each stage. Run from the repository root after `signs demo --output runs/demo --dmd-config
# configs/sign_mnist_dmd.yaml`.
set -euo pipefail
cd "$(dirname "$0")/../../.."
S1=runs/demo/sign_logs/checkpoints/last.ckpt
S2=runs/demo/sign_dmd_logs/checkpoints/last.ckpt
# The trace: FD of f(q(f(z), t)) with fresh noise and with the starting z, of the teacher's DDIM from there.
.venv/bin/python -m lab.studies.multistep_trace $S1 $S2 --levels 5 10 20 50 100 200 --output lab/results/multistep/trace.json
# The rules by level and NFE.
.venv/bin/python -m lab.studies.renoise_levels $S1 $S2 --noise initial --nfe 2 3 4 --max-levels 0.05 0.1 0.2 0.3 0.4 \
  --output lab/results/multistep/levels_initial.json
.venv/bin/python -m lab.studies.renoise_levels $S1 $S2 --noise path --nfe 3 4 --max-levels 0.05 0.1 0.2 0.3 0.4 0.6 \
  --output lab/results/multistep/levels_path.json
# Seeds 1 and 2 of each stage (stage 2 from the demo's stage 1), two at a time, one torch thread each.
for s in 1 2; do
  OMP_NUM_THREADS=1 .venv/bin/signs fit --config configs/sign_mnist_dmd.yaml --seed_everything $s \
    --model.init_args.teacher runs/demo/teacher --model.init_args.init_from $S1 \
    --trainer.enable_progress_bar false --trainer.default_root_dir runs/ms/base_s$s > runs/ms/base_s$s.log 2>&1 &
done; wait
for s in 1 2; do
  OMP_NUM_THREADS=1 .venv/bin/signs fit --config configs/sign_mnist.yaml --seed_everything $s \
    --model.init_args.teacher runs/demo/teacher \
    --trainer.enable_progress_bar false --trainer.default_root_dir runs/ms/stage1_s$s > runs/ms/stage1_s$s.log 2>&1 &
done; wait
# Every seed under the old rule (fresh, 0.05) and the new ones.
STAGE1="$S1 runs/ms/stage1_s1/checkpoints/last.ckpt runs/ms/stage1_s2/checkpoints/last.ckpt"
STAGE2="$S2 runs/ms/base_s1/checkpoints/last.ckpt runs/ms/base_s2/checkpoints/last.ckpt"
.venv/bin/python -m lab.studies.renoise_levels $STAGE1 $STAGE2 --noise fresh --nfe 2 4 --max-levels 0.05 \
  --output lab/results/multistep/seeds_fresh.json
.venv/bin/python -m lab.studies.renoise_levels $STAGE1 $STAGE2 --noise path --nfe 2 3 4 --max-levels 0.1 0.2 0.3 \
  --output lab/results/multistep/seeds_path.json
.venv/bin/python -m lab.studies.multistep_targets --results lab/results/multistep/seeds_path.json --stage1 $STAGE1 --stage2 $STAGE2 --output lab/results/multistep/targets.json
# Editing, informed and blind, on both models.
.venv/bin/python -m benchmarks.editing --sign $S2 --output lab/results/editing_stage2
.venv/bin/python -m benchmarks.editing --sign $S1 --output lab/results/editing_stage1
# What `make demo` now reports for its stage-1 model (training unchanged; the demo's own scoring, path rule at 0.3).
.venv/bin/python - <<'PY'
from signs_lightning.commands.loading import load_generator
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.evaluation.scoring import score_classifier_features
model = load_generator("runs/demo/sign_logs/checkpoints/last.ckpt")
model.renoise_noise, model.renoise_max_level = "path", 0.3
data = EmbeddedMNISTDataModule(image_size=16)
data.setup("validate")
print(score_classifier_features(model, data, 2000, [1, 2, 4], [], prefix="sign"))
PY
# Explicit level lists with the path rule on stage 1 (seeds 0 and 1): later steps at lower levels hurt.
PYTHONPATH=. .venv/bin/python - <<'PY'
import json, torch
from benchmarks.measure import Scorer
from signs_lightning.commands.loading import load_generator
from signs_lightning.inference import sampling
torch.set_num_threads(2)
schedules = {"2:[300]": [300], "3:[300,200]": [300, 200], "3:[300,250]": [300, 250], "3:[400,300]": [400, 300],
             "4:[300,200,100]": [300, 200, 100], "4:[300,250,200]": [300, 250, 200], "4:[400,350,300]": [400, 350, 300],
             "4:[300,300,300]": [300, 300, 300]}
out = {}
for path in ["runs/demo/sign_logs/checkpoints/last.ckpt", "runs/ms/stage1_s1/checkpoints/last.ckpt"]:
    model = load_generator(path)
    scorer = Scorer(16, 2000, 0, 0, 500, 1, torch.device("cpu"))
    f = model.sampling_network
    samplers = {n: (lambda lv: (lambda z, g: sampling.multistep(f, z, model.schedule, lv, g, "path")))(lv) for n, lv in schedules.items()}
    rows = scorer.score(samplers, model.image_shape)
    out[path] = {n: round(r["fid_lenet"], 2) for n, r in rows.items()}
    print(path, out[path], flush=True)
PY
# --- This session (issue 18 item 1, continued) ---
STAGE1="runs/demo/sign_logs/checkpoints/last.ckpt runs/ms/stage1_s1/checkpoints/last.ckpt runs/ms/stage1_s2/checkpoints/last.ckpt"
STAGE2="runs/demo/sign_dmd_logs/checkpoints/last.ckpt runs/ms/base_s1/checkpoints/last.ckpt runs/ms/base_s2/checkpoints/last.ckpt"
# Backward simulation along the sampler's own path (L_dmd also on f(x_k), x_k the path rule's later inputs), seed 0,
# the fake score on f(z) only (A) or on the same mix (B); in-loop curves from their TensorBoard logs.
for v in A B; do
  extra="--model.init_args.dmd.init_args.renoised_fraction 0.5"; [ $v = B ] && extra="$extra --model.init_args.dmd.init_args.renoised_fake true"
  OMP_NUM_THREADS=1 .venv/bin/signs fit --config configs/sign_mnist_dmd.yaml --seed_everything 0 \
    --model.init_args.teacher runs/demo/teacher --model.init_args.init_from runs/demo/sign_logs/checkpoints/last.ckpt $extra \
    --trainer.enable_progress_bar false --trainer.default_root_dir runs/bs/${v}_s0 > runs/bs/${v}_s0.log 2>&1 &
done; wait
.venv/bin/python - runs/bs/A_s0 runs/bs/B_s0 runs/ms/base_s1 <<'PY'
import glob, json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
out = {}
for run in sys.argv[1:]:
    ea = EventAccumulator(sorted(glob.glob(f"{run}/lightning_logs/*/events.*"))[-1], size_guidance={"scalars": 0})
    ea.Reload()
    out[run] = {t: [[e.step, round(e.value, 3)] for e in ea.Scalars(t)]
                for t in sorted(ea.Tags()["scalars"]) if t.startswith("val/fid1k_lenet16_nfe")}
json.dump(out, open("lab/results/multistep/backward_simulation_curves.json", "w"), indent=1)
PY
# Fresh noise mixed into the path rule (eta), even and constant levels.
.venv/bin/python -m lab.studies.renoise_levels $STAGE2 --noise path --nfe 2 3 4 --max-levels 0.1 0.2 --eta 0 0.2 0.4 0.7 \
  --output lab/results/multistep/eta_stage2.json
.venv/bin/python -m lab.studies.renoise_levels $STAGE1 --noise path --nfe 2 3 4 --max-levels 0.3 --eta 0.2 0.4 0.7 --constant \
  --output lab/results/multistep/eta_stage1_constant.json
.venv/bin/python -m lab.studies.renoise_levels $STAGE2 --noise path --nfe 2 3 4 --max-levels 0.05 0.1 --eta 0.2 0.4 --constant \
  --output lab/results/multistep/eta_stage2_constant.json
.venv/bin/python -m lab.studies.renoise_levels $STAGE1 --noise path --nfe 2 3 4 --max-levels 0.2 0.4 --eta 0.3 0.5 --constant \
  --output lab/results/multistep/eta_stage1_constant2.json
# What `make demo` reports for its stage-1 model with the promoted rule (constant 0.3·T, eta 0.4): 11.82 / 2.78 / 2.72.
.venv/bin/python - <<'PY'
from signs_lightning.commands.loading import load_generator
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.evaluation.scoring import score_classifier_features
model = load_generator("runs/demo/sign_logs/checkpoints/last.ckpt")
model.renoise_noise, model.renoise_max_level, model.renoise_spacing, model.renoise_eta = "path", 0.3, "constant", 0.4
data = EmbeddedMNISTDataModule(image_size=16)
data.setup("validate")
print(score_classifier_features(model, data, 2000, [1, 2, 4], [], prefix="sign"))
PY
