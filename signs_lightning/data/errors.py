"""Errors the DataModules raise, worded so that the message alone says which path, file or flag to fix."""

from __future__ import annotations

import inspect

import lightning as L


class DatasetNotFoundError(FileNotFoundError):
    """The data is not on disk where the DataModule looks (and ``download`` is off or cannot help)."""


class CorruptDatasetError(RuntimeError):
    """A file of the dataset is there but cannot be used (wrong checksum, not a readable image, bad list line)."""


def check_matches_model(datamodule: L.LightningDataModule, channels: int, image_size: int, model_name: str) -> None:
    """Raise ``ValueError`` unless ``datamodule`` serves (B, ``channels``, ``image_size``, ``image_size``) images.

    Called by the LightningModule's ``setup`` with the teacher's ``in_channels`` / ``sample_size``, so a mismatch
    fails before any weights move instead of as a shape error deep inside the UNet.

    Args:
        datamodule: an ``ImageDataModule`` (anything with ``channels`` and ``image_size`` attributes).
        channels, image_size: what the model expects.
        model_name: the teacher's hub id or folder, quoted in the message.
    """
    served = (int(datamodule.channels), int(datamodule.image_size))
    expected = (int(channels), int(image_size))
    if served == expected:
        return
    data_name = type(datamodule).__name__
    # Only name the init args this DataModule really has: CIFAR-10 and CelebA always serve RGB.
    settable = inspect.signature(type(datamodule).__init__).parameters
    fixes = [
        f"data.init_args.{arg}: {want}"
        for arg, have, want in zip(("channels", "image_size"), served, expected)
        if have != want and arg in settable
    ]
    mismatched = [arg for arg, have, want in zip(("channels", "image_size"), served, expected) if have != want]
    unsettable = "/".join(arg for arg in mismatched if arg not in settable)
    if not unsettable:
        hint = f"set {' and '.join(fixes)} or choose another teacher"
    else:
        hint = (
            f"{data_name} cannot change its {unsettable}: choose another teacher or another data module "
            f"(e.g. ImageFolderDataModule, which has {unsettable})"
        )
    raise ValueError(
        f"data {data_name} serves {served[0]}x{served[1]}x{served[1]} images but the teacher {model_name} "
        f"expects {expected[0]}x{expected[1]}x{expected[1]}: {hint}"
    )
