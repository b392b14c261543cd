"""CIFAR-10 through torchvision's ``CIFAR10`` reader: 50,000 train and 10,000 test 32×32 RGB images, 10 classes.

Splits (chosen to match how CIFAR-10 FIDs are published):
- train: all 50,000 train images, random horizontal flips. The teacher (e.g. ``google/ddpm-cifar10-32``) was
  trained on all of them, so holding some out would not make them unseen by the distilled model anyway.
- val: ``val_size`` images drawn (seeded) from the 10,000-image ``test_batch``.
- test (``signs test``): the rest of ``test_batch`` (10,000 − ``val_size`` images, file order), so test and
  validation never share an image and validation keeps the images it always had.
- reference (FID statistics): the 50,000 train images without flips, the "FID against the training set" protocol
  of DDPM / DDIM / DMD.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import calculate_md5

from signs_lightning.data.base import ImageDataModule, Splits
from signs_lightning.data.errors import CorruptDatasetError, DatasetNotFoundError
from signs_lightning.data.image_folder import ToModelRange, pil_to_unit_tensor


class CIFARView(Dataset):
    """Items of a torchvision ``CIFAR10`` (PIL image, class) → (image (3, S, S) float32 in [-1, 1], label int64).

    Args:
        source: the loaded torchvision dataset (its arrays are shared by every view, so they are loaded once).
        indices: which items to serve, or None for all of them.
        transform: the geometry / flip / range transform.
    """

    def __init__(self, source: CIFAR10, indices: Sequence[int] | None, transform: ToModelRange) -> None:
        self.source = source
        self.indices = list(range(len(source))) if indices is None else list(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.source[self.indices[index]]
        return self.transform(pil_to_unit_tensor(image, 3)), torch.tensor(label, dtype=torch.int64)


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 as (B, 3, S, S) float32 in [-1, 1] with class labels (B,) int64.

    Expected layout (what ``download: true`` produces, or the official ``cifar-10-python.tar.gz`` extracted)::

        <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta

    Every file's md5 is checked against ``dataset_class``'s tables before loading.

    Args:
        root: folder that contains ``cifar-10-batches-py``.
        download: let ``prepare_data`` fetch the archive from the University of Toronto (rank 0 of each node).
        image_size: 32 serves the images as they are; another size resizes them (antialiased bilinear).
        batch_size: per-process batch size.
        val_size: validation images taken from ``test_batch`` (at most 10,000); the others are the test split.
        split_seed: fixes which ``test_batch`` images are the validation set.
        random_flip: horizontal flips on the training set (never on val or reference).
        num_workers, pin_memory, persistent_workers: DataLoader settings.
    """

    name = "cifar10"
    # torchvision's class carries the file names and md5s; tests substitute a subclass describing a tiny tree.
    dataset_class: type[CIFAR10] = CIFAR10

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        image_size: int = 32,
        batch_size: int = 128,
        val_size: int = 5000,
        split_seed: int = 0,
        random_flip: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__(image_size, 3, batch_size, num_workers, pin_memory, persistent_workers)
        if val_size < 1:
            raise ValueError(f"val_size must be >= 1, got {val_size}")
        self.root = Path(root).expanduser()
        self.download = download
        self.val_size = int(val_size)
        self.split_seed = split_seed
        self.random_flip = random_flip

    @property
    def folder(self) -> Path:
        """``<root>/cifar-10-batches-py``."""
        return self.root / self.dataset_class.base_folder

    def _expected_files(self) -> list[tuple[str, str | None]]:
        tables = self.dataset_class.train_list + self.dataset_class.test_list
        meta = self.dataset_class.meta
        return [(name, md5) for name, md5 in tables] + [(meta["filename"], meta["md5"])]

    def check_files(self) -> None:
        """Fail with the expected layout if a file is missing, or with the file's name if its md5 is wrong."""
        expected = self._expected_files()
        missing = [name for name, _ in expected if not (self.folder / name).is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"CIFAR-10 not found: {', '.join(missing)} missing from {self.folder}. Expected the layout\n"
                f"  {self.folder}/{{{', '.join(name for name, _ in expected)}}}\n"
                f"(the official cifar-10-python.tar.gz extracted into {self.root}). Set data.init_args.download: "
                f"true to download it (about 170 MB), or data.init_args.root to the folder that holds "
                f"{self.dataset_class.base_folder}/."
            )
        for name, md5 in expected:
            if md5 is not None and (actual := calculate_md5(self.folder / name)) != md5:
                raise CorruptDatasetError(
                    f"CIFAR-10 file {self.folder / name} is corrupt: md5 {actual}, expected {md5}. Delete "
                    f"{self.folder} and set data.init_args.download: true (or extract cifar-10-python.tar.gz again)."
                )

    def prepare_data(self) -> None:
        """Download and extract the archive when ``download`` is set and the files are not already there."""
        if not self.download:
            return
        try:
            # torchvision skips the download when every batch file's md5 already matches.
            self.dataset_class(str(self.root), train=True, download=True)
        except Exception as err:
            raise RuntimeError(
                f"downloading CIFAR-10 from {self.dataset_class.url} into {self.root} failed: "
                f"{type(err).__name__}: {err}. Without internet access, fetch that archive elsewhere, extract it so "
                f"that {self.folder / 'data_batch_1'} exists, and set data.init_args.download: false."
            ) from err

    def no_test_split(self) -> str:
        return (
            f"{type(self).__name__} has no test split: its test split is test_batch minus the validation images, and "
            f"val_size={self.val_size} takes them all; lower data.init_args.val_size (default 5000)"
        )

    def build_datasets(self) -> Splits:
        self.check_files()
        train_source = self.dataset_class(str(self.root), train=True)
        test_source = self.dataset_class(str(self.root), train=False)
        if self.val_size > len(test_source):
            raise ValueError(f"val_size={self.val_size} but test_batch holds only {len(test_source)} images")
        generator = torch.Generator().manual_seed(self.split_seed)
        val_indices = sorted(torch.randperm(len(test_source), generator=generator)[: self.val_size].tolist())
        test_indices = sorted(set(range(len(test_source))) - set(val_indices))
        plain = ToModelRange(self.image_size)
        train = CIFARView(train_source, None, ToModelRange(self.image_size, self.random_flip))
        test = CIFARView(test_source, test_indices, plain) if test_indices else None
        return Splits(train, CIFARView(test_source, val_indices, plain), CIFARView(train_source, None, plain), test)
