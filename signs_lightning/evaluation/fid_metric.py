"""torchmetrics' ``FrechetInceptionDistance``: the project's one FID engine, wired for this project's evaluator.

Both sides of every FID go through this metric: the reference images are fed to it as real images
(``reference_states``) and its real-feature states are what ``FIDEvaluator`` caches; generated images are fed as fake
images to a fresh metric whose real-feature states are loaded back from that cache (``fid_metric``). What we add
around it, and why:
- our ``FeatureExtractor`` is passed as ``feature=`` (torchmetrics then feeds it the images unchanged): inputs are
  clamped to [-1, 1] and run in float32 outside autocast, as saved images would be;
- the reference states are loaded into a scoring metric **on global rank 0 only**: the states are summed over
  ranks, so loading them everywhere would count the reference W times;
- the states are synced with one all-reduce per state instead of torchmetrics' default all-gather, which at 2048
  features holds every rank's 2 × 2048² float64 states on every rank (~0.5 GiB per rank at 8 GPUs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from signs_lightning.core.distributed import DistributedStrategy, LocalStrategy
from signs_lightning.evaluation.extractors import FeatureExtractor
from signs_lightning.evaluation.frechet import REAL_STATES, RealStates, check_real_states


class _ExtractorInput(nn.Module):
    """The extractor as torchmetrics calls it: float32 in [-1, 1], no autocast."""

    def __init__(self, extractor: FeatureExtractor) -> None:
        super().__init__()
        self.extractor = extractor
        self.num_features = extractor.num_features

    def forward(self, images: Tensor) -> Tensor:
        images = images.float().clamp(-1, 1)
        with torch.autocast(images.device.type, enabled=False):
            return self.extractor(images)


class _Float64FID(FrechetInceptionDistance):
    """torchmetrics' FID returning float64 on every rank.

    torchmetrics casts the distance to the dtype of the last features a rank saw, and a rank that drew no sample
    chunk (fewer chunks than ranks) has seen none and cannot compute; fixing the dtype keeps every rank's value
    identical and defined.
    """

    orig_dtype = torch.float64

    def update(self, imgs: Tensor, real: bool) -> None:
        super().update(imgs, real)
        self.orig_dtype = torch.float64


def all_reduce_sync(strategy: DistributedStrategy) -> Callable[..., list[Tensor]]:
    """A torchmetrics ``dist_sync_fn`` that sums each state over ranks with one all-reduce.

    torchmetrics stacks the returned list and applies the state's ``dist_reduce_fx`` ("sum" for every FID state):
    the sum of a one-element list is the all-reduced tensor itself.
    """

    def sync(tensor: Tensor, group: object | None = None) -> list[Tensor]:
        return [strategy.reduce(tensor.clone(), reduce_op="sum")]

    return sync


def fid_metric(
    extractor: FeatureExtractor, strategy: DistributedStrategy, reference: RealStates | None = None
) -> FrechetInceptionDistance:
    """A fresh metric on ``strategy.root_device``, synced over ``strategy``'s ranks at ``compute()``.

    With ``reference`` (real-feature states, see ``reference_states``), global rank 0 loads them into the metric's
    real-feature states; the other ranks ignore it. Add generated images with ``metric.update(images, real=False)``
    on every rank; ``metric.compute()`` (every rank) returns the FID.
    """
    metric = _Float64FID(
        feature=_ExtractorInput(extractor),
        reset_real_features=False,
        sync_on_compute=True,
        dist_sync_fn=all_reduce_sync(strategy),
        distributed_available_fn=lambda: strategy.world_size > 1,
    ).to(strategy.root_device)
    if reference is not None and strategy.global_rank == 0:
        check_real_states(reference, extractor.num_features)
        for name in REAL_STATES:
            # A copy: the metric's states must never alias the evaluator's cached reference.
            setattr(metric, name, reference[name].to(metric.device, copy=True))
    return metric


def real_states(metric: FrechetInceptionDistance) -> RealStates:
    """CPU copies of ``metric``'s real-feature states (this rank's, unsynced)."""
    return {name: getattr(metric, name).detach().cpu().clone() for name in REAL_STATES}


@torch.no_grad()
def reference_states(extractor: FeatureExtractor, batches: Iterable[Tensor], device: torch.device) -> RealStates:
    """The real-feature states of the metric fed every image of ``batches`` ((B, C, H, W) in [-1, 1]) as real.

    One process sees the whole reference set (``FIDEvaluator.prepare`` runs it on global rank 0 and broadcasts the
    result), so the metric is built for one process and nothing is synced.
    """
    metric = fid_metric(extractor, LocalStrategy(device))
    for images in batches:
        metric.update(images.to(device), real=True)
    return real_states(metric)
