"""SLURM requeue on SIGUSR1 (signs_lightning/run/requeue.py) in one process, Slurm faked by its environment variables
and a ``scontrol`` that only records its arguments. tests/test_slurm.py runs it under a real Slurm with 2 ranks."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import lightning as L
import pytest
from helpers import write_config
from lightning.fabric.plugins.environments import SLURMEnvironment

from signs_lightning.core.checkpoint_io import read_checkpoint
from signs_lightning.run.callbacks import ModelCheckpoint
from signs_lightning.run.cli import cli_main
from signs_lightning.run.requeue import RequeueOnSignal, slurm_job_id, without_lightning_requeue

JOB_ID = "4242"
SIGNAL_AT = 2  # generator steps done when the signal lands, in the next batch's first backward


class SignalMidBatch(L.Callback):
    """Sends this process SIGUSR1 from inside a training step (before a backward) once the module has taken
    ``step`` generator steps; records the SIGUSR1 handler the fit runs with and whether it validated."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.sent_at: int | None = None
        self.handler: Any = None
        self.validations = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.handler = signal.getsignal(signal.SIGUSR1)

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Any) -> None:
        if self.sent_at is None and pl_module.generator_steps == self.step:
            self.sent_at = trainer.global_step
            os.kill(os.getpid(), signal.SIGUSR1)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validations += 1


@pytest.fixture
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI warns when it is given args while sys.argv holds pytest's."""
    monkeypatch.setattr(sys, "argv", ["signs"])


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-task Slurm job as Lightning detects it, and a ``scontrol`` on PATH that appends its arguments to the
    returned file."""
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(name, raising=False)
    variables = {
        "SLURM_JOB_ID": JOB_ID,
        "SLURM_JOB_NAME": "signs-unit",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "1",
        "SLURM_NODELIST": "localhost",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol.calls"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


@pytest.mark.parametrize(
    "plugins",
    [[], ["--trainer.plugins", "lightning.pytorch.plugins.environments.SLURMEnvironment"]],
    ids=["cli-default", "configured-auto-requeue"],
)
def test_sigusr1_mid_step_saves_last_at_the_batch_end_requeues_and_stops(
    tiny_teacher_dir: Path, tmp_path: Path, fake_slurm: Path, plain_argv: None, plugins: list[str]
) -> None:
    config = write_config(tmp_path / "fit.yaml", tiny_teacher_dir, steps=1000)
    root = tmp_path / "run"
    cli = cli_main(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.default_root_dir",
            str(root),
            "--trainer.callbacks+=test_requeue.SignalMidBatch",
            "--trainer.callbacks.init_args.step",
            str(SIGNAL_AT),
            *plugins,
        ]
    )
    trainer = cli.trainer
    probe = next(c for c in trainer.callbacks if isinstance(c, SignalMidBatch))
    requeue = next(c for c in trainer.callbacks if isinstance(c, RequeueOnSignal))
    checkpoint = next(c for c in trainer.callbacks if isinstance(c, ModelCheckpoint))

    # Lightning's in-handler save is not installed, whether the CLI turned it off or the config asked for it.
    assert getattr(probe.handler, "__self__", None) is requeue, probe.handler
    environment = trainer._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue == bool(plugins)
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # restored after the fit

    # The signal landed mid-step; the state was saved when that batch had ended, and the fit stopped there.
    last = root / "checkpoints" / "last.ckpt"
    saved = read_checkpoint(last, weights_only=True)
    assert last.is_file() and not last.is_symlink()
    assert saved["signs_counters"]["generator_steps"] == SIGNAL_AT + 1 == cli.model.generator_steps
    assert saved["global_step"] == trainer.global_step > probe.sent_at
    assert trainer.should_stop and probe.validations == 0 and trainer.limit_val_batches == 1
    assert fake_slurm.read_text() == f"requeue {JOB_ID}\n"
    assert not list(root.glob("hpc_ckpt_*.ckpt"))

    # The SIGTERM that follows a requeue finds this step saved: it does not write it again.
    written = last.stat().st_mtime_ns
    checkpoint._save_on_sigterm(trainer)
    assert checkpoint.sigterm_checkpoint == str(last) and last.stat().st_mtime_ns == written


def test_nothing_is_installed_outside_slurm_off_the_main_thread_or_without_our_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    trainer = L.Trainer(accelerator="cpu", default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    assert without_lightning_requeue(["plugin"]) == ["plugin"]
    RequeueOnSignal().setup(trainer, L.LightningModule(), "fit")
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL

    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "signs-unit")
    monkeypatch.setenv("SLURM_JOB_ID", JOB_ID)
    thread = threading.Thread(target=RequeueOnSignal().setup, args=(trainer, L.LightningModule(), "fit"))
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    # Lightning's own ModelCheckpoint (the Trainer's default) cannot save before a requeue.
    with pytest.warns(UserWarning, match="will not requeue this Slurm job"):
        RequeueOnSignal().setup(trainer, L.LightningModule(), "fit")
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_job_id_of_an_array_task_and_of_a_plain_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "101")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    assert slurm_job_id() == "101"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "100")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert slurm_job_id() == "100_1"
