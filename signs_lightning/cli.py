"""The ``signs`` command: LightningCLI (fit / validate / test / predict) plus ``signs demo``."""

from __future__ import annotations

import sys

from lightning.pytorch.cli import LightningCLI


class SignsCLI(LightningCLI):
    """LightningCLI in subclass mode: configs name ``model.class_path`` and ``data.class_path``.

    ``signs validate`` / ``signs test`` end with a table of the metrics (FID per NFE, teacher FID at matched NFE,
    idempotence and reconstruction errors, class coverage).
    """

    def _print_table(self) -> None:
        from signs_lightning.evaluation import format_table

        if self.trainer.is_global_zero:
            metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
            print(format_table(metrics))

    def after_validate(self) -> None:
        self._print_table()

    def after_test(self) -> None:
        self._print_table()


def cli_main(args: list[str] | None = None, run: bool = True) -> SignsCLI:
    """Build the CLI (and run its subcommand when ``run``); ``args`` defaults to ``sys.argv[1:]``."""
    import lightning as L

    return SignsCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        # A requeued job (SLURM) reuses its log dir: let it overwrite its own config.yaml.
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def main(argv: list[str] | None = None) -> None:
    command = sys.argv[1:] if argv is None else argv
    if command and command[0] == "demo":
        from signs_lightning.demo import demo_main

        demo_main(command[1:])
        return
    # LightningCLI reads sys.argv itself; passing it again as args only triggers its "both given" warning.
    cli_main(argv)


if __name__ == "__main__":
    main()
