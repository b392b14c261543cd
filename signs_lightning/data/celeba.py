"""CelebA aligned faces (178×218 JPEGs) cropped to the face and resized to 64×64 (``CelebA64DataModule``).

Reading needs only the images and the official partition file, so a folder extracted by hand works as well as
one downloaded by torchvision (whose Google-Drive download often fails on quota). No md5 is checked on read.

Splits follow ``list_eval_partition.txt``: train = partition 0 (162,770 images, flipped at random), val =
partition 1 (19,867, optionally a seeded ``val_size`` subset), test (``signs test``) = partition 2 (19,962),
reference for FID = partition 0 without flips.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.datasets import CelebA

from signs_lightning.data.base import ImageDataModule, Splits
from signs_lightning.data.errors import CorruptDatasetError, DatasetNotFoundError
from signs_lightning.data.image_folder import ImageFileDataset, ToModelRange

# (top, left, height, width) in the 178×218 aligned image: the 128×128 box centred on (x=89, y=121) that DDIM
# uses for CelebA 64×64 (github.com/ermongroup/ddim, datasets/__init__.py: cx=89, cy=121, Crop(cy-64, cy+64,
# cx-64, cx+64)); later DDPM-family CelebA-64 FIDs (PNDM, Analytic-DPM, ...) inherit it.
CELEBA_CROP: tuple[int, int, int, int] = (57, 25, 128, 128)
PARTITIONS = {"train": 0, "valid": 1, "test": 2}
CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


def read_partition(path: Path) -> dict[int, list[str]]:
    """``list_eval_partition.txt`` ("000001.jpg 0" per line) → {partition: file names in file order}."""
    splits: dict[int, list[str]] = {0: [], 1: [], 2: []}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise CorruptDatasetError(f"{path}, line {number}: expected '<file name> <0|1|2>', got {line!r}")
        splits[int(fields[1])].append(fields[0])
    return splits


class CelebA64DataModule(ImageDataModule):
    """CelebA faces as (B, 3, S, S) float32 in [-1, 1], label -1 (the module is unconditional).

    Expected layout (torchvision's, also accepted when extracted by hand)::

        <root>/celeba/img_align_celeba/000001.jpg ... 202599.jpg
        <root>/celeba/list_eval_partition.txt

    (torchvision's download also writes the attribute, identity, bbox and landmark lists; they are not needed.)

    Args:
        root: folder that contains ``celeba/``.
        download: let ``prepare_data`` fetch CelebA with torchvision (Google Drive, needs ``gdown``).
        crop: (top, left, height, width) box applied to the aligned image before resizing; see ``CELEBA_CROP``.
        image_size: side of the served squares.
        batch_size: per-process batch size.
        val_size: validation images drawn (seeded) from partition 1, or None for all 19,867.
        split_seed: fixes the validation subset.
        random_flip: horizontal flips on the training set (never on val or reference).
        num_workers, pin_memory, persistent_workers: DataLoader settings (decoding JPEGs wants workers).
    """

    name = "celeba64"

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        crop: tuple[int, int, int, int] = CELEBA_CROP,
        image_size: int = 64,
        batch_size: int = 64,
        val_size: int | None = None,
        split_seed: int = 0,
        random_flip: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__(image_size, 3, batch_size, num_workers, pin_memory, persistent_workers)
        if val_size is not None and val_size < 1:
            raise ValueError(f"val_size must be >= 1 or None, got {val_size}")
        self.root = Path(root).expanduser()
        self.download = download
        self.crop = tuple(int(v) for v in crop)
        if len(self.crop) != 4 or min(self.crop[2:]) < 1:
            raise ValueError(f"crop must be (top, left, height, width) with positive height/width, got {crop}")
        self.val_size = val_size
        self.split_seed = split_seed
        self.random_flip = random_flip

    @property
    def folder(self) -> Path:
        """``<root>/celeba``."""
        return self.root / CelebA.base_folder

    @property
    def image_folder(self) -> Path:
        """``<root>/celeba/img_align_celeba``."""
        return self.folder / "img_align_celeba"

    @property
    def partition_file(self) -> Path:
        """``<root>/celeba/list_eval_partition.txt``."""
        return self.folder / "list_eval_partition.txt"

    def reference_key(self) -> str:
        """A non-default crop changes every reference image, so it is part of the key."""
        key = super().reference_key()
        return key if self.crop == CELEBA_CROP else key + "-crop" + "_".join(map(str, self.crop))

    def _layout_hint(self) -> str:
        return (
            f"Expected the layout\n"
            f"  {self.image_folder}/000001.jpg ... 202599.jpg   (img_align_celeba.zip extracted)\n"
            f"  {self.partition_file}\n"
            f"Set data.init_args.download: true to fetch it with torchvision (Google Drive, needs `pip install "
            f"gdown`, often refused on quota), or download img_align_celeba.zip and list_eval_partition.txt from "
            f"{CELEBA_PAGE} and unzip them into {self.folder}/, or set data.init_args.root to the folder that "
            f"holds celeba/."
        )

    def prepare_data(self) -> None:
        """Download with torchvision when ``download`` is set and the images or partition file are missing."""
        if not self.download or (self.image_folder.is_dir() and self.partition_file.is_file()):
            return
        try:
            CelebA(str(self.root), split="all", target_type=[], download=True)
        except Exception as err:
            raise RuntimeError(
                f"downloading CelebA into {self.folder} with torchvision failed: {type(err).__name__}: {err}.\n"
                + self._layout_hint()
            ) from err

    def no_test_split(self) -> str:
        return (
            f"{type(self).__name__} has no test split: {self.partition_file} lists no test (2) images; use the "
            f"official list_eval_partition.txt from {CELEBA_PAGE}"
        )

    def build_datasets(self) -> Splits:
        missing = [path for path in (self.image_folder, self.partition_file) if not path.exists()]
        if missing:
            raise DatasetNotFoundError(
                f"CelebA not found: {', '.join(map(str, missing))} missing. " + self._layout_hint()
            )
        splits = read_partition(self.partition_file)
        train_names, val_names = splits[PARTITIONS["train"]], splits[PARTITIONS["valid"]]
        test_names = splits[PARTITIONS["test"]]
        if not train_names or not val_names:
            raise CorruptDatasetError(
                f"{self.partition_file} lists {len(train_names)} train (0) and {len(val_names)} valid (1) images; "
                f"both splits are needed"
            )
        self._check_listed_images_exist(train_names + val_names + test_names)
        if self.val_size is not None and self.val_size < len(val_names):
            generator = torch.Generator().manual_seed(self.split_seed)
            keep = sorted(torch.randperm(len(val_names), generator=generator)[: self.val_size].tolist())
            val_names = [val_names[i] for i in keep]
        plain = ToModelRange(self.image_size, crop=self.crop)
        train_paths = self._paths(train_names)
        train = ImageFileDataset(train_paths, 3, ToModelRange(self.image_size, self.random_flip, self.crop))
        val = ImageFileDataset(self._paths(val_names), 3, plain)
        test = ImageFileDataset(self._paths(test_names), 3, plain) if test_names else None
        return Splits(train, val, ImageFileDataset(train_paths, 3, plain), test)

    def _paths(self, names: Sequence[str]) -> list[Path]:
        return [self.image_folder / name for name in names]

    def _check_listed_images_exist(self, names: Sequence[str]) -> None:
        # One directory listing instead of 180k stat calls; an incomplete unzip otherwise surfaces mid-epoch.
        present = set(os.listdir(self.image_folder))
        absent = [name for name in names if name not in present]
        if absent:
            raise DatasetNotFoundError(
                f"{len(absent)} of the {len(names)} images listed in {self.partition_file} are missing "
                f"from {self.image_folder} (first: {', '.join(absent[:3])}); the unzip of img_align_celeba.zip may "
                f"be incomplete. " + self._layout_hint()
            )
