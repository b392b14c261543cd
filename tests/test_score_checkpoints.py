"""``benchmarks/score_checkpoints.py`` on a one-step SIGN of the tiny teacher (numbers are not asserted, only which
ones are written and that a teacher folder is scored with the same noise as a checkpoint's teacher row)."""

from __future__ import annotations

import json

import lightning as L
import pytest

from benchmarks import score_checkpoints
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.losses import Regression
from signs_lightning.modules import SIGNModule

# End to end (trains the 8x8 LeNet): in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow


def test_checkpoints_and_teacher_folders_land_in_one_file(tiny_teacher_dir, tmp_path) -> None:
    model = SIGNModule(
        teacher=str(tiny_teacher_dir), reg=Regression(pairs=8, sampler_steps=2), max_generator_steps=1, sample_nfe=[1]
    )
    trainer = L.Trainer(
        max_epochs=-1, default_root_dir=tmp_path, logger=False, enable_progress_bar=False, limit_val_batches=0
    )
    trainer.fit(model, EmbeddedMNISTDataModule(image_size=8, batch_size=8))
    checkpoint = str(tmp_path / "sign.ckpt")
    trainer.save_checkpoint(checkpoint)
    output = tmp_path / "scores.json"
    common = ["--num-samples", "40", "--output", str(output)]
    score_checkpoints.main([checkpoint, "--sign-nfe", "1", "2", "--teacher-nfe", "2", *common])
    score_checkpoints.main([str(tiny_teacher_dir), "--teacher-nfe", "2", *common])
    scores = json.loads(output.read_text())
    assert set(scores[checkpoint]) == {
        "sign/fid40_lenet8_nfe1",
        "sign/fid40_lenet8_nfe2",
        "sign_ffz/fid40_lenet8_nfe2",
        "teacher/teacher_fid40_lenet8_nfe2",
        "generator_steps",
    }
    assert scores[checkpoint]["generator_steps"] == 1
    # The teacher folder's row is the checkpoint's teacher row: same extractor, reference and noise.
    assert scores[str(tiny_teacher_dir)] == {
        "teacher/teacher_fid40_lenet8_nfe2": scores[checkpoint]["teacher/teacher_fid40_lenet8_nfe2"]
    }
