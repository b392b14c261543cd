"""Zero-shot editing tasks of ``signs edit``, built on the samplers of ``sampling.py`` (docs/method.md §5).

Each task turns a corrupted image y (B, C, H, W) in [-1, 1] into a first input of f, then refines at the
re-noising ``timesteps`` (non-increasing: ``GeneratorModule.renoise_timesteps(nfe)``, evenly spaced or constant as
the model's ``renoise_spacing`` says, so ``nfe`` = 1 + their number). Editors always re-noise with fresh noise: the
model's ``renoise_noise`` / ``renoise_eta`` are the sampler's (an edit has no starting noise z to reuse).

- ``project``: SDEdit, re-noise y to strength s ∈ [0, 1] (t = s·(T−1); s = 0 is f(y) itself), then project;
- ``denoise``: y = x + σε; informed (σ given): scaled to the variance-preserving input f saw in training, the
  refinement capped at σ's level; blind (σ unknown): f(y) and the model's own levels, as ``project`` at strength 0;
- ``inpaint``: ``sampling.inpaint`` (mask 1 = repaint, as in diffusers), every other pixel kept exactly;
- ``colorize``: a greyscale image coloured with its luma (``LUMA_WEIGHTS``) kept exactly.

``inference/pipeline.py`` restates these for the exported ``SIGNPipeline``; tests check both agree.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.inference import sampling

# ITU-R 601-2 luma, the weights of PIL's convert("L"), so a greyscale file's pixels are exactly this combination.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def strength_timestep(schedule: NoiseSchedule, strength: float) -> int:
    """SDEdit's re-noising level for ``strength`` in [0, 1]: round(strength · (T − 1))."""
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    return round(strength * (schedule.num_timesteps - 1))


def noise_level_timestep(schedule: NoiseSchedule, sigma: float) -> int:
    """The t whose noise-to-signal ratio σ_t = √((1 − ā_t)/ā_t) is closest to ``sigma``.

    >>> schedule = NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000})
    >>> noise_level_timestep(schedule, 0.1), noise_level_timestep(schedule, 1.0)
    (26, 258)
    """
    if not sigma > 0:
        raise ValueError(f"the noise level sigma must be > 0, got {sigma}")
    abar = schedule.alphas_cumprod.double()
    return int(((1 - abar) / abar).sqrt().sub(sigma).abs().argmin())


def refine(
    f: sampling.Network,
    x: Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    generator: sampling.RandomSource = None,
    constrain: Callable[[Tensor], Tensor] = lambda x: x,
) -> Tensor:
    """For each level t (non-increasing): x ← f(q(constrain(x), t, ε)); returns constrain(x). The identity constraint
    makes this the tail of ``sampling.multistep``; a projection onto the known content makes it an editor."""
    for t in timesteps:
        x = sampling.edit(f, constrain(x), schedule, t, generator)
    return constrain(x)


def project(
    f: sampling.Network,
    y: Tensor,
    schedule: NoiseSchedule,
    strength: float,
    timesteps: Sequence[int],
    generator: sampling.RandomSource = None,
) -> Tensor:
    """SDEdit: f(q(y, strength · (T−1), ε)), or f(y) at strength 0; then ``refine``."""
    t = strength_timestep(schedule, strength)
    start = y if strength == 0 else sampling.renoise(y, schedule, t, generator)
    return sampling.multistep(f, start, schedule, timesteps, generator)


def denoise(
    f: sampling.Network,
    y: Tensor,
    schedule: NoiseSchedule,
    sigma: float | None,
    timesteps: Sequence[int],
    generator: sampling.RandomSource = None,
) -> Tensor:
    """Remove Gaussian noise from y = x + σε.

    Informed (``sigma`` given): √ā_t y = √ā_t x + √(1−ā_t) ε is the variance-preserving input f was trained on, for
    the t of ``noise_level_timestep``; f of it, then ``refine`` at ``timesteps`` capped at t
    (``sampling.capped_timesteps``), so no refinement re-noises above the corruption being repaired.

    Blind (``sigma`` None, the level unknown): f(y), then ``refine`` at ``timesteps`` (``project`` at strength 0).
    """
    if sigma is None:
        return project(f, y, schedule, 0, timesteps, generator)
    t = noise_level_timestep(schedule, sigma)
    alpha, _ = schedule.alpha_sigma(torch.full((y.shape[0],), t, device=y.device), y)
    return sampling.multistep(f, alpha * y, schedule, sampling.capped_timesteps(timesteps, t), generator)


# Immerkær's 3x3 mask (1996): the difference of two Laplacians, zero on constant, linear and bilinear images, and
# Σ w² = 36, so on white noise of std σ its response has std 6σ.
NOISE_MASK = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
# The median of |N(0, 1)|: median(|r|) / 0.6745 estimates the std of zero-mean Gaussian r robustly (Donoho's MAD).
MAD_TO_STD = 0.6745


def estimate_noise_sigma(y: Tensor) -> Tensor:
    """(B,): a blind estimate of the std σ of white Gaussian noise in images y (B, C, H, W), on y's own scale.

    The high-pass response r = M * y (``NOISE_MASK``, every channel, valid pixels only) cancels smooth image content
    and keeps 6σ of noise; σ̂ = median(|r|) / (6 · 0.6745). The median ignores the few large responses at edges.
    Clean images with flat regions give σ̂ ≈ 0.

    >>> noisy = 0.3 * torch.randn((2, 1, 64, 64), generator=torch.Generator().manual_seed(0))
    >>> [round(s, 1) for s in estimate_noise_sigma(noisy).tolist()]
    [0.3, 0.3]
    """
    batch, channels = y.shape[:2]
    mask = torch.tensor(NOISE_MASK, dtype=torch.float32, device=y.device).expand(channels, 1, 3, 3)
    response = torch.nn.functional.conv2d(y.float(), mask, groups=channels)
    return response.abs().reshape(batch, -1).median(dim=1).values / (6 * MAD_TO_STD)


def luma(x: Tensor) -> Tensor:
    """(B, 1, H, W): the luma of 3-channel images (a 1-channel image is its own)."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(LUMA_WEIGHTS, device=x.device, dtype=x.dtype).reshape(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def colorize(
    f: sampling.Network,
    grey: Tensor,
    schedule: NoiseSchedule,
    strength: float,
    timesteps: Sequence[int],
    generator: sampling.RandomSource = None,
) -> Tensor:
    """Colour greyscale images (B, 1 or 3, H, W) with a 3-channel f, keeping their luma exactly.

    The grey image (R = G = B) is re-noised to ``strength`` and projected as in ``project``; before each
    re-noising and at the end the luma is re-imposed by adding one offset to all three channels (the weights sum
    to 1), which keeps the chroma f chose.
    """
    t = strength_timestep(schedule, strength)
    target = luma(grey)
    start = target.expand(-1, 3, -1, -1)
    if strength > 0:
        start = sampling.renoise(start, schedule, t, generator)
    return refine(f, f(start), schedule, timesteps, generator, lambda x: x + (target - luma(x)))
