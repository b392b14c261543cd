"""The demo pipeline (teacher → SIGN → metrics and sample grid) on a tiny setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signs_lightning.commands.demo import demo_main

# End to end: in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow

TINY = [
    "--teacher-steps",
    "4",
    "--student-steps",
    "3",
    "--dmd-config",
    str(Path(__file__).resolve().parents[1] / "configs" / "sign_mnist_dmd.yaml"),
    "--dmd-steps",
    "2",
    "--num-samples",
    "64",
    "--teacher-nfe",
    "1",
    "2",
    "--override",
    "data.init_args.image_size=8",
    "--override",
    "data.init_args.batch_size=16",
    "--override",
    "trainer.enable_progress_bar=false",
    "--teacher-override",
    "model.init_args.image_size=8",
    "--teacher-override",
    "model.init_args.block_out_channels=[8, 8]",
    "--teacher-override",
    "model.init_args.sample_nfe=[2]",
    "--sign-override",
    "model.init_args.reg.init_args.pairs=32",
    "--sign-override",
    "model.init_args.evaluator.init_args.extractor.init_args.image_size=8",
    "--sign-override",
    "model.init_args.evaluator.init_args.num_samples=32",
]


def test_demo_runs_both_stages_end_to_end_and_reuses_the_teacher(tmp_path, capsys) -> None:
    out = demo_main(["--output", str(tmp_path / "demo"), *TINY])
    metrics = json.loads((out / "metrics.json").read_text())
    for key in [
        "sign/fid64_lenet8_nfe1",
        "sign/fid64_lenet8_nfe2",
        "teacher/teacher_fid64_lenet8_nfe2",
        "sign/fid64_lenet8_of_ffz",
        "sign/idempotence_error",
        "sign/reconstruction_error",
        "sign/class_coverage_nfe1",
        "sign_stage1/fid64_lenet8_nfe1",
        "sign_stage1/fid64_lenet8_of_ffz",
    ]:
        assert key in metrics, key
    # The second stage (distribution matching) ran from the first's last checkpoint.
    assert metrics["sign_stage1_generator_steps"] == 3 and metrics["sign_generator_steps"] == 2
    assert (out / "sign_dmd_logs" / "checkpoints" / "last.ckpt").is_file()
    assert (out / "samples.png").stat().st_size > 0
    assert "output folder" in capsys.readouterr().out
    again = demo_main(["--output", str(tmp_path / "demo"), *TINY])
    assert json.loads((again / "metrics.json").read_text())["seconds_teacher_training"] == 0.0
