"""Scoring a model: the one way from samplers to metrics, shared by validation, ``signs demo``, the benchmark and
the lab's studies, so that the same model and seed give the same numbers everywhere.

Samplers are scored by name (``score_model``): a model's own sampler at k NFE is named ``nfe<k>``
(``nfe_samplers``), anything else by what it is (``FFZ``: f(f(z))); the metric keys are built from those names in
``keys.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import torch

from signs_lightning.core.distributed import DistributedStrategy, LocalStrategy
from signs_lightning.core.randomness import forked_seed
from signs_lightning.diffusion.score_model import ScoreModel
from signs_lightning.evaluation.extractors import MNISTClassifierFeatures
from signs_lightning.evaluation.fid import FIDEvaluator, SampleFn, Sampler, nfe_samplers
from signs_lightning.evaluation.keys import CLASS_COVERAGE, FFZ, metric_key


class GeneratorModule(Protocol):
    """What scoring uses of a generator (``modules/common.py: GeneratorModule`` has it; the modules sit above
    evaluation, so it is named here, not imported)."""

    teacher: ScoreModel | None
    image_shape: tuple[int, int, int]
    device: torch.device

    def sample(self, z: torch.Tensor, nfe: int = 1, generator: Any = None) -> torch.Tensor: ...

    def sample_repeated(self, z: torch.Tensor, nfe: int = 2, generator: Any = None) -> torch.Tensor: ...

    def diagnostics(self, x: torch.Tensor, prefix: str = ...) -> dict[str, torch.Tensor]: ...

    def eval(self) -> Any: ...


__all__ = [
    "FFZ",
    "Sampler",
    "by_sampler",
    "classifier_evaluator",
    "ddim_sampler",
    "ffz_sampler",
    "generator_samplers",
    "heldout_diagnostics",
    "nfe_samplers",
    "score_classifier_features",
    "score_model",
]


def ddim_sampler(model: ScoreModel) -> SampleFn:
    """``model``'s deterministic DDIM as a ``SampleFn`` (it draws nothing: the generator goes unused)."""
    return lambda noise, nfe, generator: model.ddim_sample(noise, nfe)


def ffz_sampler(model: GeneratorModule) -> Sampler:
    """f(f(z)) of ``model``'s sampling network (``sample_repeated``: no re-noising, draws nothing)."""
    return lambda noise, generator: model.sample_repeated(noise, 2, generator)


def generator_samplers(model: GeneratorModule, nfe: Iterable[int], ffz: bool = True) -> dict[str, Sampler]:
    """``model.sample`` at each of ``nfe`` (``nfe<k>``), then f(f(z)) (``ffz``) unless ``ffz`` is False."""
    samplers = nfe_samplers(model.sample, nfe)
    if ffz:
        samplers[FFZ] = ffz_sampler(model)
    return samplers


def score_model(
    evaluator: FIDEvaluator,
    samplers: Mapping[str, Sampler],
    image_shape: Sequence[int],
    strategy: DistributedStrategy,
    *,
    prefix: str = "val",
    teacher: ScoreModel | None = None,
    teacher_prefix: str | None = None,
) -> dict[str, float]:
    """FID (and class coverage) of each of ``samplers`` by name and, given a ``teacher``, of its DDIM at each of
    ``evaluator.teacher_nfe`` (computed once per teacher fingerprint, then read from the cache). Every sampler and
    the teacher get the same noise.

    Every rank must call it; every rank gets the same values. Keys (``keys.metric_key``):
    ``{prefix}/{fid_name}_nfe<k>`` for ``nfe_sampler(k)``, ``{prefix}/{fid_name}_of_<name>`` for any other name,
    ``{teacher_prefix}/teacher_{fid_name}_nfe<k>`` (``teacher_prefix`` defaults to ``prefix``), with
    ``class_coverage`` beside each when the extractor classifies.
    """
    metrics = evaluator.score_samplers(samplers, image_shape, strategy, prefix=prefix)
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


def by_sampler(
    metrics: Mapping[str, float],
    evaluator: FIDEvaluator,
    samplers: Iterable[str],
    *,
    prefix: str = "val",
    teacher: bool = False,
) -> dict[str, dict[str, float]]:
    """``evaluator``'s results in ``metrics`` (from ``score_model``) as {sampler: {"fid": ..., "class_coverage":
    ...}} (coverage only when the extractor classifies); with ``teacher``, the teacher's rows, named ``nfe<k>``."""
    grouped: dict[str, dict[str, float]] = {}
    for sampler in samplers:
        grouped[sampler] = {"fid": metrics[metric_key(prefix, evaluator.fid_name, teacher=teacher, sampler=sampler)]}
        coverage = metric_key(prefix, CLASS_COVERAGE, teacher=teacher, sampler=sampler)
        if coverage in metrics:
            grouped[sampler][CLASS_COVERAGE] = metrics[coverage]
    return grouped


@torch.no_grad()
def heldout_diagnostics(model: GeneratorModule, datamodule: Any, prefix: str = "", seed: int = 0) -> dict[str, float]:
    """``model.diagnostics`` over the whole held-out split of a set-up ``datamodule`` at once, its noise drawn from
    ``seed`` (the global random state is left as it was)."""
    images = torch.cat([batch[0] for batch in datamodule.val_dataloader()]).to(model.device)
    with forked_seed(seed, images.device):
        return {key: float(value) for key, value in model.diagnostics(images, prefix).items()}


def classifier_evaluator(
    datamodule: Any,
    strategy: DistributedStrategy,
    num_samples: int,
    nfe: Sequence[int] = (),
    teacher_nfe: Sequence[int] = (),
    batch_size: int = 250,
) -> FIDEvaluator:
    """A prepared ``FIDEvaluator`` in the MNIST classifier's features (``MNISTClassifierFeatures`` at the
    ``datamodule``'s image size), against its training digits: what ``signs demo``, the benchmarks and the lab's
    studies measure with."""
    extractor = MNISTClassifierFeatures(image_size=datamodule.image_size)
    evaluator = FIDEvaluator(extractor, num_samples, nfe, teacher_nfe, batch_size)
    evaluator.prepare(datamodule, strategy)
    return evaluator


@torch.no_grad()
def score_classifier_features(
    model: GeneratorModule,
    datamodule: Any,
    num_samples: int,
    nfe: Sequence[int],
    teacher_nfe: Sequence[int],
    prefix: str = "sign",
) -> dict[str, float]:
    """``signs demo``'s scores of a trained generator on a set-up MNIST ``datamodule``: Fréchet distances in the
    MNIST classifier's features (``num_samples`` samples) of ``model.sample`` at each of ``nfe`` and of f(f(z)),
    and of the teacher's DDIM at each of ``teacher_nfe`` (same noise); class coverage; the held-out error
    diagnostics and the classifier's held-out accuracy.

    Keys ``<prefix>/...`` (``sign/fid2k_lenet16_nfe1``, ``sign/fid2k_lenet16_of_ffz``, ``sign/idempotence_error``),
    ``teacher/teacher_...`` and ``classifier_heldout_accuracy``.
    """
    model.eval()
    strategy = LocalStrategy(model.device)
    evaluator = classifier_evaluator(datamodule, strategy, num_samples, nfe, teacher_nfe)
    teacher = model.teacher if teacher_nfe else None
    samplers = generator_samplers(model, nfe)
    metrics = score_model(
        evaluator, samplers, model.image_shape, strategy, prefix=prefix, teacher=teacher, teacher_prefix="teacher"
    )
    metrics.update(heldout_diagnostics(model, datamodule, prefix=prefix))
    metrics["classifier_heldout_accuracy"] = float(evaluator.extractor.accuracy)
    return metrics
