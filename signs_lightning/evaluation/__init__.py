"""Evaluation: feature extractors, the DDP-aware FID evaluator, scoring a sampler, metric names and the report table.

Typical use inside a LightningModule::

    self.evaluator = FIDEvaluator(MNISTClassifierFeatures(16), num_samples=2000, nfe=[1, 2])
    # setup / on_validation_start, every rank:
    self.evaluator.prepare(self.trainer.datamodule, self.trainer.strategy)
    # on_validation_epoch_end, every rank (samplers by name: sample(noise, nfe, generator) at each NFE as nfe<k>;
    # a teacher's DDIM scored beside them):
    samplers = nfe_samplers(self.sample, self.evaluator.nfe)
    metrics = score_model(self.evaluator, samplers, (1, 16, 16), self.trainer.strategy, teacher=self.teacher)
    self.log_dict(metrics)  # identical on every rank: no sync_dist needed

Metric names are built and read in ``keys.py``; ``scoring.py`` is the one way validation, ``signs demo``, the
benchmark and the lab score a model.
"""

from signs_lightning.evaluation.extractors import (
    FeatureExtractor,
    InceptionV3Features,
    MNISTClassifierFeatures,
    RandomConvFeatures,
)
from signs_lightning.evaluation.fid import FIDEvaluator
from signs_lightning.evaluation.frechet import Gaussian
from signs_lightning.evaluation.keys import IDEMPOTENCE_KEY, RECONSTRUCTION_KEY, count_tag
from signs_lightning.evaluation.report import format_table
from signs_lightning.evaluation.scoring import nfe_samplers, score_model

__all__ = [
    "FIDEvaluator",
    "FeatureExtractor",
    "Gaussian",
    "IDEMPOTENCE_KEY",
    "InceptionV3Features",
    "MNISTClassifierFeatures",
    "RECONSTRUCTION_KEY",
    "RandomConvFeatures",
    "count_tag",
    "format_table",
    "nfe_samplers",
    "score_model",
]
