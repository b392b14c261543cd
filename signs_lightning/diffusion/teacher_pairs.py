"""L_reg's (noise, teacher DDIM sample) pairs: made once per teacher and cached on disk."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from signs_lightning.cache import atomic_torch_save, resolve_cache_dir
from signs_lightning.diffusion.score_model import ScoreModel


def pairs_path(teacher: ScoreModel, count: int, steps: int, seed: int, cache_dir: str | os.PathLike | None) -> Path:
    """Cache file keyed by teacher fingerprint, sampler, steps, count and seed."""
    return resolve_cache_dir(cache_dir) / "teacher_pairs" / f"{teacher.fingerprint()}-ddim{steps}-n{count}-seed{seed}.pt"


@torch.no_grad()
def generate_pairs(teacher: ScoreModel, count: int, steps: int, seed: int, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """(z (count, C, H, W), teacher DDIM-``steps`` sample from z), on the teacher's device, in float32."""
    device = next(teacher.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn((count, *teacher.image_shape), generator=generator)
    y = torch.cat([teacher.ddim_sample(chunk.to(device), steps).float().cpu() for chunk in z.split(batch_size)])
    return z, y


def load_or_generate_pairs(
    teacher: ScoreModel, count: int, steps: int, seed: int, cache_dir: str | os.PathLike | None = None
) -> tuple[Tensor, Tensor]:
    """The cached pairs for this teacher and setting, generating and saving them first if absent."""
    path = pairs_path(teacher, count, steps, seed, cache_dir)
    if path.is_file():
        cached = torch.load(path, map_location="cpu", weights_only=True)
        return cached["z"], cached["y"]
    z, y = generate_pairs(teacher, count, steps, seed)
    atomic_torch_save({"z": z, "y": y}, path)
    return z, y
