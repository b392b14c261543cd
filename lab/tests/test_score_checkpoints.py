"""``lab/studies/score_checkpoints.py`` on a one-step SIGN of the tiny teacher (numbers are not asserted, only which
ones are written and that a teacher folder is scored with the same noise as a checkpoint's teacher row)."""

from __future__ import annotations

import json

import pytest

from lab.studies import score_checkpoints

# End to end (trains the 8x8 LeNet): in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow


def test_checkpoints_and_teacher_folders_land_in_one_file(tiny_teacher_dir, sign_checkpoint, tmp_path) -> None:
    checkpoint = str(sign_checkpoint)
    output = tmp_path / "scores.json"
    common = ["--num-samples", "40", "--output", str(output)]
    score_checkpoints.main([checkpoint, "--sign-nfe", "1", "2", "--teacher-nfe", "2", *common])
    score_checkpoints.main([str(tiny_teacher_dir), "--teacher-nfe", "2", *common])
    scores = json.loads(output.read_text())
    assert set(scores[checkpoint]) == {
        "sign/fid40_lenet8_nfe1",
        "sign/fid40_lenet8_nfe2",
        "sign/fid40_lenet8_of_ffz",
        "teacher/teacher_fid40_lenet8_nfe2",
        "generator_steps",
        "provenance",
    }
    assert scores[checkpoint]["generator_steps"] == 1
    assert set(scores[checkpoint]["provenance"]) == {"git_commit", "config_sha256"}
    # The teacher folder's row is the checkpoint's teacher row: same extractor, reference and noise.
    teacher = scores[str(tiny_teacher_dir)]
    assert teacher.pop("provenance")["config_sha256"] != scores[checkpoint]["provenance"]["config_sha256"]
    assert teacher == {"teacher/teacher_fid40_lenet8_nfe2": scores[checkpoint]["teacher/teacher_fid40_lenet8_nfe2"]}
