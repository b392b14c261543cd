"""Sample grids: rows of images made into one picture, logged through whichever loggers are configured."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import Tensor


def sample_rows_grid(rows: Sequence[Tensor], per_row: int = 16) -> Tensor:
    """(3, H', W') float grid in [0, 1] on the CPU: the first ``per_row`` images of each (B, C, H, W) row in [-1, 1]."""
    images = torch.cat([row[:per_row].detach().float().clamp(-1, 1) for row in rows]).add(1).div(2)
    return torchvision.utils.make_grid(images.cpu(), nrow=min(per_row, rows[0].shape[0]), padding=1)


def log_image_grid(loggers: Sequence[object], key: str, grid: Tensor, step: int) -> None:
    """Logs ``grid`` with every logger that can: ``log_image`` (W&B, Neptune, ...) or TensorBoard's ``add_image``."""
    for logger in loggers:
        if hasattr(logger, "log_image"):
            logger.log_image(key=key, images=[grid], step=step)
        elif hasattr(getattr(logger, "experiment", None), "add_image"):
            logger.experiment.add_image(key, grid, step)
