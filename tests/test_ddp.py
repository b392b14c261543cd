"""SIGN under two-process CPU DDP (gloo), launched as a subprocess script (see scripts/ddp_sign_check.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from signs_lightning.diffusion.score_model import load_teacher
from signs_lightning.diffusion.teacher_pairs import generate_pairs

# Multi-process or end-to-end: in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ddp_sign_check.py"


def run_check(teacher: Path, out: Path, precision: str, devices: int = 2) -> dict[str, tuple[str, str]]:
    """{rank: (weights checksum, per-step stream hashes)} of one run of the script."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(teacher), str(out), precision, str(devices)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=out,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    reports = re.findall(r"DDP-OK rank=(\d) checksum=([-\d.]+) stream=(\S+)", result.stdout)
    assert sorted(rank for rank, _, _ in reports) == [str(r) for r in range(devices)], output[-4000:]
    return {rank: (checksum, stream) for rank, checksum, stream in reports}


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_two_process_ddp_fit_keeps_ranks_in_sync(tiny_teacher_dir, tmp_path, precision) -> None:
    reports = run_check(tiny_teacher_dir, tmp_path / "run", precision)
    assert len({checksum for checksum, _ in reports.values()}) == 1


def test_ranks_draw_different_noise_that_repeats_and_pairs_do_not_depend_on_world_size(tiny_teacher_dir, tmp_path):
    first = run_check(tiny_teacher_dir, tmp_path / "first", "32-true")
    again = run_check(tiny_teacher_dir, tmp_path / "again", "32-true")
    streams = {rank: stream.split(",") for rank, (_, stream) in first.items()}
    # Every step of rank 0 starts from another RNG state than the same step of rank 1 ...
    assert all(a != b for a, b in zip(streams["0"], streams["1"])), streams
    # ... and a second run with the same seed draws exactly the same (weights included).
    assert {rank: stream for rank, (_, stream) in again.items()} == {rank: s for rank, (_, s) in first.items()}
    assert {c for c, _ in again.values()} == {c for c, _ in first.values()}
    # L_reg's pairs, made by two ranks and gathered, equal the pairs one process makes.
    shared = torch.load(tmp_path / "first" / "pairs.pt", weights_only=True)
    single = generate_pairs(load_teacher(str(tiny_teacher_dir)), count=16, steps=2, seed=0)
    assert torch.equal(shared["z"], single.z)
    torch.testing.assert_close(shared["y"], single.y, rtol=1e-4, atol=1e-4)
