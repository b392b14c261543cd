"""L_reg's (noise, teacher ODE sample) pairs, optionally with the ODE trajectory between them: made once per
teacher on the training devices by a deterministic ODE solver (``diffusion/ode_solvers.py``: our DDIM, or diffusers'
DPM-Solver++ or UniPC), shared out over the ranks, and cached on disk."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor
from tqdm.auto import tqdm

from signs_lightning.core.cache import atomic_torch_save, file_lock, resolve_cache_dir
from signs_lightning.core.distributed import DistributedStrategy, LocalStrategy
from signs_lightning.core.randomness import PAIRS_STREAM, seeded_generator
from signs_lightning.diffusion import ode_solvers
from signs_lightning.diffusion.score_model import ScoreModel

# Bumped whenever the same (teacher, solver, steps, count, seed) would produce different pairs: old caches are not
# reused. The solver is in the file name (``ddim10``, ``dpmsolverpp10``, ``unipc10``); DDIM pairs are the same as
# before solvers were selectable, so their caches keep their names and stay valid.
FORMAT = "v3"


class TeacherPairs(NamedTuple):
    """``count`` teacher samples, float32 on the CPU.

    z: (count, C, H, W) the noise each sample starts from; pair i's noise comes from seed (seed, i) alone.
    y: (count, C, H, W) the teacher's sample from z by the ODE solver (``ode_solvers.solve``).
    trajectory: (count, steps - 1, C, H, W) the solver's partly-noised states between z and y (at the levels
        ``schedule.ddim_timesteps(steps)[1:]``, the same for every solver), or None when not requested.
    """

    z: Tensor
    y: Tensor
    trajectory: Tensor | None = None


def pairs_path(
    teacher: ScoreModel,
    count: int,
    steps: int,
    seed: int,
    cache_dir: str | os.PathLike | None,
    trajectory: bool = False,
    solver: str = "ddim",
) -> Path:
    """Cache file keyed by teacher fingerprint, solver, steps, count, seed and whether it holds trajectories:
    ``<fingerprint>-<solver tag><steps>-n<count>-seed<seed>-<FORMAT>[-traj].pt``, the tag being ``ddim``,
    ``dpmsolverpp`` or ``unipc`` (``ode_solvers.solver_tag``)."""
    suffix = "-traj" if trajectory else ""
    tag = ode_solvers.solver_tag(solver)
    name = f"{teacher.fingerprint()}-{tag}{steps}-n{count}-seed{seed}-{FORMAT}{suffix}.pt"
    return resolve_cache_dir(cache_dir) / "teacher_pairs" / name


def pair_noise(seed: int, indices: Sequence[int], image_shape: Sequence[int]) -> Tensor:
    """The starting noise (len(indices), C, H, W) of the given pairs; pair i's depends on (seed, i) only."""
    return torch.stack(
        [torch.randn(tuple(image_shape), generator=seeded_generator(PAIRS_STREAM, seed, i)) for i in indices]
    )


@torch.no_grad()
def generate_pairs(
    teacher: ScoreModel,
    count: int,
    steps: int,
    seed: int,
    trajectory: bool = False,
    batch_size: int = 500,
    indices: Sequence[int] | None = None,
    progress: bool = False,
    solver: str = "ddim",
) -> TeacherPairs:
    """Run the teacher's ``solver`` with ``steps`` NFE (``ode_solvers.SOLVERS``), on the teacher's device, in
    batches of ``batch_size``, for the pairs ``indices`` (default: all ``count``); see ``TeacherPairs``."""
    ode_solvers.check_solver(solver)
    device = next(teacher.parameters()).device
    indices = range(count) if indices is None else indices
    z = pair_noise(seed, indices, teacher.image_shape)
    ys, states = [], []
    chunks = z.split(batch_size)
    for chunk in tqdm(chunks, desc=f"teacher pairs ({solver})", disable=not progress or len(chunks) < 2, leave=False):
        *path, y = (x.float().cpu() for x in ode_solvers.trajectory(teacher, chunk.to(device), solver, steps))
        ys.append(y)
        if trajectory:
            states.append(torch.stack(path, dim=1) if path else y.new_empty(y.shape[0], 0, *y.shape[1:]))
    empty = z.new_empty(0, *z.shape[1:])
    y_all = torch.cat(ys) if ys else empty
    path_all = (
        (torch.cat(states) if states else empty.new_empty(0, max(steps - 1, 0), *z.shape[1:])) if trajectory else None
    )
    return TeacherPairs(z, y_all, path_all)


def gather_interleaved(share: Tensor, count: int, strategy: DistributedStrategy) -> Tensor:
    """Rank r holds items r, r + W, r + 2W, ... of ``count``; returns all ``count`` items in order, on the CPU."""
    world = strategy.world_size
    if world == 1:
        return share
    longest = -(-count // world)
    padded = share.new_zeros(longest, *share.shape[1:])
    padded[: share.shape[0]] = share
    gathered = strategy.all_gather(padded.to(strategy.root_device)).cpu()  # (W, longest, ...)
    # Item i sits at (rank i % W, position i // W): transposing then flattening restores the order.
    return gathered.transpose(0, 1).reshape(longest * world, *share.shape[1:])[:count]


def load_or_generate_pairs(
    teacher: ScoreModel,
    count: int,
    steps: int,
    seed: int,
    cache_dir: str | os.PathLike | None = None,
    trajectory: bool = False,
    strategy: DistributedStrategy | None = None,
    batch_size: int = 500,
    solver: str = "ddim",
) -> TeacherPairs:
    """The cached pairs for this teacher and setting (``solver`` with ``steps`` NFE); on a miss every rank makes its
    share on its own device.

    Every rank must call it (collectives). Rank r makes pairs r, r + W, ... on the teacher's device; the shares are
    gathered, so the result is the same for any world size W; global rank 0 writes the cache atomically while
    holding a file lock, and loads and broadcasts it on a hit (the cache folder need not be shared between nodes).
    """
    strategy = strategy or LocalStrategy(next(teacher.parameters()).device)
    path = pairs_path(teacher, count, steps, seed, cache_dir, trajectory, solver)
    rank_zero = strategy.global_rank == 0
    with file_lock(path) if rank_zero else contextlib.nullcontext():
        cached = strategy.broadcast(path.is_file() if rank_zero else None, src=0)
        if cached:
            loaded = TeacherPairs(**torch.load(path, map_location="cpu", weights_only=True)) if rank_zero else None
            return strategy.broadcast(loaded, src=0)
        start = time.perf_counter()
        share = generate_pairs(
            teacher,
            count,
            steps,
            seed,
            trajectory,
            batch_size,
            indices=range(strategy.global_rank, count, strategy.world_size),
            progress=rank_zero,
            solver=solver,
        )
        pairs = TeacherPairs(
            gather_interleaved(share.z, count, strategy),
            gather_interleaved(share.y, count, strategy),
            gather_interleaved(share.trajectory, count, strategy) if trajectory else None,
        )
        if rank_zero:
            atomic_torch_save(pairs._asdict(), path)
            device = next(teacher.parameters()).device
            rank_zero_info(
                f"teacher pairs: {count} {solver}-{steps} pairs made on {device} by {strategy.world_size} rank(s) in "
                f"{time.perf_counter() - start:.1f} s, cached in {path}"
            )
    return pairs
