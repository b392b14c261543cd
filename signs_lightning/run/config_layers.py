"""Layered configs: an experiment in ``configs/`` is a diff over base layers, which it names on one header line
(paths relative to its own folder, in the order they apply)::

    # bases: trainer/cpu.yaml data/mnist16.yaml

``signs fit --config configs/sign_mnist.yaml`` then loads ``configs/trainer/cpu.yaml``, ``configs/data/mnist16.yaml``
and ``configs/sign_mnist.yaml``, in that order: later files override earlier ones key by key. ``with_bases`` is the
one place that expands ``# bases:`` lines: ``signs`` applies it to its own command line before LightningCLI parses
it, and scripts get the same list of files from ``config_files``. Standard library only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

BASES_LINE = re.compile(r"^# bases:(.*)$", re.MULTILINE)
CONFIG_FLAGS = ("--config", "-c")


def layer_names(config: str | Path) -> list[str]:
    """The names on ``config``'s ``# bases:`` line (paths relative to its folder); none for a file without it."""
    try:
        match = BASES_LINE.search(Path(config).read_text())
    except (OSError, ValueError):  # not a file: e.g. a YAML string given to --config
        return []
    return match.group(1).split() if match else []


def bases(config: str | Path) -> list[Path]:
    """The layers ``config``'s ``# bases:`` line names, as paths next to it; a missing one is a one-line error."""
    found = []
    for name in layer_names(config):
        path = Path(os.path.normpath(Path(config).parent / name))
        if not path.is_file():
            text = Path(config).read_text()
            line = text.count("\n", 0, BASES_LINE.search(text).start()) + 1
            raise ValueError(
                f"{config}, line {line}: its '# bases:' line names {name}, but {path} is not a file: correct the "
                "name (relative to the config's folder) or restore the file"
            )
        found.append(path)
    return found


def _key(config: str | Path) -> str:
    """What makes two ``--config`` values the same file (a YAML string is its own key)."""
    try:
        return os.path.realpath(config) if Path(config).is_file() else str(config)
    except (OSError, ValueError):  # a YAML string too long or odd for a file name
        return str(config)


def _with_layers(config: str | Path, loaded: set[str]) -> list[str]:
    """``config``'s bases not in ``loaded`` (and theirs, depth first, each once), then ``config`` itself."""
    files = []
    for base in bases(config):
        if _key(base) not in loaded:
            loaded.add(_key(base))
            files += _with_layers(base, loaded)
    return [*files, str(config)]


def composed(configs: Sequence[str | Path]) -> list[str]:
    """The files ``--config`` loads for ``configs``, in order: before each config the bases its ``# bases:`` line
    names (and theirs, depth first), then itself. A base loaded earlier, given or named, is not loaded again; a
    config given twice is loaded twice (the later one overrides what came in between)."""
    files: list[str] = []
    loaded: set[str] = set()
    for config in configs:
        loaded.add(_key(config))
        files += _with_layers(config, loaded)
    return files


def config_files(config: str | Path) -> list[Path]:
    """Every file ``signs fit --config CONFIG`` loads, in order: its layers, recursively, then itself."""
    return [Path(path) for path in composed([config])]


def with_bases(args: Sequence[str]) -> list[str]:
    """``args`` with each ``--config`` file's bases given as ``--config`` right before it (``composed``); the rest
    of the command line, later overrides included, is left as it is."""
    expanded: list[str] = []
    loaded: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in CONFIG_FLAGS and i + 1 < len(args):
            flag, value, i = arg, args[i + 1], i + 2
        elif arg.startswith("--config="):
            flag, value, i = "--config", arg.partition("=")[2], i + 1
        else:
            expanded.append(arg)
            i += 1
            continue
        loaded.add(_key(value))
        expanded += [item for path in _with_layers(value, loaded) for item in (flag, path)]
    return expanded
