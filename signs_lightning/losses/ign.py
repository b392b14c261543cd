"""IGN's adversarial tightening loss (Shocher et al., ICLR 2024), for the baseline: the maths and its term."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from signs_lightning.losses.distances import DistanceFn
from signs_lightning.losses.terms import LossTerm, Step, TermInputs


def tightening_loss(f: nn.Module, f_z: Tensor, rec: Tensor, distance: DistanceFn, clamp_ratio: float = 1.5) -> Tensor:
    """L_tight = −d(f_θ(sg[f_sg(z)]), sg[f_sg(z)]), clamped as tanh(L / (a·L_rec))·a·L_rec.

    ``f_z`` = f(z) (its graph, if any, is cut here: sg[f(z)] equals sg[f_sg(z)]), so the gradient reaches θ only
    through the outer f; ``rec`` is this step's L_rec (its value scales the clamp, no gradient flows through it).
    """
    f_z = f_z.detach()
    raw = -distance(f(f_z), f_z)
    scale = clamp_ratio * rec.detach()
    return torch.tanh(raw / scale) * scale


class Tightening(LossTerm):
    """IGN's L_tight as a term: ``tightening_loss`` on the shared f(z), its clamp scaled by this step's
    d(f(x), x) (f(x) is shared with ``Reconstruction`` when both are on: one forward of x).

    Args:
        weight: λ_tight.
        clamp_ratio: a of the clamp tanh(L / (a·L_rec))·a·L_rec.
    """

    name = "tight"

    def __init__(self, weight: float = 1.0, clamp_ratio: float = 1.5) -> None:
        super().__init__(weight)
        if clamp_ratio <= 0:
            raise ValueError(f"Tightening: clamp_ratio must be > 0, got {clamp_ratio}")
        self.clamp_ratio = clamp_ratio

    def inputs(self, step: Step) -> TermInputs:
        return {"x": step.x}, None

    def loss(self, step: Step, outputs: dict[str, Tensor], targets: Any) -> Tensor:
        distance = self.context.distance
        rec = distance(outputs["x"], step.x)
        return tightening_loss(self.context.student, step.f_z, rec, distance, self.clamp_ratio)
