"""Test-only callback for the Slurm test's jobs: hold the first run at a known step until Slurm interrupts it.

With it the test interrupts every job at the same generator step whatever the machine's speed, with both ranks
idle in Python (so Lightning's signal handlers, which run collectives, find both ranks ready), and it prints where
each run starts so the test can check that the rerun resumed instead of starting over.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


class HoldFirstRun(Callback):
    """In a job's first run, after generator step ``step``, write ``<marker_dir>/held-<rank>`` and wait for SIGTERM.

    Reruns (``SLURM_RESTART_COUNT`` set) are not held.
    """

    def __init__(self, step: int, marker_dir: str) -> None:
        self.step = step
        self.marker_dir = Path(marker_dir)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
            print(f"HOLD-TEST run {restarts} starts at generator step {pl_module.generator_steps}", flush=True)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        if "SLURM_RESTART_COUNT" in os.environ or pl_module.generator_steps != self.step:
            return
        (self.marker_dir / f"held-{trainer.global_rank}").touch()
        # Short sleeps: Python runs signal handlers between them. Lightning's SIGTERM handler sets received_sigterm
        # and the fit loop then stops the way it does for any SIGTERM.
        while not trainer.received_sigterm:
            time.sleep(0.1)
