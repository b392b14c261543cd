"""L_reg's (noise, teacher DDIM sample) pairs, optionally with the ODE trajectory between them: made once per
teacher and cached on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from signs_lightning.cache import atomic_torch_save, resolve_cache_dir
from signs_lightning.diffusion.score_model import ScoreModel


class TeacherPairs(NamedTuple):
    """``count`` teacher samples, float32 on the CPU.

    z: (count, C, H, W) the noise each sample starts from.
    y: (count, C, H, W) the teacher's DDIM sample from z.
    trajectory: (count, steps - 1, C, H, W) the sampler's partly-noised states between z and y (at the levels
        ``schedule.ddim_timesteps(steps)[1:]``), or None when not requested.
    """

    z: Tensor
    y: Tensor
    trajectory: Tensor | None = None


def pairs_path(
    teacher: ScoreModel, count: int, steps: int, seed: int, cache_dir: str | os.PathLike | None, trajectory: bool = False
) -> Path:
    """Cache file keyed by teacher fingerprint, sampler, steps, count, seed and whether it holds trajectories."""
    suffix = "-traj" if trajectory else ""
    name = f"{teacher.fingerprint()}-ddim{steps}-n{count}-seed{seed}{suffix}.pt"
    return resolve_cache_dir(cache_dir) / "teacher_pairs" / name


@torch.no_grad()
def generate_pairs(
    teacher: ScoreModel, count: int, steps: int, seed: int, trajectory: bool = False, batch_size: int = 500
) -> TeacherPairs:
    """Run the teacher's DDIM-``steps`` sampler from ``count`` seeded noises (see ``TeacherPairs``)."""
    device = next(teacher.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn((count, *teacher.image_shape), generator=generator)
    ys, states = [], []
    for chunk in z.split(batch_size):
        *path, y = (x.float().cpu() for x in teacher.ddim_trajectory(chunk.to(device), steps))
        ys.append(y)
        if trajectory:
            states.append(torch.stack(path, dim=1) if path else y.new_empty(y.shape[0], 0, *y.shape[1:]))
    return TeacherPairs(z, torch.cat(ys), torch.cat(states) if trajectory else None)


def load_or_generate_pairs(
    teacher: ScoreModel,
    count: int,
    steps: int,
    seed: int,
    cache_dir: str | os.PathLike | None = None,
    trajectory: bool = False,
) -> TeacherPairs:
    """The cached pairs for this teacher and setting, generating and saving them first if absent."""
    path = pairs_path(teacher, count, steps, seed, cache_dir, trajectory)
    if path.is_file():
        return TeacherPairs(**torch.load(path, map_location="cpu", weights_only=True))
    pairs = generate_pairs(teacher, count, steps, seed, trajectory)
    atomic_torch_save(pairs._asdict(), path)
    return pairs
