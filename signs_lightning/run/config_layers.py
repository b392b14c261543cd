"""Layered configs: an experiment in ``configs/`` is a diff over base layers, composed by repeated ``--config``.

Each experiment names its layers on one header line, relative to its own folder, in the order they are given::

    # bases: trainer/cpu.yaml data/mnist16.yaml

and runs as ``signs fit --config configs/trainer/cpu.yaml --config configs/data/mnist16.yaml --config
configs/sign_mnist.yaml`` (later files override earlier ones key by key). ``config_files`` gives that list for
scripts; ``check_bases`` is the guard against forgetting a layer (one line naming the files to add), meant to run on
``signs``'s own ``--config`` arguments before they are parsed (``given_configs``). Standard library only, so that it
can move into the package unchanged.

>>> given_configs(["fit", "--config", "a.yaml", "-c", "b.yaml", "--config=c.yaml", "--trainer.devices", "2"])
['a.yaml', 'b.yaml', 'c.yaml']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

BASES_LINE = re.compile(r"^# bases:(.*)$", re.MULTILINE)


def layer_names(config: str | Path) -> list[str]:
    """The names on ``config``'s ``# bases:`` line (paths relative to its folder); none for a file without it."""
    try:
        match = BASES_LINE.search(Path(config).read_text())
    except (OSError, ValueError):  # not a file: e.g. a YAML string given to --config
        return []
    return match.group(1).split() if match else []


def bases(config: str | Path) -> list[Path]:
    """The layers ``config``'s ``# bases:`` line names, as paths next to it."""
    return [Path(config).parent / name for name in layer_names(config)]


def config_files(config: str | Path) -> list[Path]:
    """Every file to give ``--config`` for ``config``, in order: its layers, then itself."""
    return [*bases(config), Path(config)]


def given_configs(args: Sequence[str]) -> list[str]:
    """The ``--config`` / ``-c`` values of a ``signs`` command line, in order."""
    files = []
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            files.append(args[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.partition("=")[2])
    return files


def check_bases(configs: Sequence[str | Path]) -> None:
    """Raises ``ValueError`` (one line) when a layered config comes without each of its layers before it.

    A layer counts as given when a file given earlier has its path's ending (``trainer/cpu.yaml``), wherever it
    lies. A file without a ``# bases:`` line (a full config, a run's saved ``config.yaml``) needs nothing.
    """
    given: list[str] = []
    for config in map(str, configs):
        names = layer_names(config)
        missing = [name for name in names if not any(path.endswith("/" + name) for path in given)]
        if missing:
            command = " ".join(f"--config {path}" for path in config_files(config))
            raise ValueError(
                f"{config} is a layer over {', '.join(names)} (its '# bases:' line) and comes without "
                f"{', '.join(missing)}: give them first, in that order: {command}"
            )
        given.append(Path(config).resolve().as_posix())
