"""The denoising editors in the two settings users face (``inference/editing.py``, ``sampling.capped_timesteps``):
informed (σ known: the refinement never re-noises above σ's level) and blind (σ unknown: f(y), then the model's own
levels), and the blind noise estimator."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from signs_lightning.core.randomness import seeded_generator
from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.inference import editing, sampling

SCHEDULE = NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000})


def f(x: Tensor) -> Tensor:
    """A stand-in network: any deterministic map of images will do for the levels and the equalities."""
    return torch.tanh(0.9 * x + 0.05)


def generators(count: int = 3) -> list[torch.Generator]:
    return [seeded_generator(4, i) for i in range(count)]


@pytest.fixture
def recorded_levels(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every level q(x, t, ε) is asked for while the test runs (the schedule's only re-noising entry point)."""
    levels: list[int] = []
    q_sample = NoiseSchedule.q_sample

    def recording(self: NoiseSchedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        levels.extend(sorted(set(t.tolist())))
        return q_sample(self, x0, t, noise)

    monkeypatch.setattr(NoiseSchedule, "q_sample", recording)
    return levels


@pytest.mark.parametrize("max_level", [0.05, 0.5])
@pytest.mark.parametrize("nfe", [2, 4, 8])
@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2, 0.5, 1.0])
def test_informed_denoising_never_renoises_above_the_noise_level(recorded_levels, sigma, nfe, max_level) -> None:
    y = torch.rand((3, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1
    own = sampling.renoise_timesteps(SCHEDULE, nfe, max_level)
    t_sigma = editing.noise_level_timestep(SCHEDULE, sigma)
    editing.denoise(f, y, SCHEDULE, sigma, own, generators())
    assert len(recorded_levels) == nfe - 1 and max(recorded_levels) <= t_sigma
    # The model's own levels below σ's are kept; above it, they are scaled down so the top is σ's level itself.
    assert recorded_levels == (own if own[0] <= t_sigma else sampling.capped_timesteps(own, t_sigma))
    if own[0] > t_sigma:
        assert recorded_levels[0] == t_sigma


def test_capped_levels_stay_evenly_spaced_and_in_order() -> None:
    levels = sampling.capped_timesteps(sampling.renoise_timesteps(SCHEDULE, 5, 0.5), 100)
    assert levels == [100, 75, 50, 25]
    assert sampling.capped_timesteps([50, 33, 17], 0) == [0, 0, 0]
    with pytest.raises(ValueError, match="t_max must be >= 0"):
        sampling.capped_timesteps([50], -1)


@pytest.mark.parametrize("nfe", [1, 3])
def test_blind_denoising_is_projection_at_strength_zero(recorded_levels, nfe) -> None:
    y = torch.rand((3, 1, 8, 8), generator=torch.Generator().manual_seed(1)) * 2 - 1
    own = sampling.renoise_timesteps(SCHEDULE, nfe)
    blind = editing.denoise(f, y, SCHEDULE, None, own, generators())
    assert recorded_levels == own  # the model's own levels, uncapped
    assert torch.equal(blind, editing.project(f, y, SCHEDULE, 0, own, generators()))
    assert torch.equal(blind, sampling.multistep(f, y, SCHEDULE, own, generators()))  # f(y) itself first


def smooth_images(count: int, size: int) -> Tensor:
    """Smooth test images in [-0.8, 0.8]: low-frequency sums and products of sines, a different one per image."""
    grid = torch.linspace(0, 1, size)
    y, x = torch.meshgrid(grid, grid, indexing="ij")
    images = [
        0.4 * torch.sin(2 * math.pi * (k + 1) * x) + 0.4 * torch.cos(2 * math.pi * (k + 2) * y) * torch.sin(math.pi * x)
        for k in range(count)
    ]
    return torch.stack(images)[:, None]


@pytest.mark.parametrize("sigma", [0.05, 0.2, 0.5, 1.0])
def test_noise_estimator_recovers_sigma_on_smooth_images(sigma) -> None:
    clean = smooth_images(4, 64)
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    estimate = editing.estimate_noise_sigma(noisy)
    assert estimate.shape == (4,)
    assert ((estimate / sigma - 1).abs() < 0.15).all(), estimate.tolist()
    # Per channel of a colour image too, and next to nothing for the clean images.
    colour = clean.expand(-1, 3, -1, -1) + sigma * torch.randn((4, 3, 64, 64), generator=torch.Generator())
    assert ((editing.estimate_noise_sigma(colour) / sigma - 1).abs() < 0.15).all()
    assert (editing.estimate_noise_sigma(clean) < 0.1 * sigma).all()
