"""A fit killed with SIGKILL mid-training and restarted with ``--ckpt_path last`` continues the same trajectory:
its per-step losses equal an uninterrupted fit's, step for step, on one process and on two (random streams per
rank, EMA, both optimizers and LR schedules, counters, and the data order and position restored)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Multi-process or end-to-end: in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent


def fit(tmp: Path, teacher: Path, devices: int, logs: str, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "signs_lightning.run.cli",
        "fit",
        "--seed_everything",
        "3",
        "--model.class_path",
        "signs_lightning.modules.SIGNModule",
        "--model.init_args.teacher",
        str(teacher),
        "--model.init_args.dmd",
        "signs_lightning.losses.DistributionMatching",
        "--model.init_args.flow",
        "signs_lightning.losses.Flow",
        "--model.init_args.flow.init_args.intervals",
        "4",
        "--model.init_args.reg.init_args.pairs",
        "16",
        "--model.init_args.reg.init_args.sampler_steps",
        "2",
        "--model.init_args.reg.init_args.cache_dir",
        str(tmp / "cache"),
        "--model.init_args.ema_decay",
        "0.9",
        "--model.init_args.max_generator_steps",
        "10",
        "--model.init_args.generator_lr_scheduler",
        "torch.optim.lr_scheduler.LinearLR",
        "--model.init_args.generator_lr_scheduler.init_args.total_iters",
        "20",
        # 4,500 digits / 8 / W: several epochs, and the kill lands mid-epoch.
        "--data.class_path",
        "signs_lightning.data.EmbeddedMNISTDataModule",
        "--data.init_args.image_size",
        "8",
        "--data.init_args.batch_size",
        "8",
        "--trainer.limit_train_batches",
        "3",
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        str(devices),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.init_args.save_dir",
        str(tmp / logs),
        "--trainer.callbacks+=signs_lightning.run.callbacks.ModelCheckpoint",
        "--trainer.callbacks.init_args.dirpath",
        str(tmp / "checkpoints"),
        "--trainer.callbacks.init_args.save_last",
        "true",
        # global_step counts both optimizers: a save every 2 generator steps.
        "--trainer.callbacks.init_args.every_n_train_steps",
        "4",
        *extra,
    ]
    if devices > 1:
        command += ["--trainer.strategy", "ddp_find_unused_parameters_true"]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp, start_new_session=True
    )


def losses(log_root: Path) -> dict[int, dict[str, str]]:
    """{global step: the train/* values logged at it} from every CSVLogger version under ``log_root``."""
    rows: dict[int, dict[str, str]] = {}
    for path in sorted(log_root.rglob("metrics.csv")):
        with open(path) as handle:
            for row in csv.DictReader(handle):
                values = {k: v for k, v in row.items() if k.startswith("train/loss") and v}
                if values:
                    rows.setdefault(int(row["step"]), {}).update(values)
    return rows


@pytest.mark.parametrize("devices", [1, 2])
def test_a_killed_fit_resumed_from_last_repeats_the_uninterrupted_losses(tiny_teacher_dir, tmp_path, devices):
    whole_dir, broken_dir = tmp_path / "whole", tmp_path / "broken"
    whole_dir.mkdir(), broken_dir.mkdir()
    whole = fit(whole_dir, tiny_teacher_dir, devices, "logs")
    assert whole.returncode == 0, whole.stderr[-4000:]

    killed = fit(
        broken_dir,
        tiny_teacher_dir,
        devices,
        "logs_killed",
        "--trainer.callbacks+=kill_switch.KillAtGeneratorStep",
        "--trainer.callbacks.init_args.step",
        "5",
    )
    assert killed.returncode == -9, killed.stderr[-4000:]
    assert (broken_dir / "checkpoints" / "last.ckpt").is_file()
    resumed = fit(broken_dir, tiny_teacher_dir, devices, "logs_resumed", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-4000:]

    expected, got = losses(whole_dir / "logs"), losses(broken_dir / "logs_resumed")
    # Logged steps count batches. last.ckpt was written after generator step 4 (global step 8, batch 4): the
    # resumed fit redoes batches 4..9 (generator steps 5..10).
    assert sorted(got) == [step for step in sorted(expected) if step >= 4] == list(range(4, 10))
    for step, values in got.items():
        assert values == expected[step], f"global step {step}"
