"""A callback that SIGKILLs the whole fit (every rank) at a given generator step: a hard crash, mid-training, for
exact-resume tests. Fits under test run in their own process session, so the group holds only them."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillAtGeneratorStep(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        if pl_module.generator_steps == self.step:
            os.killpg(os.getpgrp(), signal.SIGKILL)
