"""Where cached artefacts (teacher pairs, reference statistics, classifiers) live, written atomically."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import filelock
import torch

CACHE_ENV = "SIGNS_CACHE"

log = logging.getLogger(__name__)

# flock's answers where the file system has no locks: ENOSYS (Lustre mounted without flock, some FUSE), EOPNOTSUPP /
# ENOTSUP, ENOLCK (NFS without a lock daemon). filelock 3.x turns ENOSYS into NotImplementedError.
_NO_LOCK_ERRNOS = frozenset(
    code
    for code in (errno.ENOSYS, errno.ENOLCK, getattr(errno, "EOPNOTSUPP", None), getattr(errno, "ENOTSUP", None))
    if code is not None
)


def default_cache_dir() -> Path:
    """``$SIGNS_CACHE`` if set, else ``~/.cache/signs_lightning``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "signs_lightning").expanduser()


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def slug(text: str, max_len: int = 80) -> str:
    """A file-name-safe form of ``text``; long ones keep a hash so that distinct keys stay distinct.

    >>> slug("google/ddpm-cifar10-32 ddim")
    'google_ddpm-cifar10-32_ddim'
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    if len(safe) <= max_len:
        return safe
    return f"{safe[: max_len - 9]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: readers see the old file or the new one."""
    _atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_text(text: str, path: Path) -> None:
    """Writes UTF-8 ``text`` to ``path`` the same way as ``atomic_torch_save``."""
    _atomic_write(path, lambda handle: handle.write(text.encode()))


def _atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; caches are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock for making ``path``: two jobs sharing a cache do not both compute one file.

    ``filelock.FileLock`` on ``path`` + ".lock" (``flock`` on Unix, ``LockFileEx`` on Windows). Where the file system
    has no locks (``ENOSYS``/``EOPNOTSUPP``/``ENOLCK``: Lustre without ``flock``, NFS without lockd) it falls back,
    with one warning, to ``filelock.SoftFileLock`` on ``path`` + ".softlock", which holds the lock by creating that
    file exclusively (``O_EXCL``) and deleting it on release: a job killed while holding it leaves it behind, and it
    must then be deleted by hand. Blocks until the lock is free; reentrant neither way.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock: filelock.BaseFileLock = filelock.FileLock(str(path.with_name(path.name + ".lock")))
    try:
        lock.acquire()
    except (NotImplementedError, OSError) as error:
        if isinstance(error, OSError) and error.errno not in _NO_LOCK_ERRNOS:
            raise
        lock = filelock.SoftFileLock(str(path.with_name(path.name + ".softlock")))
        log.warning(
            "File locks are not supported here (%s); using a soft lock, %s (delete it if a killed job left it behind)",
            error,
            lock.lock_file,
        )
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
