"""torchmetrics' ``FrechetInceptionDistance`` as the FID engine, wired for this project's evaluator.

What we add around it, and why:
- our ``FeatureExtractor`` is passed as ``feature=`` (torchmetrics then feeds it the images unchanged): inputs are
  clamped to [-1, 1] and run in float32 outside autocast, as saved images would be;
- the reference statistics come from our disk cache (or a published ``.npz``) and are loaded into the metric's
  real-feature state **on global rank 0 only**: the states are summed over ranks, so loading them everywhere
  would count the reference W times;
- the states are synced with one all-reduce per state instead of torchmetrics' default all-gather, which at 2048
  features holds every rank's 2 × 2048² float64 states on every rank (~0.5 GiB per rank at 8 GPUs).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from signs_lightning.core.distributed import DistributedStrategy
from signs_lightning.evaluation.extractors import FeatureExtractor
from signs_lightning.evaluation.frechet import Gaussian


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
    extractor: FeatureExtractor, reference: Gaussian | None, strategy: DistributedStrategy
) -> FrechetInceptionDistance:
    """A fresh metric on ``strategy.root_device`` whose real-feature state holds ``reference`` on rank 0 only.

    ``reference`` is needed on global rank 0 and ignored elsewhere. Add generated images with
    ``metric.update(images, real=False)`` on every rank; ``metric.compute()`` (every rank) returns the FID.
    """
    metric = _Float64FID(
        feature=_ExtractorInput(extractor),
        reset_real_features=False,
        sync_on_compute=True,
        dist_sync_fn=all_reduce_sync(strategy),
        distributed_available_fn=lambda: strategy.world_size > 1,
    ).to(strategy.root_device)
    if strategy.global_rank == 0:
        if reference is None:
            raise ValueError("rank 0 needs the reference statistics")
        if reference.mean.shape[0] != extractor.num_features:
            raise ValueError(
                f"reference statistics have {reference.mean.shape[0]} features, the extractor {extractor.name!r} "
                f"gives {extractor.num_features}: use reference statistics made with the same extractor"
            )
        # The sums that give back exactly this mean and (ddof-1) covariance in torchmetrics' compute().
        n = reference.count
        mean = reference.mean.double().to(metric.device)
        metric.real_features_sum = n * mean
        metric.real_features_cov_sum = (n - 1) * reference.cov.double().to(metric.device) + n * torch.outer(mean, mean)
        metric.real_features_num_samples = torch.tensor(n, dtype=torch.long, device=metric.device)
    return metric
