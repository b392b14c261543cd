"""What a user does with a trained generator, as ``signs`` subcommands beside LightningCLI's: ``signs sample``,
``signs edit`` and ``signs export`` (one module each; docs/using.md)."""

from __future__ import annotations

import importlib

COMMANDS = ("sample", "edit", "export")


def run_command(name: str, argv: list[str]) -> None:
    """Run ``signs <name> <argv>``; imported on use, so ``signs fit`` pays nothing for these commands."""
    importlib.import_module(f"signs_lightning.commands.{name}").main(argv)
