"""core.cache: the inter-process lock around cache writes, with its fallback where the file system has no locks."""

from __future__ import annotations

import errno
import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path

import filelock
import pytest

from signs_lightning.core import cache
from signs_lightning.core.cache import file_lock

HOLD_SECONDS = 0.5


def hold_lock(target: Path, log: Path, name: str, entered: Callable[[], None] | None = None) -> None:
    """Takes the lock, notes ``name in``, holds it a while, notes ``name out``."""
    with file_lock(target):
        with open(log, "a") as handle:
            handle.write(f"{name} in\n")
        if entered is not None:
            entered()
        time.sleep(HOLD_SECONDS)
        with open(log, "a") as handle:
            handle.write(f"{name} out\n")


def _hold_in_process(target: str, log: str, name: str, entered: multiprocessing.synchronize.Event | None) -> None:
    hold_lock(Path(target), Path(log), name, entered.set if entered is not None else None)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method")
def test_file_lock_serializes_two_processes(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    target, log = tmp_path / "cache" / "pairs.pt", tmp_path / "log.txt"
    entered = context.Event()
    first = context.Process(target=_hold_in_process, args=(str(target), str(log), "a", entered))
    first.start()
    assert entered.wait(30)
    # "a" holds the lock for HOLD_SECONDS more: without the lock "b in" would come before "a out".
    second = context.Process(target=_hold_in_process, args=(str(target), str(log), "b", None))
    second.start()
    first.join(30)
    second.join(30)
    assert first.exitcode == 0 and second.exitcode == 0
    assert log.read_text().splitlines() == ["a in", "a out", "b in", "b out"]
    assert (tmp_path / "cache" / "pairs.pt.lock").exists() and not (tmp_path / "cache" / "pairs.pt.softlock").exists()


def test_file_lock_falls_back_to_a_soft_lock_without_flock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """FileLock's acquire failing with ENOSYS (Lustre without flock) gives the O_EXCL soft lock, which still works."""

    class NoFlock(filelock.FileLock):
        def acquire(self, *args: object, **kwargs: object) -> filelock.AcquireReturnProxy:
            raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(cache.filelock, "FileLock", NoFlock)
    target, log = tmp_path / "cache" / "pairs.pt", tmp_path / "log.txt"
    soft = tmp_path / "cache" / "pairs.pt.softlock"
    entered = threading.Event()
    with caplog.at_level("WARNING", logger=cache.__name__):
        first = threading.Thread(target=hold_lock, args=(target, log, "a", entered.set))
        first.start()
        assert entered.wait(30)
        assert soft.exists()  # the soft lock is the file's existence
        second = threading.Thread(target=hold_lock, args=(target, log, "b"))
        second.start()
        first.join(30)
        second.join(30)
    assert log.read_text().splitlines() == ["a in", "a out", "b in", "b out"]
    assert not soft.exists()  # released
    fallbacks = [record for record in caplog.records if "soft lock" in record.getMessage()]
    assert len(fallbacks) == 2 and str(soft) in fallbacks[0].getMessage()  # one line per lock taken


def test_file_lock_passes_other_errors_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(filelock.FileLock):
        def acquire(self, *args: object, **kwargs: object) -> filelock.AcquireReturnProxy:
            raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(cache.filelock, "FileLock", Broken)
    with pytest.raises(PermissionError), file_lock(tmp_path / "pairs.pt"):
        pass
