"""SIGTERM during a fit (signs_lightning/run/sigterm.py): the handler only raises Lightning's flag, the fit stops at
the end of the batch the signal landed in and saves ``last.ckpt`` there. tests/test_slurm.py sends it to two ranks
of a real Slurm job (``scontrol requeue``) while they train."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pytest
from helpers import write_config

from signs_lightning.core.checkpoint_io import read_checkpoint
from signs_lightning.run.cli import SIGTERM_EXIT, cli_main

SIGNAL_AT = 2  # generator steps done when the signal lands, in the next batch's backward
SEEN: dict[str, Any] = {}  # what the probe saw inside the fit (the CLI builds it; the test cannot reach it)


class SigtermMidBatch(L.Callback):
    """Sends this process SIGTERM from inside a training step once the module has taken ``step`` generator steps;
    records the SIGTERM handler the fit trains with."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        SEEN.setdefault("handler", signal.getsignal(signal.SIGTERM))

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Any) -> None:
        if "sent_at" not in SEEN and pl_module.generator_steps == self.step:
            SEEN["sent_at"] = pl_module.generator_steps
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_mid_step_only_raises_the_flag_and_the_fit_saves_at_the_batch_end(
    tiny_teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["signs"])  # LightningCLI warns when given args while sys.argv holds pytest's
    SEEN.clear()
    before = signal.getsignal(signal.SIGTERM)
    root = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        cli_main(
            [
                "fit",
                "--config",
                str(write_config(tmp_path / "fit.yaml", tiny_teacher_dir, steps=1000)),
                "--trainer.default_root_dir",
                str(root),
                "--trainer.callbacks+=test_sigterm.SigtermMidBatch",
                "--trainer.callbacks.init_args.step",
                str(SIGNAL_AT),
            ]
        )
    assert stop.value.code == SIGTERM_EXIT
    # Not Lightning's handler, which runs a broadcast inside the handler under DDP.
    assert getattr(SEEN["handler"], "__qualname__", "").startswith("SigtermFlagOnly."), SEEN["handler"]
    assert signal.getsignal(signal.SIGTERM) is before  # restored after the fit
    # The signal landed mid-step; the batch finished, and its state is what last.ckpt holds.
    saved = read_checkpoint(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert SEEN["sent_at"] == SIGNAL_AT
    assert saved["signs_counters"]["generator_steps"] == SIGNAL_AT + 1
