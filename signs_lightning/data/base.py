"""What every DataModule of the collection shares: image geometry, loaders, splits and the FID reference set."""

from __future__ import annotations

from typing import NamedTuple

import lightning as L
from torch.utils.data import DataLoader, Dataset

from signs_lightning.core.errors import SignsError
from signs_lightning.core.randomness import run_seed
from signs_lightning.data.sampler import ResumableSampler


class Splits(NamedTuple):
    """What ``build_datasets`` returns: train, val and test are disjoint; reference holds the train images."""

    train: Dataset  # with augmentation
    val: Dataset  # held out: ``signs validate`` and the fit's validation
    reference: Dataset  # the FID reference set: the train split without augmentation
    test: Dataset | None  # held out, disjoint from val: ``signs test``; None when there is none


class NoTestSplit(SignsError):
    """``signs test`` on a DataModule (or settings) without a test split."""


class ImageDataModule(L.LightningDataModule):
    """Serves (image, label) batches: image (B, C, H, W) float32 in [-1, 1], label (B,) int64 (-1 if none).

    Subclasses implement ``build_datasets`` (and ``prepare_data`` when they download) and, if their test split can be
    absent, ``no_test_split``. ``prepare_data`` only downloads (rank 0 of each node), ``setup`` only builds, so the
    module is DDP-safe.

    Args:
        image_size: side of the square images served; must match the teacher's ``sample_size``.
        channels: 1 (grey) or 3 (RGB); must match the teacher's ``in_channels``.
        batch_size: per-process batch size.
        num_workers, pin_memory, persistent_workers: passed to every ``DataLoader``.
    """

    name: str = "images"

    def __init__(
        self,
        image_size: int,
        channels: int,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.reference_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def build_datasets(self) -> Splits:
        """The train, validation, FID reference and test datasets."""
        raise NotImplementedError

    def no_test_split(self) -> str:
        """Why ``build_datasets`` gave no test split, and the setting that gives one (the ``NoTestSplit`` message)."""
        return f"{type(self).__name__} has no test split: score the validation split with `signs validate`"

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set, self.val_set, self.reference_set, self.test_set = self.build_datasets()

    def reference_key(self) -> str:
        """Names the FID reference set: dataset, split and geometry (the extractor is added by the metric)."""
        return f"{self.name}-train-{self.channels}x{self.image_size}"

    def _loader(self, dataset: Dataset | None, shuffle: bool, drop_last: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not run yet")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled by (run seed, epoch) through ``ResumableSampler``; a resumed fit skips the batches of the
        current epoch that the model already trained on (``model.global_batches``), so it sees exactly the batches
        an uninterrupted fit would."""
        if self.train_set is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not run yet")
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        model = trainer.lightning_module if trainer is not None else None
        # The model's recorded seed when it has one: a resumed run keeps its data order whatever seed it was given.
        seed = getattr(model, "seed", None)
        sampler = ResumableSampler(
            self.train_set, num_replicas=world, rank=rank, seed=run_seed() if seed is None else seed
        )
        batches_per_epoch = len(sampler) // self.batch_size
        if trainer is not None:
            limit = trainer.limit_train_batches
            batches_per_epoch = (
                int(batches_per_epoch * limit) if isinstance(limit, float) else min(batches_per_epoch, limit)
            )
        done = getattr(model, "global_batches", 0)
        if done and batches_per_epoch:
            sampler.skip_next((done % batches_per_epoch) * self.batch_size)
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        """The test split, never the validation split: ``signs test`` numbers are not ``signs validate``'s again."""
        if self.train_set is not None and self.test_set is None:
            raise NoTestSplit(self.no_test_split())
        return self._loader(self.test_set, shuffle=False, drop_last=False)

    def predict_dataloader(self) -> DataLoader:
        """What the model generates (``signs predict``): its own sample-index loader, since images come from noise."""
        model = self.trainer.lightning_module if self.trainer is not None else None
        if model is None or not hasattr(model, "predict_dataloader"):
            raise RuntimeError(f"{type(self).__name__} has no prediction data: predict with a generator module")
        return model.predict_dataloader()

    def reference_dataloader(self) -> DataLoader:
        """The FID reference images (train split, no flips), in a fixed order."""
        return self._loader(self.reference_set, shuffle=False, drop_last=False)
