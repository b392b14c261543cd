"""Shared fixtures: tiny diffusers teachers written to disk in the hub layout."""

from __future__ import annotations

import os

# Tests never reach a hub: an uncached hub id must fail at once instead of retrying a network that isn't there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler

from signs_lightning.networks import build_unet


def write_tiny_teacher(
    path: Path,
    prediction_type: str = "epsilon",
    beta_schedule: str = "linear",
    image_size: int = 8,
    channels: int = 1,
    seed: int = 0,
) -> Path:
    """A ~5k-parameter ``UNet2DModel`` + ``DDPMScheduler`` saved as a ``DDPMPipeline`` folder."""
    torch.manual_seed(seed)
    unet = build_unet(image_size, channels, block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4)
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule=beta_schedule, prediction_type=prediction_type, clip_sample=False
    )
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An epsilon-prediction 1x8x8 teacher folder shared by the whole session (read-only by convention)."""
    return write_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny")


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny networks gain nothing from intra-op threads, and on a busy machine OpenMP's waits cost ~100x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SIGNS_CACHE, so cached pairs and statistics never leak between tests."""
    cache = tmp_path / "signs_cache"
    monkeypatch.setenv("SIGNS_CACHE", str(cache))
    return cache
