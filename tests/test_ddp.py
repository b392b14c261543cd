"""SIGN under two-process CPU DDP (gloo), launched as a subprocess script (see scripts/ddp_sign_check.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ddp_sign_check.py"


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_two_process_ddp_fit_keeps_ranks_in_sync(tiny_teacher_dir, tmp_path, precision) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tiny_teacher_dir), str(tmp_path), precision],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    reports = re.findall(r"DDP-OK rank=(\d) checksum=([-\d.]+)", result.stdout)
    assert sorted(rank for rank, _ in reports) == ["0", "1"], output[-4000:]
    assert len({checksum for _, checksum in reports}) == 1
