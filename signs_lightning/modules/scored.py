"""``ScoredModule``: what every LightningModule here does when it validates (the generators and the teacher):
seeded per-batch metrics, FID scores at the end of the epoch and a sample grid for the loggers; and, when a fit
resumes, the optimizer settings of its config (``optimizer_settings.py``)."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor

from signs_lightning.core.randomness import forked_seed
from signs_lightning.evaluation import FIDEvaluator
from signs_lightning.evaluation.grid import log_image_grid
from signs_lightning.modules.optimizer_settings import ConfiguredOptimizerSettings


class ScoredModule(L.LightningModule):
    """Subclasses set ``evaluator`` (or None) and ``grid_key``, and implement ``score``, ``sample_grid`` and
    ``grid_step``; they call ``prepare_evaluator`` from ``setup`` and ``log_seeded`` from their evaluation steps.

    Every fit also gets ``ConfiguredOptimizerSettings``: a resumed fit trains with its config's optimizer settings
    (a new learning rate), where Lightning alone would restore the checkpoint's."""

    evaluator: FIDEvaluator | None
    grid_key: str

    def configure_callbacks(self) -> list[L.Callback]:
        return [ConfiguredOptimizerSettings()]

    def prepare_evaluator(self, stage: str) -> None:
        """Readies the evaluator's extractor and reference statistics; every rank (prediction needs neither)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.evaluator is not None and datamodule is not None and stage != "predict":
            self.evaluator.prepare(datamodule, self.trainer.strategy)

    def log_seeded(self, batch_idx: int, x: Tensor, metrics: Callable[[], dict[str, Tensor]]) -> None:
        """Logs ``metrics()`` (rank-averaged) computed with the global RNGs seeded by (batch, rank): every
        validation draws the same noise, and validating never moves the training stream."""
        with forked_seed(batch_idx * max(1, self.trainer.world_size) + self.global_rank, x.device):
            values = metrics()
        self.log_dict(values, sync_dist=True, batch_size=x.shape[0])

    def score(self, prefix: str) -> dict[str, float]:
        """The evaluator's metrics under ``prefix`` (``evaluation.scoring.score_model``); every rank calls it."""
        raise NotImplementedError

    def sample_grid(self) -> Tensor:
        """A (3, H', W') image in [0, 1] of the model's samples."""
        raise NotImplementedError

    @property
    def grid_step(self) -> int:
        """The step the sample grid is logged at."""
        raise NotImplementedError

    def on_validation_epoch_end(self) -> None:
        # The sanity check only proves the loop runs; a full FID there would double the first validation's cost.
        if self.evaluator is not None and not self.trainer.sanity_checking:
            # Every rank computed the same values (the evaluator all-reduces): no sync_dist needed.
            scores = self.score("val")
            self.log_dict(scores)
            # Kept for the checkpoint (and so for the model card of an export made from it).
            self.last_validation = {
                "generator_step": getattr(self, "generator_steps", None),
                "metrics": {k: float(v) for k, v in scores.items()},
            }
        self.log_sample_grid()

    def log_sample_grid(self) -> None:
        if self.trainer.is_global_zero and self.loggers:
            with torch.no_grad():
                log_image_grid(self.loggers, self.grid_key, self.sample_grid(), self.grid_step)
