"""Scoring a sampler: the one way from a model to its metrics, shared by validation, ``signs demo`` and the
benchmark, so that the same model and seed give the same numbers in all three."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from signs_lightning.core.distributed import DistributedStrategy
from signs_lightning.core.randomness import forked_seed
from signs_lightning.evaluation.fid import FIDEvaluator, SampleFn
from signs_lightning.evaluation.keys import CLASS_COVERAGE, metric_key

if TYPE_CHECKING:  # the modules import this one
    from signs_lightning.diffusion.score_model import ScoreModel
    from signs_lightning.modules.common import GeneratorModule


def ddim_sampler(model: ScoreModel) -> SampleFn:
    """``model``'s deterministic DDIM as a ``SampleFn`` (it draws nothing: the generator goes unused)."""
    return lambda noise, nfe, generator: model.ddim_sample(noise, nfe)


def score_sampler(
    evaluator: FIDEvaluator,
    sample_fn: SampleFn,
    image_shape: Sequence[int],
    strategy: DistributedStrategy,
    *,
    prefix: str = "val",
    teacher: ScoreModel | None = None,
    teacher_prefix: str | None = None,
) -> dict[str, float]:
    """FID (and class coverage) of ``sample_fn`` at each of ``evaluator.nfe``, and, given a ``teacher``, of its DDIM
    at each of ``evaluator.teacher_nfe`` (computed once per teacher fingerprint, then read from the cache).

    Every rank must call it; every rank gets the same values. Keys: ``{prefix}/{fid_name}_nfe{k}`` and
    ``{teacher_prefix}/teacher_{fid_name}_nfe{k}`` (``teacher_prefix`` defaults to ``prefix``), with
    ``class_coverage`` beside them when the extractor classifies (``evaluation/keys.py``).
    """
    metrics = evaluator.evaluate(sample_fn, image_shape, strategy, prefix=prefix)
    if teacher is not None:
        metrics.update(
            evaluator.evaluate_teacher(
                teacher.ddim_sample,
                image_shape,
                strategy,
                prefix=prefix if teacher_prefix is None else teacher_prefix,
                teacher_key=teacher.fingerprint(),
            )
        )
    return metrics


def by_nfe(
    metrics: Mapping[str, float], evaluator: FIDEvaluator, *, prefix: str = "val", teacher: bool = False
) -> dict[int, dict[str, float]]:
    """``evaluator``'s results in ``metrics`` (from ``score_sampler``), as {nfe: {"fid": ..., "class_coverage": ...}}
    (coverage only when the extractor classifies); the teacher's when ``teacher``."""
    grouped: dict[int, dict[str, float]] = {}
    for nfe in evaluator.teacher_nfe if teacher else evaluator.nfe:
        grouped[nfe] = {"fid": metrics[metric_key(prefix, evaluator.fid_name, nfe, teacher)]}
        coverage = metric_key(prefix, CLASS_COVERAGE, nfe, teacher)
        if coverage in metrics:
            grouped[nfe][CLASS_COVERAGE] = metrics[coverage]
    return grouped


@torch.no_grad()
def heldout_diagnostics(model: GeneratorModule, datamodule: Any, prefix: str = "", seed: int = 0) -> dict[str, float]:
    """``model.diagnostics`` over the whole held-out split of a set-up ``datamodule`` at once, its noise drawn from
    ``seed`` (the global random state is left as it was)."""
    images = torch.cat([batch[0] for batch in datamodule.val_dataloader()]).to(model.device)
    with forked_seed(seed, images.device):
        return {key: float(value) for key, value in model.diagnostics(images, prefix).items()}
