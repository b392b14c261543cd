"""Sample grids: rows of images made into one picture, logged through whichever loggers are configured."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torchvision
from torch import Tensor

from signs_lightning.core.randomness import seeded_generator
from signs_lightning.evaluation.fid import SampleFn

# A grid row: noise (B, C, H, W) -> images (B, C, H, W) in [-1, 1].
Row = Callable[[Tensor], Tensor]


def sample_rows_grid(rows: Sequence[Tensor], per_row: int = 16) -> Tensor:
    """(3, H', W') float grid in [0, 1] on the CPU: the first ``per_row`` images of each (B, C, H, W) row in [-1, 1]."""
    images = torch.cat([row[:per_row].detach().float().clamp(-1, 1) for row in rows]).add(1).div(2)
    return torchvision.utils.make_grid(images.cpu(), nrow=min(per_row, rows[0].shape[0]), padding=1)


def nfe_rows(sample_fn: SampleFn, nfe: Sequence[int], seed: int = 0) -> list[Row]:
    """A row per NFE setting: ``sample_fn`` at k NFE, its re-noising drawn from ``seeded_generator(seed, k)``."""
    return [lambda z, k=k: sample_fn(z, k, seeded_generator(seed, k)) for k in nfe]


@torch.no_grad()
def sampler_grid(
    rows: Sequence[Row],
    image_shape: Sequence[int],
    count: int,
    noise: torch.Generator,
    device: torch.device,
) -> Tensor:
    """``sample_rows_grid`` of each row's sampler applied to the same ``count`` noise images (drawn from ``noise`` on
    the CPU, then moved to ``device``), so the rows differ by sampler only."""
    z = torch.randn((count, *image_shape), generator=noise).to(device)
    return sample_rows_grid([row(z) for row in rows], per_row=count)


def log_image_grid(loggers: Sequence[object], key: str, grid: Tensor, step: int) -> None:
    """Logs ``grid`` with every logger that can: ``log_image`` (W&B, Neptune, ...) or TensorBoard's ``add_image``."""
    for logger in loggers:
        if hasattr(logger, "log_image"):
            logger.log_image(key=key, images=[grid], step=step)
        elif hasattr(getattr(logger, "experiment", None), "add_image"):
            logger.experiment.add_image(key, grid, step)
