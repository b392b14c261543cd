"""Test-only callbacks for jobs that a test interrupts: they let it interrupt a job's first run after a known generator
step whatever the machine's speed, and print where each run starts so the test can check that a rerun resumed
instead of starting over (``HOLD-TEST run <SLURM_RESTART_COUNT> starts at generator step <n>``).

- ``HoldFirstRun`` parks every rank, idle in Python, after the step until SIGTERM (tests/test_checkpoints.py's
  one-process SIGTERM test).
- ``PaceFirstRun`` only marks that each rank passed the step and keeps training, slowed by a sleep before each
  backward: a signal sent then lands mid-step, in the middle of a rank's training, as a real one would.

Reruns (``SLURM_RESTART_COUNT`` set) are neither held nor slowed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


def _first_run() -> bool:
    return "SLURM_RESTART_COUNT" not in os.environ


class _FirstRunCallback(Callback):
    def __init__(self, step: int, marker_dir: str) -> None:
        self.step = step
        self.marker_dir = Path(marker_dir)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
            print(f"HOLD-TEST run {restarts} starts at generator step {pl_module.generator_steps}", flush=True)


class HoldFirstRun(_FirstRunCallback):
    """In a job's first run, after generator step ``step``, write ``<marker_dir>/held-<rank>`` and wait for SIGTERM."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        if not _first_run() or pl_module.generator_steps != self.step:
            return
        (self.marker_dir / f"held-{trainer.global_rank}").touch()
        # Short sleeps: Python runs signal handlers between them. Lightning's SIGTERM handler sets received_sigterm
        # and the fit loop then stops the way it does for any SIGTERM.
        while not trainer.received_sigterm:
            time.sleep(0.1)


class PaceFirstRun(_FirstRunCallback):
    """In a job's first run, once generator step ``step`` is done, write ``<marker_dir>/passed-<rank>``, and from
    then on sleep ``seconds`` before each backward: the job trains on, slowly enough that it is still training
    when the test's signal lands, most likely inside a step (between two optimizers' updates)."""

    def __init__(self, step: int, marker_dir: str, seconds: float) -> None:
        super().__init__(step, marker_dir)
        self.seconds = seconds

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Any) -> None:
        if _first_run() and pl_module.generator_steps >= self.step:
            time.sleep(self.seconds)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        if _first_run() and pl_module.generator_steps == self.step:
            (self.marker_dir / f"passed-{trainer.global_rank}").touch()
