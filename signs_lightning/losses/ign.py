"""IGN's adversarial tightening loss (Shocher et al., ICLR 2024), for the baseline."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from signs_lightning.losses.distances import DistanceFn


def tightening_loss(f: nn.Module, f_z: Tensor, rec: Tensor, distance: DistanceFn, clamp_ratio: float = 1.5) -> Tensor:
    """L_tight = −d(f_θ(sg[f_sg(z)]), sg[f_sg(z)]), clamped as tanh(L / (a·L_rec))·a·L_rec.

    ``f_z`` = f(z) (its graph, if any, is cut here: sg[f(z)] equals sg[f_sg(z)]), so the gradient reaches θ only
    through the outer f; ``rec`` is this step's L_rec (its value scales the clamp, no gradient flows through it).
    """
    f_z = f_z.detach()
    raw = -distance(f(f_z), f_z)
    scale = clamp_ratio * rec.detach()
    return torch.tanh(raw / scale) * scale
