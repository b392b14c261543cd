"""LightningDataModules: the embedded MNIST default, CIFAR-10, CelebA-64 and a user's image folder."""

from signs_lightning.data.base import ImageDataModule, NoTestSplit, Splits
from signs_lightning.data.mnist import EmbeddedMNISTDataModule

__all__ = ["ImageDataModule", "EmbeddedMNISTDataModule", "NoTestSplit", "Splits"]

# CIFAR-10, CelebA-64 and a user's image folder (issue 3).
from signs_lightning.data.celeba import CELEBA_CROP, CelebA64DataModule  # noqa: E402
from signs_lightning.data.cifar10 import CIFAR10DataModule  # noqa: E402
from signs_lightning.data.errors import CorruptDatasetError, DatasetNotFoundError, check_matches_model  # noqa: E402
from signs_lightning.data.image_folder import IMAGE_EXTENSIONS, ImageFolderDataModule  # noqa: E402

__all__ += [
    "CELEBA_CROP",
    "CelebA64DataModule",
    "CIFAR10DataModule",
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "IMAGE_EXTENSIONS",
    "ImageFolderDataModule",
    "check_matches_model",
]
