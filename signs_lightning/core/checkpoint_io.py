"""Checkpoint files: written atomically, and read with a one-line account of what is wrong with a bad one."""

from __future__ import annotations

import errno
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from signs_lightning.core.cache import atomic_torch_save
from signs_lightning.core.errors import SignsError, first_line


class CheckpointError(SignsError, ValueError):
    """A checkpoint file exists but cannot be used; the message names the file and what to do."""


class CheckpointSaveError(SignsError, OSError):
    """A checkpoint could not be written (disk full …); the message names the file and what to do."""


def read_checkpoint(
    path: str | os.PathLike[str],
    map_location: Any = "cpu",
    weights_only: bool | None = None,
    mmap: bool = False,
) -> dict[str, Any]:
    """``torch.load`` of a local Lightning checkpoint, or an error that says in one line what is wrong with it.

    Raises:
        FileNotFoundError: ``path`` does not exist or is a folder.
        CheckpointError: empty, truncated, not a PyTorch file, or not a Lightning checkpoint.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        state = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise FileNotFoundError(f"checkpoint {file} {state}: pass the path of a .ckpt file written by `signs fit`")
    try:
        checkpoint = torch.load(file, map_location=map_location, weights_only=weights_only, mmap=mmap)
    except Exception as error:
        raise CheckpointError(f"checkpoint {file} {_what_is_wrong(file, error)}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"checkpoint {file} is a PyTorch file but not a Lightning checkpoint (no 'state_dict' entry): "
            "pass a .ckpt file written by `signs fit`"
        )
    return checkpoint


def _what_is_wrong(file: Path, error: Exception) -> str:
    size = file.stat().st_size
    if size == 0:
        return "is empty (0 bytes): the save that wrote it was interrupted; resume from another checkpoint"
    with file.open("rb") as handle:
        head = handle.read(8)
    # torch.save writes a zip archive (header "PK"), whose index is at the very end: a cut-off file has none.
    if head.startswith(b"PK") and not zipfile.is_zipfile(file):
        return (
            f"is truncated ({size} bytes, its zip archive ends early): the save that wrote it was interrupted; "
            "resume from another checkpoint"
        )
    if not head.startswith((b"PK", b"\x80")):  # \x80: a pickle, i.e. torch's pre-1.6 format
        return f"is not a PyTorch checkpoint (it starts with {head!r}): pass a .ckpt file written by `signs fit`"
    return f"cannot be loaded ({type(error).__name__}: {first_line(error)})"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes local checkpoints to a temporary file beside the target, then renames it.

    A kill during a save leaves the previous ``last.ckpt`` intact instead of a truncated one (Lightning's own
    save goes through the system temporary folder and ``shutil.move``, which is a copy when that folder is on
    another file system); a save that fails for want of space (or any other ``OSError``) raises a one-line
    ``CheckpointSaveError`` naming the file, and leaves no temporary file. Local checkpoints are read through
    ``read_checkpoint``, so a bad file passed to ``--ckpt_path`` gets a one-line error naming it. Remote paths
    (``s3://`` …) use Lightning's implementation.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        try:
            atomic_torch_save(checkpoint, Path(path))
        except (OSError, RuntimeError) as error:
            reason = _why_the_write_failed(error)
            if reason is None:  # a RuntimeError from elsewhere than torch's file writer: not about the disk
                raise
            # atomic_torch_save removed its temporary file; the previous checkpoint at ``path`` is untouched.
            raise CheckpointSaveError(
                f"could not save checkpoint {path}: {reason} (the previous file there, if any, is unchanged): "
                "free space on that disk, or point --trainer.default_root_dir (or the ModelCheckpoint's dirpath) "
                "at another disk"
            ) from error

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        if not _is_local_file_protocol(path):
            return super().load_checkpoint(path, map_location, weights_only)
        return read_checkpoint(path, map_location=map_location, weights_only=weights_only)


def _why_the_write_failed(error: OSError | RuntimeError) -> str | None:
    """What went wrong writing a checkpoint, in a few words; None for a RuntimeError not from torch's file writer.

    A full disk reaches ``torch.save`` either as an ``OSError`` (ENOSPC) or, from its C++ zip writer, as a
    ``RuntimeError`` such as "[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file
    data/0: file write failed".
    """
    if isinstance(error, OSError):
        if error.errno in _DISK_FULL:
            return _DISK_FULL[error.errno]
        return error.strerror.lower() if error.strerror else first_line(error)
    message = first_line(error)
    if not any(mark in message for mark in ("inline_container", "PytorchStreamWriter", "file write failed")):
        return None
    gist = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", message).strip()
    return f"the write failed, most likely because the disk is full ({gist})"


_DISK_FULL = {errno.ENOSPC: "no space left on device"}
if hasattr(errno, "EDQUOT"):  # not on Windows
    _DISK_FULL[errno.EDQUOT] = "disk quota exceeded"


def with_atomic_checkpoint_io(plugins: Any) -> list[Any]:
    """The Trainer's ``plugins`` plus an ``AtomicCheckpointIO``, unless they already name a ``CheckpointIO``."""
    from lightning.fabric.plugins import CheckpointIO

    listed = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    if any(isinstance(plugin, CheckpointIO) for plugin in listed):
        return listed
    return [*listed, AtomicCheckpointIO()]
