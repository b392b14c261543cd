"""What the generator modules offer beyond fitting: ``signs test`` and ``signs predict``, LR schedules, and
updates with a non-finite gradient skipped."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY, fit, snapshot, tiny_sign
from PIL import Image

from signs_lightning.losses import DistributionMatching
from signs_lightning.modules.common import NonFiniteUpdates
from signs_lightning.run.cli import cli_main, main

# The embedded MNIST has a test split only when the fit holds one out (EmbeddedMNISTDataModule).
TEST_SPLIT = ["--data.init_args.test_per_class", "5"]


@pytest.fixture
def trained(tiny_teacher_dir, tmp_path) -> Path:
    """A checkpoint of a 2-generator-step fit through the CLI, 5 digits per class held out for ``signs test``."""
    cli_main(
        [
            "fit",
            *TINY,
            *TEST_SPLIT,
            "--model.init_args.teacher",
            str(tiny_teacher_dir),
            "--model.init_args.max_generator_steps",
            "2",
            "--trainer.default_root_dir",
            str(tmp_path / "fit"),
            "--trainer.num_sanity_val_steps",
            "0",
        ]
    )
    (checkpoint,) = (tmp_path / "fit").rglob("*.ckpt")
    return checkpoint


def test_signs_test_scores_the_checkpoint_on_the_test_split_not_the_validation_split(
    trained, tiny_teacher_dir, tmp_path
) -> None:
    metrics = {}
    for command in ("test", "validate"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            cli = cli_main(
                [
                    command,
                    *TINY,
                    *TEST_SPLIT,
                    "--model.init_args.teacher",
                    str(tiny_teacher_dir),
                    "--ckpt_path",
                    str(trained),
                    "--trainer.default_root_dir",
                    str(tmp_path / command),
                ]
            )
        assert "idempotence" in out.getvalue() and "reconstruction" in out.getvalue()
        metrics.update({k: float(v) for k, v in cli.trainer.callback_metrics.items()})
    # `signs test` used to score the validation loader again: every number equal to `signs validate`'s. The
    # reconstruction error f(x) ≈ x reads the split's images (the idempotence error only noise, seeded alike).
    assert metrics["test/reconstruction_error"] != metrics["val/reconstruction_error"]


def predict(teacher: Path, checkpoint: Path, root: Path, *extra: str) -> Path:
    cli_main(
        [
            "predict",
            *TINY,
            "--model.init_args.teacher",
            str(teacher),
            "--ckpt_path",
            str(checkpoint),
            "--trainer.default_root_dir",
            str(root),
            "--model.init_args.predict_samples",
            "10",
            *extra,
        ]
    )
    return root / "samples"


def test_signs_predict_writes_images_npz_and_grid_reproducibly(trained, tiny_teacher_dir, tmp_path) -> None:
    first = predict(tiny_teacher_dir, trained, tmp_path / "a", "--model.init_args.predict_nfe", "2")
    assert sorted(p.name for p in first.glob("0*.png")) == [f"{i:06d}.png" for i in range(10)]
    assert (first / "grid.png").is_file()
    with np.load(first / "samples.npz") as data:
        images = data["arr_0"]
    assert images.shape == (10, 8, 8, 1) and images.dtype == np.uint8
    assert np.array_equal(images[3, ..., 0], np.asarray(Image.open(first / "000003.png")))
    # The same seed gives the same images at 2 NFE (re-noising included), whatever the batch they fell in.
    again = predict(tiny_teacher_dir, trained, tmp_path / "b", "--model.init_args.predict_nfe", "2")
    with np.load(again / "samples.npz") as data:
        assert np.array_equal(data["arr_0"], images)


def test_signs_predict_refuses_a_folder_with_earlier_samples(
    trained, tiny_teacher_dir, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["signs"])  # LightningCLI warns when given args while sys.argv holds pytest's
    # It used to print "wrote 4 samples" with samples.npz holding 4 new images and 6 stale ones.
    samples = predict(tiny_teacher_dir, trained, tmp_path)
    before = {path.name: path.read_bytes() for path in samples.iterdir()}
    capsys.readouterr()
    argv = ["predict", *TINY, "--model.init_args.teacher", str(tiny_teacher_dir), "--ckpt_path", str(trained)]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--trainer.default_root_dir", str(tmp_path), "--model.init_args.predict_samples", "4"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and len(err.splitlines()) == 1, err
    assert f"{samples} already holds samples of an earlier run (samples.npz, 000000.png, 000001.png and 8 more)" in err
    assert "choose a new --trainer.default_root_dir (predict writes into its samples/)" in err
    assert {path.name: path.read_bytes() for path in samples.iterdir()} == before


def test_lr_schedulers_step_with_their_optimizer_updates(tiny_teacher_dir, tmp_path) -> None:
    warmup = lambda optimizer: torch.optim.lr_scheduler.LinearLR(optimizer, 0.1, 1.0, total_iters=4)  # noqa: E731
    model = tiny_sign(
        tiny_teacher_dir, dmd=DistributionMatching(lr_scheduler=warmup), gen_every=2, generator_lr_scheduler=warmup
    )
    fit(model, tmp_path, steps=2)
    # 2 generator updates and 3 fake-score updates (batches 0..2): the schedules are 2 and 3 steps into warm-up.
    generator, fake = (config.scheduler for config in model.trainer.lr_scheduler_configs)
    assert generator.last_epoch == 2 and fake.last_epoch == 3
    assert model.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * (0.1 + 0.9 * 2 / 4))


def test_non_finite_gradients_skip_the_update_then_stop_the_fit(tiny_teacher_dir, tmp_path, monkeypatch) -> None:
    model = tiny_sign(tiny_teacher_dir, max_consecutive_skips=3)
    fit(model, tmp_path / "healthy", steps=1)
    student, ema = snapshot(model.student), snapshot(model.ema)
    original = type(model).generator_losses

    def poisoned(self, x, z):
        losses, f_z = original(self, x, z)
        losses["rec"] = losses["rec"] * float("nan")
        return losses, f_z

    monkeypatch.setattr(type(model), "generator_losses", poisoned)
    with pytest.raises(NonFiniteUpdates, match="3 updates in a row had a non-finite gradient.*last good checkpoint"):
        fit(model, tmp_path / "poisoned", steps=10)
    assert model.skipped_updates == 3 and model.generator_steps == 1
    assert all(torch.equal(v, student[k]) for k, v in model.student.state_dict().items())
    assert all(torch.equal(v, ema[k]) for k, v in model.ema.state_dict().items())
    # The poisoned fit's fresh optimizer never stepped: no moments, no step count.
    assert model.trainer.optimizers[0].state_dict()["state"] == {}
