"""Samplers and editors for an idempotent generator f, as pure functions that mirror SIGN.md's algorithms.

``f`` maps (B, C, H, W) → (B, C, H, W); ``schedule`` supplies q(x, t, ε). Noise comes from ``torch.randn_like``,
so seeding the global RNG (or using ``torch.random.fork_rng``) makes every sampler reproducible.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from signs_lightning.diffusion.schedule import NoiseSchedule

Generator = Callable[[Tensor], Tensor]

# Best in every recipe of the measured scan over 0.05 .. 0.5 (benchmarks/README.md, "Re-noising levels").
DEFAULT_RENOISE_MAX_LEVEL = 0.05


def one_step(f: Generator, z: Tensor) -> Tensor:
    """f(z): one NFE."""
    return f(z)


def renoise_timesteps(schedule: NoiseSchedule, nfe: int, max_level: float = DEFAULT_RENOISE_MAX_LEVEL) -> list[int]:
    """The ``nfe - 1`` re-noising levels of the ``nfe``-NFE sampler: evenly spaced in t, from ``max_level`` · T down.

    Low levels keep the coarse structure of the previous sample and let f redraw the details; re-noising to the
    middle of the schedule asks f to solve almost the whole problem again, and measured worse for every recipe.

    >>> renoise_timesteps(NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000}), 4)
    [50, 33, 17]
    >>> renoise_timesteps(NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000}), 2, max_level=0.5)
    [500]
    """
    if not 0 < max_level <= 1:
        raise ValueError(f"max_level must be in (0, 1], got {max_level}")
    top = max_level * (schedule.num_timesteps - 1)
    return [round(top * (nfe - 1 - k) / (nfe - 1)) for k in range(nfe - 1)]


def multistep(f: Generator, z: Tensor, schedule: NoiseSchedule, timesteps: Sequence[int]) -> Tensor:
    """x = f(z); then for each level t_k (decreasing): x = f(q(x, t_k, ε_k)). NFE = 1 + len(timesteps)."""
    x = f(z)
    for t in timesteps:
        x = f(schedule.q_sample(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long), torch.randn_like(x)))
    return x


def repeated_projection(f: Generator, z: Tensor, k: int) -> Tensor:
    """f^k(z), no re-noising: equals f(z) for a perfectly idempotent f; the gap is the idempotence error."""
    x = z
    for _ in range(k):
        x = f(x)
    return x


def edit(f: Generator, y: Tensor, schedule: NoiseSchedule | None = None, t_edit: int | None = None) -> Tensor:
    """Zero-shot editing x = f(y) of a corrupted image y; SDEdit-style when ``t_edit`` is given (re-noise first)."""
    if t_edit is None:
        return f(y)
    if schedule is None:
        raise ValueError("edit with t_edit needs the schedule to re-noise")
    t = torch.full((y.shape[0],), t_edit, device=y.device, dtype=torch.long)
    return f(schedule.q_sample(y, t, torch.randn_like(y)))


def inpaint(f: Generator, y: Tensor, mask: Tensor, schedule: NoiseSchedule, timesteps: Sequence[int]) -> Tensor:
    """x ← f(q(m⊙y + (1−m)⊙x, t_k, ε)) over decreasing t_k; ``mask`` is 1 on known pixels. Known pixels kept."""
    x = f(y * mask + torch.randn_like(y) * (1 - mask))
    for t in timesteps:
        x = edit(f, mask * y + (1 - mask) * x, schedule, t)
    return mask * y + (1 - mask) * x
