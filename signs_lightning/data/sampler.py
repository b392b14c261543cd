"""The training sampler: an epoch's order is a function of (seed, epoch), and a resumed fit starts mid-epoch
exactly where the interrupted one stopped."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled by (seed, epoch), rank r takes its 1/W share) that can skip the first
    samples of the next epoch it yields: the ones a resumed fit already trained on.

    Used on one process too, so that one process and W processes shuffle the same way, and so that Lightning keeps
    it under DDP (it only replaces samplers that are not a ``DistributedSampler``).
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self._skip = 0

    def skip_next(self, samples: int) -> None:
        """The next ``__iter__`` drops its first ``samples`` indices (later epochs are whole again)."""
        self._skip = samples

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self._skip = self._skip, 0
        return iter(indices[skip:])
