"""The GPU check script (scripts/gpu_check.py) at toy sizes on the CPU, so that it still runs when a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Multi-process or end-to-end: in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(900)
def test_gpu_check_runs_at_toy_sizes(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), str(tmp_path), "--tiny"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    first, resumed = report["rehearsal"]
    assert first["generator_steps"] == 3 and resumed["generator_steps"] == 4
    assert {"val/fid16_inception_nfe1", "val/teacher_fid16_inception_nfe4"} <= set(first["metrics"])
    assert set(report["training"]) == {"regression_stage", "dmd_stage", "all_terms"}
    assert all(timed["generator_steps_per_second"] > 0 for timed in report["training"].values())
    assert (report["training"]["regression_stage"]["gen_every"], report["training"]["dmd_stage"]["gen_every"]) == (1, 5)
    assert {"nfe1_images_per_second", "nfe4_images_per_second"} <= set(report["sampling"])
    assert report["pairs_unipc20_per_second"] > 0 and report["inception_images_per_second"] > 0
    # The step against its compute limit (benchmarks.speed), eager only at toy sizes.
    step = report["step_against_limit"]
    assert step["compiled"] is None and step["eager"]["options"]["compile"] is False
    assert all(step["eager"][key] > 0 for key in ("step_seconds", "limit_seconds", "step_over_limit"))
    assert step["eager"]["bare_over_lightning"] > 0 and step["eager"]["generator_steps_per_second"] > 0
    assert json.loads((tmp_path / step["file"]).read_text())["settings"]["precision"] == "bf16-mixed"
