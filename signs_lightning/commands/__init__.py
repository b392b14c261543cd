"""The ``signs`` subcommands beside LightningCLI's, each with its own parser (dispatched by ``run/cli.py``): ``signs
demo`` (``demo.py``), and what a user does with a trained generator, ``signs sample``, ``signs edit`` and ``signs
export`` (one module each here; docs/using.md)."""
