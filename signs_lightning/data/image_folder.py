"""A user's folder of images, and the image reading / geometry code the CelebA and CIFAR-10 modules share.

Every image, whatever its size and PIL mode, becomes a float tensor (C, S, S) in [-1, 1]: converted to the
configured channels, its shorter side resized to S, centre-cropped to a square.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset

from signs_lightning.data.base import ImageDataModule, Splits
from signs_lightning.data.errors import CorruptDatasetError, DatasetNotFoundError

IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")

# Pillow's convert("L") clips these to 0..255 instead of rescaling (a 16-bit PNG would turn almost white), so
# they are scaled by hand; "I" is how Pillow opens some 16-bit greyscale files, so it is read as 16-bit too.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def pil_to_unit_tensor(image: Image.Image, channels: int) -> torch.Tensor:
    """Any PIL image → float32 (``channels``, H, W) in [0, 1]. Transparent pixels are composited over white."""
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = torch.from_numpy(np.asarray(image, dtype=np.float32) / 65535.0).clamp_(0, 1)[None]
        return grey.repeat(channels, 1, 1)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        # Dropping alpha would expose whatever colour the encoder left under transparent pixels (often black).
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array[None] if channels == 1 else np.ascontiguousarray(array.transpose(2, 0, 1)))


# What Pillow raises for a file that is not a readable image.
_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
_JPEG_END = b"\xff\xd9"


def load_image(path: Path, channels: int) -> torch.Tensor:
    """Read one image file → float32 (``channels``, H, W) in [0, 1]; any decoding failure names the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return pil_to_unit_tensor(image, channels)
    except _UNREADABLE as err:
        raise _unreadable(path, err) from err


def check_images(paths: Sequence[Path]) -> None:
    """Raise ``CorruptDatasetError`` naming the first of ``paths`` that is not a readable image.

    Cheap enough for large folders, since nothing is decoded: Pillow parses each header and runs ``verify()``
    (which checks e.g. PNG chunk checksums). A JPEG without its end marker, usually a cut-off copy, is decoded
    to be sure (one with bytes after the marker decodes fine and passes).
    """
    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
                cut_off = image.format == "JPEG" and not _ends_with(path, _JPEG_END)
        except _UNREADABLE as err:
            raise _unreadable(path, err) from err
        if cut_off:
            load_image(path, channels=3)


def _ends_with(path: Path, tail: bytes) -> bool:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - len(tail)))
        return handle.read() == tail


def _unreadable(path: Path, err: BaseException) -> CorruptDatasetError:
    return CorruptDatasetError(f"cannot read image {path}: {type(err).__name__}: {err}. Replace or delete that file.")


class ToModelRange:
    """Unit image (C, H, W) in [0, 1] → (C, S, S) in [-1, 1], S = ``image_size``.

    Steps: optional crop box, shorter side resized to S (antialiased bilinear), centre crop to S×S, optional random
    horizontal flip. A class rather than a lambda so DataLoader workers can pickle it under ``spawn``.

    Args:
        image_size: S.
        random_flip: mirror left-right with probability 1/2 (training only).
        crop: (top, left, height, width) box taken before resizing, or None.
    """

    def __init__(self, image_size: int, random_flip: bool = False, crop: Sequence[int] | None = None) -> None:
        self.image_size = int(image_size)
        self.random_flip = random_flip
        self.crop = None if crop is None else tuple(int(v) for v in crop)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.crop is not None:
            top, left, height, width = self.crop
            if top < 0 or left < 0 or top + height > image.shape[-2] or left + width > image.shape[-1]:
                # torchvision would silently zero-pad a box that leaves the image.
                raise ValueError(
                    f"crop box (top={top}, left={left}, height={height}, width={width}) does not fit an image of "
                    f"{image.shape[-1]}x{image.shape[-2]} (WxH)"
                )
            image = image[..., top : top + height, left : left + width]
        if min(image.shape[-2:]) != self.image_size:
            image = TF.resize(image, self.image_size, antialias=True)
        if image.shape[-2] != self.image_size or image.shape[-1] != self.image_size:
            image = TF.center_crop(image, [self.image_size, self.image_size])
        if self.random_flip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image.mul(2).sub(1).clamp(-1, 1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_size={self.image_size}, random_flip={self.random_flip}, crop={self.crop})"


class ImageFileDataset(Dataset):
    """Image files → (image (C, S, S) float32 in [-1, 1], label -1 as int64).

    Args:
        paths: the files, in the order served.
        channels: 1 or 3.
        transform: unit tensor (C, H, W) → model-range tensor, e.g. ``ToModelRange``.
    """

    def __init__(self, paths: Sequence[Path], channels: int, transform: ToModelRange) -> None:
        self.paths = list(paths)
        self.channels = channels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.transform(load_image(self.paths[index], self.channels))
        return image, torch.tensor(-1, dtype=torch.int64)


def find_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursive, symlinks followed, hidden files skipped), sorted."""
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"image folder {root} does not exist (or is not a folder): set data.init_args.root to a folder that "
            f"contains images ({', '.join(IMAGE_EXTENSIONS)}), in any sub-folder layout"
        )
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        # Hidden entries are version-control or macOS "._name.jpg" metadata files, not images.
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found.extend(
            Path(folder, name)
            for name in files
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
        )
    if not found:
        raise DatasetNotFoundError(
            f"no images found in {root} (searched recursively for the extensions {', '.join(IMAGE_EXTENSIONS)}, "
            f"case-insensitive): point data.init_args.root at a folder that contains images"
        )
    return sorted(found)


class ImageFolderDataModule(ImageDataModule):
    """A folder of images of any size and mode, served as ``channels``×``image_size``² squares, label -1.

    Validation is a seeded random ``val_fraction`` of the files, a test split (``signs test``) the next
    ``test_fraction`` of the same seeded order (none by default: it would shrink the training set of every run), and
    the rest train; the train files without flips are the FID reference set. Validation holds the same files
    whatever ``test_fraction`` is (unless the folder is too small to hold out both). ``setup`` checks every file
    (``check_images``) and names an unreadable one.

    Args:
        root: the folder (searched recursively for ``IMAGE_EXTENSIONS``).
        image_size: side of the served squares (shorter side resized, then centre-cropped).
        channels: 1 (greyscale, ITU-R 601 luma) or 3 (RGB; greyscale images are replicated).
        val_fraction: share of the files held out for validation, in (0, 1); at least one file.
        test_fraction: share of the files held out for ``signs test``, in [0, 1); at least one file unless 0. A
            test must be given the fit's value, or it would score files the model trained on.
        split_seed: fixes which files are held out.
        random_flip: horizontal flips for training (off by default: a user's images may be text or digits).
    """

    name = "imagefolder"

    def __init__(
        self,
        root: str,
        image_size: int,
        channels: int,
        batch_size: int = 64,
        val_fraction: float = 0.05,
        test_fraction: float = 0.0,
        split_seed: int = 0,
        random_flip: bool = False,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__(image_size, channels, batch_size, num_workers, pin_memory, persistent_workers)
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"test_fraction must be in [0, 1) and leave training files (val_fraction + test_fraction < 1), got "
                f"{test_fraction} with val_fraction {val_fraction}"
            )
        self.root = Path(root).expanduser()
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.split_seed = split_seed
        self.random_flip = random_flip
        self.name = f"imagefolder-{self.root.resolve().name}"

    def reference_key(self) -> str:
        """Adds a digest of the folder's absolute path and the split, which both decide the reference images."""
        identity = f"{self.root.resolve()}|{self.val_fraction}|{self.split_seed}"
        if self.test_fraction:  # only then: the keys (and cached statistics) of folders without a test split stay
            identity += f"|{self.test_fraction}"
        digest = hashlib.sha1(identity.encode()).hexdigest()[:8]
        return f"{self.name}-{digest}-train-{self.channels}x{self.image_size}"

    def no_test_split(self) -> str:
        return (
            f"{type(self).__name__} has no test split by default: fit with data.init_args.test_fraction (e.g. 0.05) "
            "to hold test files out of training, and test with the same value; or score the validation split with "
            "`signs validate`"
        )

    def build_datasets(self) -> Splits:
        paths = find_images(self.root)
        # Here rather than when a worker first reads the file, possibly hours into the run.
        check_images(paths)
        n_val, n_test = self._split_sizes(paths)
        order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        val_paths = [paths[i] for i in sorted(order[:n_val])]
        test_paths = [paths[i] for i in sorted(order[n_val : n_val + n_test])]
        train_paths = [paths[i] for i in sorted(order[n_val + n_test :])]
        plain = ToModelRange(self.image_size)
        reference = ImageFileDataset(train_paths, self.channels, plain)
        train = ImageFileDataset(train_paths, self.channels, ToModelRange(self.image_size, self.random_flip))
        test = ImageFileDataset(test_paths, self.channels, plain) if test_paths else None
        return Splits(train, ImageFileDataset(val_paths, self.channels, plain), reference, test)

    def _split_sizes(self, paths: Sequence[Path]) -> tuple[int, int]:
        """(validation files, test files): at least one each (no test files when ``test_fraction`` is 0), and at
        least one file left to train on."""
        held_out = 2 if self.test_fraction else 1
        if len(paths) <= held_out:
            splits = "train, validation and test splits" if self.test_fraction else "a train and a validation split"
            raise DatasetNotFoundError(
                f"{self.root} holds {len(paths)} image(s) ({paths[0]}); {splits} need at least {held_out + 1}"
            )
        n_val = min(len(paths) - held_out, max(1, round(self.val_fraction * len(paths))))
        if not self.test_fraction:
            return n_val, 0
        return n_val, min(len(paths) - 1 - n_val, max(1, round(self.test_fraction * len(paths))))
