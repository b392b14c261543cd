"""A resumed fit trains with its config's optimizer settings: a new learning rate given with ``--ckpt_path`` used to
be replaced by the checkpoint's (Lightning restores the optimizer's param groups) while config.yaml recorded the
new one. Unchanged settings leave the resume exact; a change the restored LR schedule cannot take is refused."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from helpers import fit, snapshot, tiny_sign, write_config

from signs_lightning.core.checkpoint_io import read_checkpoint
from signs_lightning.modules.optimizer_settings import ResumeSettingsError
from signs_lightning.run.callbacks import ModelCheckpoint
from signs_lightning.run.cli import cli_main

LR, NEW_LR = 1e-3, 5e-4
CHANGED = "with the config's optimizer settings instead of the checkpoint's"


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI warns when it is given args while sys.argv holds pytest's."""
    monkeypatch.setattr(sys, "argv", ["signs"])


def changed_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if CHANGED in r.getMessage()]


def test_resume_with_a_new_learning_rate_trains_with_it(tiny_teacher_dir, tmp_path, caplog) -> None:
    config = write_config(tmp_path / "fit.yaml", tiny_teacher_dir, steps=2)
    settings = yaml.safe_load(config.read_text())
    optimizer = {"class_path": "torch.optim.AdamW", "init_args": {"lr": LR, "weight_decay": 0.01}}
    settings["model"]["init_args"]["generator_optimizer"] = optimizer
    config.write_text(yaml.safe_dump(settings))
    run = ["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run")]
    cli_main(run)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(last)["optimizer_states"][0]["param_groups"][0]["lr"] == LR

    new_lr = ["--model.init_args.generator_optimizer.init_args.lr", str(NEW_LR)]
    with caplog.at_level("INFO"):
        cli = cli_main([*run, "--ckpt_path", "last", "--model.init_args.max_generator_steps", "3", *new_lr])
    assert cli.model.generator_steps == 3
    group = cli.trainer.optimizers[0].param_groups[0]
    assert group["lr"] == NEW_LR and group["weight_decay"] == 0.01
    # The step trained with the new lr, and the checkpoint it left goes on with it.
    assert read_checkpoint(last)["optimizer_states"][0]["param_groups"][0]["lr"] == NEW_LR
    (line,) = changed_lines(caplog)
    assert f"resumed from {last} " in line and line.endswith(f"generator lr={NEW_LR} (checkpoint: {LR})")


def warmup(total_iters: int) -> functools.partial:
    """A ``LinearLR`` warm-up from 0.1 · lr (DMD2's kind of schedule, as in the GPU configs)."""
    return functools.partial(torch.optim.lr_scheduler.LinearLR, start_factor=0.1, total_iters=total_iters)


def sign(teacher: Path, lr: float, scheduler: functools.partial | None = warmup(10)) -> L.LightningModule:
    optimizer = functools.partial(torch.optim.AdamW, lr=lr)
    return tiny_sign(teacher, generator_optimizer=optimizer, generator_lr_scheduler=scheduler)


def test_resume_with_the_same_lr_is_exact_and_a_new_lr_moves_the_warmup(tiny_teacher_dir, tmp_path, caplog) -> None:
    whole = sign(tiny_teacher_dir, LR)
    fit(whole, tmp_path / "whole", steps=3, enable_checkpointing=False)
    # Saved mid-epoch, as a killed run leaves it (a save at the end of a fit would resume into a new epoch).
    save = ModelCheckpoint(dirpath=tmp_path / "first", save_last=True, every_n_train_steps=2)
    fit(sign(tiny_teacher_dir, LR), tmp_path / "first", steps=2, callbacks=[save])
    checkpoint = tmp_path / "first" / "last.ckpt"

    with caplog.at_level("INFO"):
        same = sign(tiny_teacher_dir, LR)
        trainer = fit(same, tmp_path / "same", steps=3, ckpt_path=str(checkpoint), enable_checkpointing=False)
    assert changed_lines(caplog) == []
    for key, value in snapshot(whole).items():
        assert torch.equal(same.state_dict()[key], value), key
    assert trainer.optimizers[0].param_groups[0]["lr"] == whole.trainer.optimizers[0].param_groups[0]["lr"]

    caplog.clear()
    with caplog.at_level("INFO"):
        moved = sign(tiny_teacher_dir, NEW_LR)
        trainer = fit(moved, tmp_path / "moved", steps=3, ckpt_path=str(checkpoint), enable_checkpointing=False)
    # The warm-up continues from step 2 as if the run had started at the new lr: 0.1 → 1 over 10 steps, at step 3.
    group = trainer.optimizers[0].param_groups[0]
    assert group["lr"] == pytest.approx(NEW_LR * (0.1 + 0.9 * 3 / 10), rel=1e-12)
    assert group["initial_lr"] == NEW_LR and trainer.lr_scheduler_configs[0].scheduler.base_lrs == [NEW_LR]
    (line,) = changed_lines(caplog)
    assert line.endswith(f"generator lr={NEW_LR} (checkpoint: {LR}, its schedule scaled by 0.5)")
    assert any(not torch.equal(moved.state_dict()[k], v) for k, v in snapshot(whole).items())


@pytest.mark.parametrize(
    "saved,resumed,expected",
    [
        (
            warmup(10),
            warmup(5),
            "the LinearLR LR scheduler of optimizer generator has other settings in the config than in the "
            "checkpoint (total_iters=5 (checkpoint: 10)), and a resumed schedule keeps the checkpoint's: resume with "
            "the checkpoint's scheduler settings, or start a new run from its weights",
        ),
        (
            None,
            warmup(10),
            "optimizer generator has a LinearLR LR scheduler in the config but ran without one in the checkpoint: a "
            "schedule cannot start in the middle of a run; resume without it, or start a new run from its weights",
        ),
        (
            functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=10, eta_min=1e-5),
            functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=10, eta_min=1e-5),
            f"optimizer settings changed on resume (generator lr={NEW_LR} (checkpoint: {LR})), but the "
            "CosineAnnealingLR schedule of optimizer generator is not proportional to its base lr and cannot be "
            "moved to them: resume with the checkpoint's settings",
        ),
    ],
    ids=["schedule_settings", "schedule_added", "schedule_not_proportional"],
)
def test_a_change_the_restored_schedule_cannot_take_is_refused(
    tiny_teacher_dir, tmp_path, saved, resumed, expected
) -> None:
    fit(sign(tiny_teacher_dir, LR, saved), tmp_path / "first", steps=1)
    (checkpoint,) = (tmp_path / "first").rglob("*.ckpt")
    lr = NEW_LR if "not proportional" in expected else LR
    resumed_model = sign(tiny_teacher_dir, lr, resumed)
    with pytest.raises(ResumeSettingsError) as info:
        fit(resumed_model, tmp_path / "resumed", steps=2, ckpt_path=str(checkpoint), enable_checkpointing=False)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert resumed_model.generator_steps == 1  # refused before any step
