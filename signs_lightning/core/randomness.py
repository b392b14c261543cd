"""Seeds derived from keys: per-rank training streams, per-sample and per-chunk noise, independent of world size.

Lightning's ``seed_everything`` gives every DDP rank the same RNG state, so without a rank term every GPU would draw
the same z, the same L_reg indices and the same DMD timesteps. Here every random draw of a training step comes from
a stream seeded by (run seed, global rank, batch counter) and every sample of an evaluation or prediction from
(seed, sample or chunk index), so results do not depend on the number of processes and a resumed run draws
exactly what an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import torch

# Internal streams, each its own domain: a training step's draws, L_reg's pair noise and an FID chunk's noise must
# never share numbers, whatever the seeds and indices.
TRAINING_STREAM, PAIRS_STREAM, FID_STREAM = 0x5452, 0x5041, 0x4644


def derived_seed(*keys: int) -> int:
    """A 63-bit seed that is a function of ``keys`` only, well mixed (numpy's ``SeedSequence``).

    The number of keys is hashed in too: ``SeedSequence`` drops trailing zero words, so on its own it would give
    (s, i, 0) the seed of (s, i).

    >>> derived_seed(0, 1) == derived_seed(0, 1) != derived_seed(1, 0)
    True
    >>> len({derived_seed(0), derived_seed(0, 0), derived_seed(0, 0, 0), derived_seed(3, 1), derived_seed(3, 1, 0)})
    5
    """
    words = [len(keys), *(int(k) for k in keys)]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def seeded_generator(*keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``derived_seed(*keys)``."""
    return torch.Generator(device=device).manual_seed(derived_seed(*keys))


@contextlib.contextmanager
def forked_seed(seed: int, device: torch.device) -> Iterator[None]:
    """Inside: the global RNGs seeded with ``seed``. After: as they were, so an evaluation never moves the
    training stream. ``device``'s generator is forked too when it is a CUDA device."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def run_seed() -> int:
    """The run's seed: what ``seed_everything`` set (``PL_GLOBAL_SEED``), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def seed_step(seed: int, rank: int, step: int) -> None:
    """Seeds the global RNGs (CPU and every CUDA device) for one training step of one rank."""
    torch.manual_seed(derived_seed(TRAINING_STREAM, seed, rank, step))
