"""Lightning callbacks the configs use."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, with ``last.ckpt`` also written when a fit ends between save points.

    Lightning's own ``on_train_end`` writes ``last.ckpt`` only if no ``last.ckpt`` was written before, so a fit that
    stops on ``trainer.max_time``, ``max_generator_steps`` or an early stop between two ``every_n_train_steps``
    saves leaves a ``last.ckpt`` that lags behind the model by up to that many steps; resuming from it would
    silently repeat them. Same arguments as Lightning's.
    """

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        super().on_train_end(trainer, pl_module)
