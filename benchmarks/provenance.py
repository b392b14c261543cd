"""Where a results file came from: every JSON a benchmark, a study or the GPU check writes carries
``"provenance": {"git_commit": ..., "config_sha256": ...}`` (``write_results``, or ``stamp`` for an entry of a file
that gathers several runs).

The config digest is the SHA-256 of the composed config text: the layer files a fit is given, in order, then its
``KEY=VALUE`` overrides one a line (``composed_config``); for a run from trained models, what their sources record
(``source_config``: a checkpoint's hyperparameters, a teacher folder's training settings).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from signs_lightning.core.checkpoint_io import read_checkpoint
from signs_lightning.run.runs import TEACHER_STAMP

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def git_commit(repo: Path = REPO) -> str | None:
    """HEAD's commit, with ``-dirty`` when tracked files differ from it; None outside a git checkout. Read once per
    process (a run records the code it started with)."""

    def git(*args: str) -> str:
        # GIT_OPTIONAL_LOCKS=0: only read, never refresh the index.
        env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
        return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def composed_config(configs: Sequence[str | Path], overrides: Sequence[str] = ()) -> str:
    """A fit's composed config text: each layer file's text in order, then the overrides, one a line."""
    return "".join(Path(config).read_text() for config in configs) + "".join(f"{item}\n" for item in overrides)


def source_config(source: str | Path) -> str:
    """The config a trained model records: a checkpoint's hyperparameters (JSON), or a teacher folder's training
    settings (``signs demo``'s stamp; else the pipeline's own ``model_index.json`` and ``unet/config.json``)."""
    path = Path(source)
    if path.is_dir():
        files = [path / TEACHER_STAMP] if (path / TEACHER_STAMP).is_file() else []
        files = files or [path / "model_index.json", path / "unet" / "config.json"]
        return "".join(file.read_text() for file in files if file.is_file())
    hparams = read_checkpoint(path, weights_only=True, mmap=True).get("hyper_parameters") or {}
    return json.dumps(hparams, sort_keys=True, default=str)


def config_digest(text: str) -> str:
    """SHA-256 (hex) of a composed config text."""
    return hashlib.sha256(text.encode()).hexdigest()


def stamp(data: Mapping[str, Any], config_text: str) -> dict[str, Any]:
    """``data`` with its ``provenance``: the code's commit and the digest of ``config_text``."""
    return {**data, "provenance": {"git_commit": git_commit(), "config_sha256": config_digest(config_text)}}


def write_results(path: Path, data: Mapping[str, Any], config_text: str) -> dict[str, Any]:
    """``stamp(data, config_text)`` written to ``path`` as indented, key-sorted JSON; returns what was written."""
    stamped = stamp(data, config_text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamped, indent=2, sort_keys=True) + "\n")
    return stamped
