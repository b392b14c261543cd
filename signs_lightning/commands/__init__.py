"""The ``signs`` subcommands beside LightningCLI's, each with its own parser: ``signs demo`` (``demo.py``), and what a
user does with a trained generator, ``signs sample``, ``signs edit`` and ``signs export`` (one module each here;
docs/using.md)."""

from __future__ import annotations

import importlib

# name -> "module:function" taking the arguments after the name. Imported on use, so that ``signs fit`` pays nothing
# for these commands, and so that the modules may build on ``signs_lightning.run.cli`` themselves.
COMMANDS = {
    "demo": "signs_lightning.commands.demo:demo_main",
    "sample": "signs_lightning.commands.sample:main",
    "edit": "signs_lightning.commands.edit:main",
    "export": "signs_lightning.commands.export:main",
}


def run_command(name: str, argv: list[str]) -> None:
    """Run ``signs <name> <argv>``."""
    module, _, function = COMMANDS[name].partition(":")
    getattr(importlib.import_module(module), function)(argv)
