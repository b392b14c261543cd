"""The lab's test fixtures: a tiny diffusers teacher on disk and a one-step SIGN checkpoint of it, a cache of its own
per test, one torch thread."""

from __future__ import annotations

import os

# Tests never reach a hub: an uncached hub id must fail at once instead of retrying a network that isn't there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import lightning as L
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler

from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.losses import Regression
from signs_lightning.modules import SIGNModule
from signs_lightning.networks import build_unet


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~5k-parameter 1x8x8 epsilon-prediction teacher folder (``DDPMPipeline``), read-only by convention."""
    path = tmp_path_factory.mktemp("teacher") / "tiny"
    torch.manual_seed(0)
    unet = build_unet(8, 1, block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4)
    scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type="epsilon", clip_sample=False)
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(path)
    return path


@pytest.fixture
def sign_checkpoint(tiny_teacher_dir: Path, tmp_path: Path) -> Path:
    """A SIGN of the tiny teacher after one generator step, as ``signs fit`` writes it."""
    model = SIGNModule(
        teacher=str(tiny_teacher_dir), reg=Regression(pairs=8, sampler_steps=2), max_generator_steps=1, sample_nfe=[1]
    )
    trainer = L.Trainer(
        max_epochs=-1, default_root_dir=tmp_path, logger=False, enable_progress_bar=False, limit_val_batches=0
    )
    trainer.fit(model, EmbeddedMNISTDataModule(image_size=8, batch_size=8))
    checkpoint = tmp_path / "sign.ckpt"
    trainer.save_checkpoint(checkpoint)
    return checkpoint


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "signs_cache"
    monkeypatch.setenv("SIGNS_CACHE", str(cache))
    return cache
