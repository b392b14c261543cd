"""The GPU check: rehearse the CIFAR-10 config on one GPU in bf16, then measure what a user's GPU run costs.

1. rehearsal: ``scripts/rehearse.py configs/sign_cifar10.yaml`` (stage 1, with its layers) on the GPU
   (bf16-mixed), a checkpoint and a resume;
2. training throughput (batch 128) of the two stages, ``configs/sign_cifar10.yaml`` (regression) and
   ``configs/sign_cifar10_dmd.yaml`` (+ L_dmd, fake score at 5:1), and of the one-stage
   ``configs/sign_cifar10_all_terms.yaml`` (every loss term, 5:1: the first GPU check's config, for comparison),
   with the UNet at its real size: random weights in ``google/ddpm-cifar10-32``'s architecture (35.7M parameters);
3. one-step and multi-step sampling images/s, L_reg pair generation (the shipped config's solver: UniPC-20)
   pairs/s, Inception FID images/s, peak GPU memory of each;
4. the training step of ``configs/sign_cifar10.yaml`` (batch 128, bf16-mixed) against its compute limit
   (``benchmarks.speed``), eager and compiled, with the other speed options at their defaults.

Writes ``OUT/gpu_check.json`` (and ``benchmarks.speed``'s own file, ``OUT/gpu_cifar10_<card>.json``) and prints
it. ``--tiny`` runs the same code at toy sizes on any device (the test suite does, so that this script cannot rot
between GPU sessions), the step against its limit eager only (inductor takes minutes to compile even a toy UNet on
a CPU).

    python scripts/gpu_check.py OUT [--tiny] [--inception-fp16 FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from diffusers import UNet2DModel
from torch.utils.data import DataLoader, TensorDataset

from benchmarks import speed
from benchmarks.measure import median_seconds, synchronize
from benchmarks.overhead import StepClock, step_times
from benchmarks.provenance import composed_config, write_results
from signs_lightning.core.cache import atomic_torch_save
from signs_lightning.core.distributed import LocalStrategy
from signs_lightning.data.synthetic import write_cifar10_tree
from signs_lightning.diffusion.teacher_pairs import generate_pairs
from signs_lightning.evaluation import InceptionV3Features
from signs_lightning.evaluation.inception_weights import rebuilt_inception_weights_path
from signs_lightning.run.cli import cli_main
from signs_lightning.run.config_layers import config_files

ROOT = Path(__file__).resolve().parents[1]

CONFIG = ROOT / "configs" / "sign_cifar10.yaml"
# The configs whose training step is timed, by the name the report gives them.
TIMED = {
    "regression_stage": CONFIG,
    "dmd_stage": ROOT / "configs" / "sign_cifar10_dmd.yaml",
    "all_terms": ROOT / "configs" / "sign_cifar10_all_terms.yaml",
}


def config_args(config: Path) -> list[str]:
    """``--config`` for each layer of ``config`` (its ``# bases:`` line), then ``config``: the command a user runs."""
    return [item for path in config_files(config) for item in ("--config", str(path))]


TINY_UNET = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    layers_per_block=1,
    block_out_channels=(16, 16),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
)


def write_teacher(path: Path, tiny: bool) -> int:
    """A random-weight teacher in the diffusers pipeline layout (google/ddpm-cifar10-32's architecture, or a toy
    one); returns its parameter count."""
    return speed.write_random_teacher(path, lambda: UNet2DModel(**(TINY_UNET if tiny else speed.CIFAR10_UNET)))


def install_inception_fp16(path: Path) -> None:
    """The Inception weights carried as float16 (to fit a transfer limit), restored as a float32 file where only our
    code loads it (the offline-rebuild slot under ``$SIGNS_CACHE``, never the hub cache's official name). FIDs from
    it differ from the float32 weights' in the 4th digit: timings only."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    atomic_torch_save(
        {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, rebuilt_inception_weights_path()
    )


def rehearse(work: Path, accelerator: str, precision: str, fid_samples: int) -> list[dict[str, Any]]:
    """The rehearsal script: fit 3 generator steps, then resume to 4 (``--ckpt_path last``)."""
    reports = []
    for steps, resume in ((3, False), (4, True)):
        command = [
            sys.executable,
            str(ROOT / "scripts" / "rehearse.py"),
            str(CONFIG),
            "--teacher",
            "teacher",
            "--data-root",
            "data",
            "--devices",
            "1",
            "--accelerator",
            accelerator,
            "--precision",
            precision,
            "--steps",
            str(steps),
            "--fid-samples",
            str(fid_samples),
            "--fid-batch",
            str(min(fid_samples, 250)),
        ]
        result = subprocess.run(
            command + (["--resume"] if resume else []),
            capture_output=True,
            text=True,
            cwd=work,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
        )
        if result.returncode != 0:
            raise SystemExit(f"rehearsal failed:\n{(result.stdout + result.stderr)[-6000:]}")
        line = next(row for row in result.stdout.splitlines() if row.startswith("REHEARSAL "))
        reports.append(json.loads(line.removeprefix("REHEARSAL ")))
    return reports


def training_throughput(
    config: Path, work: Path, accelerator: str, precision: str, batch: int, generator_steps: int, reg_pairs: int
) -> tuple[dict[str, Any], Any]:
    """Batches/s and generator steps/s of ``config``'s training step on random images, through ``Trainer.fit``
    (from the teacher's weights: a second stage's ``init_from`` is dropped, the cost is the same)."""
    cli = cli_main(
        [
            *config_args(config),
            "--trainer.accelerator",
            accelerator,
            "--trainer.devices",
            "1",
            "--trainer.precision",
            precision,
            "--trainer.logger",
            "false",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.limit_val_batches",
            "0",
            "--trainer.default_root_dir",
            str(work / "throughput"),
            "--trainer.callbacks",
            "[]",
            "--trainer.enable_checkpointing",
            "false",
            "--model.init_args.teacher",
            str(work / "teacher"),
            "--model.init_args.reg.init_args.pairs",
            str(reg_pairs),
            "--model.init_args.max_generator_steps",
            str(generator_steps),
            "--model.init_args.evaluator",
            "null",
            "--model.init_args.init_from",
            "null",
            "--data.init_args.root",
            str(work / "data"),
            "--data.init_args.download",
            "false",
        ],
        run=False,
    )
    gen_every = cli.model.gen_every
    images = torch.rand(batch * gen_every * (generator_steps + 1), 3, 32, 32) * 2 - 1
    loader = DataLoader(TensorDataset(images, torch.zeros(len(images), dtype=torch.long)), batch_size=batch)
    device = cli.trainer.strategy.root_device
    clock = StepClock(device)
    cli.trainer.callbacks.append(clock)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cli.trainer.fit(cli.model, train_dataloaders=loader)
    steps = step_times(clock.stamps)[gen_every * 2 :]  # first 2 cycles: warm-up
    cycle = statistics.median(steps) * gen_every  # one generator step and gen_every fake-score steps
    return {
        "batch_size": batch,
        "gen_every": gen_every,
        "batches_timed": len(steps),
        "median_batch_seconds": statistics.median(steps),
        "generator_steps_per_second": 1 / cycle,
        "train_images_per_second": batch / statistics.median(steps),
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }, cli.model


def sampling_throughput(model: Any, device: torch.device, batch: int) -> dict[str, float]:
    """Images/s of ``model.sample`` at 1, 2 and 4 NFE, bf16 autocast on CUDA."""
    model = model.to(device).eval()
    z = torch.randn(batch, 3, 32, 32, device=device)
    result = {}
    for nfe in (1, 2, 4):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            seconds = median_seconds(lambda: model.sample(z, nfe), 5, device)
        result[f"nfe{nfe}_images_per_second"] = batch / seconds
    return result


# What the report keeps of each measured set of options (benchmarks.speed's file has the rest).
SPEED_FIELDS = (
    "step_seconds",
    "bare_step_seconds",
    "limit_seconds",
    "step_over_limit",
    "bare_over_lightning",
    "generator_steps_per_second",
    "warmup_seconds",
    "amortised_step_seconds",
    "options",
)


def step_against_limit(out: Path, work: Path, tiny: bool) -> dict[str, Any]:
    """``benchmarks.speed`` on ``configs/sign_cifar10.yaml`` (batch 128; the config's bf16-mixed): the default
    options, eager and compiled (compiled: None with ``tiny``)."""
    argv = ["--config", str(CONFIG), "--teacher", str(work / "teacher"), "--workdir", str(work / "speed")]
    argv += ["--output", str(out), "--extractor", "none"]  # Inception's features/s: measured above
    argv += ["--batch-size", "8", "--smoke", "--options"] if tiny else ["--batch-size", "128", "--options", "compile"]
    path = speed.main(argv)
    runs = json.loads(path.read_text())["option_runs"]
    defaults = speed.default_options()
    found = {"eager": None, "compiled": None}
    for run in runs:
        if {**run["options"], "compile": defaults["compile"]} == defaults:
            found["compiled" if run["options"]["compile"] else "eager"] = {key: run[key] for key in SPEED_FIELDS}
    return {**found, "file": path.name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--tiny", action="store_true", help="toy sizes on any device (a smoke test)")
    parser.add_argument("--inception-fp16", default=None)
    args = parser.parse_args()
    out = Path(args.out).resolve()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available() and not args.tiny
    accelerator, precision = ("gpu", "bf16-mixed") if cuda else ("cpu", "32-true")
    device = torch.device("cuda" if cuda else "cpu")
    if args.inception_fp16:
        install_inception_fp16(Path(args.inception_fp16))
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "lightning": L.__version__,
        "precision": precision,
        "teacher_parameters": write_teacher(work / "teacher", args.tiny),
    }
    write_cifar10_tree(work / "data")
    start = time.perf_counter()
    report["rehearsal"] = rehearse(work, accelerator, precision, fid_samples=16 if args.tiny else 500)
    report["rehearsal_seconds"] = time.perf_counter() - start
    report["training"] = {}
    for name, config in TIMED.items():
        report["training"][name], model = training_throughput(
            config,
            work,
            accelerator,
            precision,
            batch=8 if args.tiny else 128,
            generator_steps=5 if args.tiny else 12,
            reg_pairs=16 if args.tiny else 1024,
        )
    report["sampling"] = sampling_throughput(model, device, batch=16 if args.tiny else 1000)

    count = 32 if args.tiny else 2000
    synchronize(device)
    start = time.perf_counter()
    generate_pairs(model.teacher.to(device), count=count, steps=20, seed=0, batch_size=1000, solver="unipc")
    synchronize(device)
    report["pairs_unipc20_per_second"] = count / (time.perf_counter() - start)

    extractor = InceptionV3Features(allow_download=False)
    extractor.prepare(LocalStrategy(device))
    extractor.to(device)
    images = torch.rand(32 if args.tiny else 500, 3, 32, 32, device=device) * 2 - 1
    with torch.no_grad():
        report["inception_images_per_second"] = len(images) / median_seconds(lambda: extractor(images), 3, device)
    if cuda:
        report["peak_memory_gib_overall"] = torch.cuda.max_memory_allocated(device) / 2**30
    report["step_against_limit"] = step_against_limit(out, work, args.tiny)
    report = write_results(out / "gpu_check.json", report, composed_config(config_files(CONFIG)))
    print("GPU-CHECK " + json.dumps(report))


if __name__ == "__main__":
    main()
