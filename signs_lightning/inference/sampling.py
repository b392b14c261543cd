"""Samplers and editors for an idempotent generator f, as pure functions that mirror docs/method.md §5.

``f`` maps (B, C, H, W) → (B, C, H, W); ``schedule`` supplies q(x, t, ε). Every sampler that re-noises takes its
randomness as an argument (``generator``, as diffusers pipelines and EDM's ``generate.py`` do): the same generator
state gives the same images on any device and for any number of processes. ``generator=None`` draws from the global
RNG.
"""

from __future__ import annotations

from typing import Callable, Iterator, Literal, Sequence, Union

import torch
from torch import Tensor

from signs_lightning.diffusion.schedule import NoiseSchedule

# f, the idempotent network: images (B, C, H, W) → images (B, C, H, W).
Network = Callable[[Tensor], Tensor]
# One generator for the batch, one per sample, or None for the global RNG.
RandomSource = Union[torch.Generator, Sequence[torch.Generator], None]

# Best in every recipe of the measured scan over 0.05 .. 0.5 (benchmarks/README.md, "Re-noising levels").
DEFAULT_RENOISE_MAX_LEVEL = 0.05
# What the multi-step sampler re-noises with: fresh noise at every level, the noise z it started from, or the
# noise its last step implies (DDIM with f as the denoiser).
RenoiseNoise = Literal["fresh", "initial", "path"]
# Where the multi-step sampler's levels lie: evenly spaced from the top level down, or all at the top level.
RenoiseSpacing = Literal["even", "constant"]
RENOISE_SPACINGS = ("even", "constant")


def randn_like(x: Tensor, generator: RandomSource = None) -> Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` on the generator's own device.

    Drawing on the generator's device (then moving) keeps the numbers independent of where ``x`` lives: a CPU
    generator gives the same noise for CPU and CUDA sampling. A list gives one generator per sample (as diffusers'
    ``randn_tensor``), so a sample's noise does not depend on which batch it is in.
    """
    if generator is None:
        return torch.randn_like(x)
    if isinstance(generator, torch.Generator):
        noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float32)
    else:
        if len(generator) != x.shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {x.shape[0]}")
        noise = torch.stack([randn_like(x[0], g) for g in generator])
    return noise.to(device=x.device, dtype=x.dtype)


def one_step(f: Network, z: Tensor) -> Tensor:
    """f(z): one NFE."""
    return f(z)


def check_renoise_settings(noise: str, max_level: float, spacing: str = "even", eta: float = 0.0) -> None:
    """ValueError naming the ``renoise_*`` setting that is out of range, or that does not go with the others."""
    if noise not in ("fresh", "initial", "path"):
        raise ValueError(f"renoise_noise must be 'fresh', 'initial' or 'path', got {noise!r}")
    if not 0 < max_level <= 1:
        raise ValueError(f"renoise_max_level must be in (0, 1], got {max_level}")
    if spacing not in RENOISE_SPACINGS:
        raise ValueError(f"renoise_spacing must be 'even' or 'constant', got {spacing!r}")
    if not 0 <= eta <= 1:
        raise ValueError(f"renoise_eta must be in [0, 1], got {eta}")
    if eta > 0 and noise == "fresh":
        raise ValueError(f"renoise_eta > 0 (got {eta}) needs renoise_noise 'initial' or 'path', got 'fresh'")


def renoise_timesteps(
    schedule: NoiseSchedule,
    nfe: int,
    max_level: float = DEFAULT_RENOISE_MAX_LEVEL,
    spacing: RenoiseSpacing = "even",
) -> list[int]:
    """The ``nfe - 1`` re-noising levels of the ``nfe``-NFE sampler, from ``max_level`` · (T − 1) down:
    ``spacing="even"``: evenly spaced in t; ``"constant"``: all at that top level.

    Low levels keep the coarse structure of the previous sample and let f redraw the details; re-noising to the
    middle of the schedule asks f to solve almost the whole problem again, and measured worse for every recipe.
    Constant levels are for the ``initial`` / ``path`` rules with ``eta`` > 0 (``multistep``): without fresh noise
    mixed in, the path rule's second step at the same level is a no-op; with it, each step refines.

    >>> schedule = NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000})
    >>> renoise_timesteps(schedule, 4)
    [50, 33, 17]
    >>> renoise_timesteps(schedule, 2, max_level=0.5)
    [500]
    >>> renoise_timesteps(schedule, 4, max_level=0.3, spacing="constant")
    [300, 300, 300]
    """
    if not 0 < max_level <= 1:
        raise ValueError(f"max_level must be in (0, 1], got {max_level}")
    if spacing not in RENOISE_SPACINGS:
        raise ValueError(f"spacing must be 'even' or 'constant', got {spacing!r}")
    top = max_level * (schedule.num_timesteps - 1)
    if spacing == "constant":
        return [round(top)] * (nfe - 1)
    return [round(top * (nfe - 1 - k) / (nfe - 1)) for k in range(nfe - 1)]


def capped_timesteps(timesteps: Sequence[int], t_max: int) -> list[int]:
    """Re-noising levels that never exceed ``t_max``: ``timesteps`` (non-increasing, the sampler's own) scaled by
    min(1, t_max / max(timesteps)), so the top becomes min(top, t_max) and the levels keep their spacing below it.

    An editor told the corruption's own level t_max uses this: re-noising above the corruption it repairs would
    destroy more than the corruption did. Levels already below t_max are kept as they are; their number (the NFE) too.

    >>> capped_timesteps([50, 33, 17], 26)
    [26, 17, 9]
    >>> capped_timesteps([50, 33, 17], 144), capped_timesteps([], 26)
    ([50, 33, 17], [])
    >>> capped_timesteps([300, 300, 300], 26)  # constant levels stay constant
    [26, 26, 26]
    """
    if t_max < 0:
        raise ValueError(f"t_max must be >= 0, got {t_max}")
    levels = list(timesteps)
    top = max(levels, default=0)
    return levels if top <= t_max else [round(t * t_max / top) for t in levels]


def renoise(x: Tensor, schedule: NoiseSchedule, t: int, generator: RandomSource = None) -> Tensor:
    """q(x, t, ε) at one level t for the whole batch, ε drawn from ``generator``."""
    level = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
    return schedule.q_sample(x, level, randn_like(x, generator))


def multistep_steps(
    f: Network,
    z: Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    generator: RandomSource = None,
    noise: RenoiseNoise = "fresh",
    eta: float = 0.0,
) -> Iterator[tuple[Tensor, Tensor]]:
    """``multistep``'s steps as (input, f(input)): (z, f(z)), then one pair per re-noising level."""
    if noise not in ("fresh", "initial", "path"):
        raise ValueError(f"noise must be 'fresh', 'initial' or 'path', got {noise!r}")
    if not 0 <= eta <= 1 or (eta > 0 and noise == "fresh"):
        raise ValueError(f"eta must be in [0, 1] and is for the 'initial' and 'path' rules, got {eta} with {noise!r}")
    x_in, alpha_in, sigma_in = z, 0.0, 1.0
    x = f(z)
    yield x_in, x
    for t in timesteps:
        if noise == "fresh":
            x_in = renoise(x, schedule, t, generator)
        else:
            eps = z if noise == "initial" else (x_in - alpha_in * x) / sigma_in
            if eta > 0:
                eps = (1 - eta**2) ** 0.5 * eps + eta * randn_like(eps, generator)
            level = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            alpha_in, sigma_in = schedule.alpha_sigma(level, x)
            x_in = alpha_in * x + sigma_in * eps
        x = f(x_in)
        yield x_in, x


def multistep(
    f: Network,
    z: Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    generator: RandomSource = None,
    noise: RenoiseNoise = "fresh",
    eta: float = 0.0,
) -> Tensor:
    """x = f(z); then for each level t_k (non-increasing): x = f(q(x, t_k, ε_k)). NFE = 1 + len(timesteps).

    ``noise="fresh"``: ε_k drawn from ``generator``. ``noise="initial"``: ε_k = z, no draw: when f(z) is the end of
    the teacher's ODE path from z, q(f(z), t, z) lies near that path's state at t (a DDIM state's predicted noise
    stays close to its starting noise), the input L_reg's trajectory states train f on, from which f's estimate
    is better than from z itself. ``noise="path"``: ε_k = (x_in − √ā x)/√(1 − ā), the noise that the last input
    x_in (at its level ā; z at ā = 0) and its output x imply: DDIM with f as the denoiser (the first step is
    ``initial``'s). ``eta`` > 0 (those two rules only) mixes fresh noise in, as DDIM's η does:
    ε_k ← √(1 − η²)·ε_k + η·ε_fresh, so re-noising to the same level twice is no longer a no-op.
    """
    *_, (_, x) = multistep_steps(f, z, schedule, timesteps, generator, noise, eta)
    return x


def repeated_projection(f: Network, z: Tensor, k: int) -> Tensor:
    """f^k(z), no re-noising: equals f(z) for a perfectly idempotent f; the gap is the idempotence error."""
    x = z
    for _ in range(k):
        x = f(x)
    return x


def edit(
    f: Network,
    y: Tensor,
    schedule: NoiseSchedule | None = None,
    t_edit: int | None = None,
    generator: RandomSource = None,
) -> Tensor:
    """Zero-shot editing x = f(y) of a corrupted image y; SDEdit-style when ``t_edit`` is given (re-noise first)."""
    if t_edit is None:
        return f(y)
    if schedule is None:
        raise ValueError("edit with t_edit needs the schedule to re-noise")
    return f(renoise(y, schedule, t_edit, generator))


def inpaint(
    f: Network,
    y: Tensor,
    mask: Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    generator: RandomSource = None,
) -> Tensor:
    """Fill the pixels where ``mask`` is 1 and keep every other pixel of y exactly (diffusers' convention: 1 =
    repaint). With k = 1 − mask the known pixels: x ← f(k⊙y + m⊙ε), then x ← f(q(k⊙y + m⊙x, t_k, ε)) over
    non-increasing t_k; returns k⊙y + m⊙x."""
    known = 1 - mask
    x = f(y * known + randn_like(y, generator) * mask)
    for t in timesteps:
        x = edit(f, known * y + mask * x, schedule, t, generator)
    return known * y + mask * x
