"""Rehearsals of the shipped GPU configs (the files themselves, not copies) on two CPU processes (gloo): tiny
stand-in teachers of the same image shape in the diffusers layout, synthetic CIFAR-10/CelebA trees in the real
on-disk format; CIFAR-10's two stages: the regression stage (every loss term of its config, L_reg's pairs made on
the ranks' devices and shared out, in-loop Inception FID at 1/2/4 NFE, a checkpoint and a resume), then the
distribution-matching stage from its last checkpoint (fake score at 5:1). Driven by scripts/rehearse.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_tiny_teacher
from data_trees import write_celeba_tree, write_cifar10_tree

# Multi-process or end-to-end: in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "rehearse.py"


def rehearse(workdir: Path, config: str, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(ROOT / "configs" / config), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=workdir,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("REHEARSAL ")]
    assert len(lines) == 1, output[-5000:]
    return json.loads(lines[0].removeprefix("REHEARSAL "))


def fid_keys(report: dict, who: str = "") -> set[str]:
    return {k for k in report["metrics"] if k.startswith(f"val/{who}fid")}


@pytest.mark.timeout(1200)
def test_sign_cifar10_two_stages_fit_validate_resume_and_chain_on_two_processes(tmp_path: Path) -> None:
    write_cifar10_tree(tmp_path / "data")
    write_tiny_teacher(tmp_path / "teacher", image_size=32, channels=3)
    common = ["--teacher", "teacher", "--data-root", "data"]
    # Stage 1, regression: L_rec, L_idem and L_reg only, one batch per generator step.
    first = rehearse(tmp_path, "sign_cifar10.yaml", *common, "--steps", "2")
    assert first["world_size"] == 2 and first["generator_steps"] == 2 and first["global_step"] == 2
    losses = {k.removeprefix("train/loss_") for k in first["metrics"] if k.startswith("train/loss_")}
    assert {"rec", "idem", "reg"} <= losses and not losses & {"flow", "dmd", "denoise"}
    assert fid_keys(first) == {f"val/fid16_inception_nfe{k}" for k in (1, 2, 4)}
    assert fid_keys(first, "teacher_") == {f"val/teacher_fid16_inception_nfe{k}" for k in (1, 2, 4)}
    # The generator's warm-up steps with its optimizer and is logged.
    assert 0 < first["metrics"]["lr-generator"] < 5e-5
    checkpoint = torch.load(first["last_checkpoint"], map_location="cpu", weights_only=False)
    assert checkpoint["signs_counters"]["generator_steps"] == 2
    assert len(checkpoint["lr_schedulers"]) == 1

    resumed = rehearse(tmp_path, "sign_cifar10.yaml", *common, "--steps", "3", "--resume")
    assert resumed["generator_steps"] == 3 and resumed["global_step"] == 3
    # Stage 2 as shipped: its init_from is stage 1's default last.ckpt (the same working folder), a fresh fake score
    # at 5:1 (2 generator + 6 fake-score optimizer steps), every term of the config.
    assert Path(resumed["last_checkpoint"]) == tmp_path / "runs" / "sign_cifar10" / "checkpoints" / "last.ckpt"
    second = rehearse(tmp_path, "sign_cifar10_dmd.yaml", *common, "--steps", "2")
    assert second["world_size"] == 2 and second["generator_steps"] == 2 and second["global_step"] == 2 + 6
    for term in ("rec", "idem", "dmd", "reg", "denoise"):
        assert f"train/loss_{term}" in second["metrics"], term
    assert "train/loss_flow" not in second["metrics"]
    assert fid_keys(second) == {f"val/fid16_inception_nfe{k}" for k in (1, 2, 4)}
    assert 0 < second["metrics"]["lr-generator"] < 5e-5
    checkpoint = torch.load(second["last_checkpoint"], map_location="cpu", weights_only=False)
    assert Path(second["last_checkpoint"]).parent.parent == tmp_path / "runs" / "sign_cifar10_dmd"
    assert len(checkpoint["lr_schedulers"]) == 2


@pytest.mark.timeout(1200)
def test_celeba64_teacher_and_sign_configs_fit_on_two_processes(tmp_path: Path) -> None:
    write_celeba_tree(tmp_path / "data", counts=(8, 4, 4))
    teacher = rehearse(tmp_path, "teacher_celeba64.yaml", "--data-root", "data", "--steps", "2", "--fid-samples", "8")
    assert teacher["global_step"] == 2
    assert {k for k in teacher["metrics"] if "fid" in k} == {"val/fid8_inception_nfe10", "val/fid8_inception_nfe50"}
    assert (tmp_path / "teacher_out" / "unet" / "config.json").is_file()
    write_tiny_teacher(tmp_path / "teacher64", image_size=64, channels=3)
    sign = rehearse(
        tmp_path,
        "sign_celeba64.yaml",
        "--teacher",
        "teacher64",
        "--data-root",
        "data",
        "--steps",
        "2",
        "--fid-samples",
        "8",
    )
    assert sign["generator_steps"] == 2
    assert fid_keys(sign) == {f"val/fid8_inception_nfe{k}" for k in (1, 2, 4)}
