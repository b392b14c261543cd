"""Evaluation: feature extractors, the DDP-aware FID evaluator and the report table.

Typical use inside a LightningModule::

    self.evaluator = FIDEvaluator(MNISTClassifierFeatures(16), num_samples=2000, nfe=[1, 2])
    # setup / on_validation_start, every rank:
    self.evaluator.prepare(self.trainer.datamodule, self.trainer.strategy)
    # on_validation_epoch_end, every rank:
    metrics = self.evaluator.evaluate(self.sample, (1, 16, 16), self.trainer.strategy)  # sample(noise, nfe, generator)
    self.log_dict(metrics)  # identical on every rank: no sync_dist needed
"""

from signs_lightning.evaluation.extractors import (
    FeatureExtractor,
    InceptionV3Features,
    MNISTClassifierFeatures,
    RandomConvFeatures,
)
from signs_lightning.evaluation.fid import FIDEvaluator, count_tag
from signs_lightning.evaluation.frechet import Gaussian, MomentAccumulator, frechet_distance
from signs_lightning.evaluation.report import IDEMPOTENCE_KEY, RECONSTRUCTION_KEY, format_table
from signs_lightning.evaluation.strategy import EvalStrategy, LocalStrategy, TorchDistributedStrategy

__all__ = [
    "EvalStrategy",
    "FIDEvaluator",
    "FeatureExtractor",
    "Gaussian",
    "IDEMPOTENCE_KEY",
    "InceptionV3Features",
    "LocalStrategy",
    "MNISTClassifierFeatures",
    "MomentAccumulator",
    "RECONSTRUCTION_KEY",
    "RandomConvFeatures",
    "TorchDistributedStrategy",
    "count_tag",
    "format_table",
    "frechet_distance",
]
