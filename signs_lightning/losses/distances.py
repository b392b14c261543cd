"""Distances d(a, b) between image batches, each reduced to a scalar mean."""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import Tensor

Distance = Literal["mse", "l1", "pseudo_huber"]
DistanceFn = Callable[[Tensor, Tensor], Tensor]


def mse(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).pow(2).mean()


def l1(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).abs().mean()


def pseudo_huber(a: Tensor, b: Tensor) -> Tensor:
    """√(‖a−b‖² + c²) − c per sample, c = 0.00054·√dim (the consistency-model constant), averaged."""
    diff = (a - b).flatten(1)
    c = 0.00054 * diff.shape[1] ** 0.5
    return (torch.sqrt(diff.pow(2).sum(1) + c**2) - c).mean()


_DISTANCES: dict[str, DistanceFn] = {"mse": mse, "l1": l1, "pseudo_huber": pseudo_huber}


def distance_fn(name: Distance) -> DistanceFn:
    """The distance called ``name``.

    >>> float(distance_fn("l1")(torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)))
    1.0
    """
    try:
        return _DISTANCES[name]
    except KeyError:
        raise ValueError(f"distance must be one of {sorted(_DISTANCES)}, got {name!r}") from None
