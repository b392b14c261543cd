"""The ``signs`` command: LightningCLI (fit / validate / test / predict) plus ``signs demo``, ``sample``, ``edit`` and
``export`` (``COMMANDS``: the modules of ``signs_lightning/commands/``)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_only

from signs_lightning.core.checkpoint_io import read_checkpoint, with_atomic_checkpoint_io
from signs_lightning.core.errors import DEBUG_ENV, SignsError, debugging, one_line, underlying
from signs_lightning.data.errors import CorruptDatasetError
from signs_lightning.run.checkpoint_args import check_model_class, merge_model_args, recorded_teacher
from signs_lightning.run.config_layers import with_bases
from signs_lightning.run.process_group import close_process_group
from signs_lightning.run.requeue import RequeueOnSignal, without_lightning_requeue
from signs_lightning.run.sigterm import SigtermFlagOnly

# name -> "module:function" taking the arguments after the name. Imported on use, so that ``signs fit`` pays nothing
# for these commands, and so that the commands may build on this module (they sit above it).
COMMANDS = {
    "demo": "signs_lightning.commands.demo:demo_main",
    "sample": "signs_lightning.commands.sample:main",
    "edit": "signs_lightning.commands.edit:main",
    "export": "signs_lightning.commands.export:main",
}
# What ``signs --help`` says of each command, in one line (LightningCLI's own come from the Trainer's docstrings,
# cut off mid-sentence; ours have their own parsers, so the LightningCLI parser would not list them).
COMMAND_HELP = {
    "fit": "train the config's model (a SIGN generator, or a teacher); --ckpt_path resumes",
    "validate": "evaluate a checkpoint on the validation set and print the table of metrics",
    "test": "evaluate a checkpoint on the test set and print the table of metrics",
    "predict": "generate images with a checkpoint into <default_root_dir>/samples",
    "demo": "the main job on the embedded MNIST, end to end: teacher, SIGN distillation, samples and metrics",
    "sample": "N images from a checkpoint or an exported folder",
    "edit": "zero-shot editing of image files (denoise, inpaint, colorize, project) with a trained generator",
    "export": "a checkpoint's EMA generator as a self-contained diffusers folder, with a model card",
}
SIGTERM_EXIT = 128 + 15  # the status a shell reports for a process ended by SIGTERM
# ckpt_path values that name no file: the Trainer resolves them (and signs_lightning/run/resume.py "last").
SPECIAL_CKPT_PATHS = ("last", "best", "hpc")
FIT_CKPT_PATH_HELP = (
    "checkpoint file to resume the fit from, or 'last': the newest of the run's last*.ckpt "
    "(<trainer.default_root_dir>/checkpoints/) and hpc_ckpt_*.ckpt files, or a fresh start (with a warning) when "
    "there is none. The config's optimizer settings apply from there on (signs_lightning/run/resume.py)"
)
EVALUATE_CKPT_PATH_HELP = (
    "the checkpoint to evaluate (a file, or 'last' as for fit); the teacher it records is reloaded and "
    "fingerprint-checked. Required unless --allow_untrained true"
)
# Raised for bad input, with messages that say what to fix: reported in one line. Others keep their traceback.
ONE_LINE_ERRORS = (SignsError, OSError, ValueError, CorruptDatasetError, MisconfigurationException)


class SignsCLI(LightningCLI):
    """LightningCLI in subclass mode: configs name ``model.class_path`` and ``data.class_path``.

    ``signs validate`` / ``signs test`` end with a table of the metrics (FID per NFE, teacher FID at matched NFE,
    idempotence and reconstruction errors, class coverage). Beyond LightningCLI:

    - every Trainer writes checkpoints atomically (``AtomicCheckpointIO``, unless the config names a CheckpointIO);
    - under Slurm, SIGUSR1 saves ``last.ckpt`` at the end of a training batch and requeues the job
      (``signs_lightning/run/requeue.py``) instead of Lightning's auto-requeue, which saves inside its signal handler;
    - SIGTERM only raises Lightning's flag (``signs_lightning/run/sigterm.py``): Lightning's own handler runs a
      broadcast inside the handler under DDP;
    - a ``--config`` file brings the layers its ``# bases:`` line names (``signs_lightning/run/config_layers.py``),
      loaded right before it unless given earlier;
    - ``--ckpt_path`` is checked before anything is built (a bad file gets a one-line error), its module class
      must be the config's, and model arguments given on the command line or in the config win over those saved
      in the checkpoint, which only fill in the rest (logged); a teacher the config names that does not exist gives
      way to the one the checkpoint records, if that one exists and its fingerprint is recorded (checked on load);
    - ``validate`` / ``test`` / ``predict`` refuse to run without ``--ckpt_path`` unless ``--allow_untrained true``;
    - a fit stopped by SIGTERM exits with status 143 naming the checkpoint ``callbacks.ModelCheckpoint`` saved.
    - ``signs --help`` lists ``COMMANDS`` (dispatched by ``main``) beside fit/validate/test/predict.
    """

    _args: Any = None  # as parsed (bases added): parsed again without defaults to tell given model arguments
    _checked_ckpt_path: str | None = None  # the ckpt_path whose module class _parse_ckpt_path checked

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--allow_untrained",
            type=bool,
            default=False,
            help="validate/test/predict without --ckpt_path: evaluate the model as built, i.e. untrained",
        )

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        """LightningCLI's subcommands, and ``COMMANDS`` (dispatched by ``main``) listed beside them in the help."""
        super()._add_subcommands(parser, **kwargs)
        action = parser._subcommands_action
        for choice in action._choices_actions:
            choice.help = COMMAND_HELP.get(choice.dest, choice.help)
        for name in COMMANDS:
            action._choices_actions.append(action._ChoicesPseudoAction(name, (), COMMAND_HELP.get(name)))
        action.metavar = "{" + ",".join([*action.choices, *COMMANDS]) + "}"
        # Lightning's own text says "last" is the previous fit's last checkpoint; ours resolves it differently.
        for subcommand, subparser in self._subcommand_parsers.items():
            for argument in subparser._actions:
                if argument.dest == "ckpt_path":
                    argument.help = FIT_CKPT_PATH_HELP if subcommand == "fit" else EVALUATE_CKPT_PATH_HELP

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        if isinstance(args, (dict, Namespace)):
            self._args = args
            super().parse_arguments(parser, args)
            return
        # Each --config file's '# bases:' layers become --config files right before it.
        self._args = with_bases(sys.argv[1:] if args is None else args)
        if args is None:  # read from sys.argv: LightningCLI would warn that both are given
            self.config = parser.parse_args(self._args)
        else:
            super().parse_arguments(parser, self._args)

    def _parse_ckpt_path(self) -> None:
        """Replaces LightningCLI's, which builds the model from the checkpoint's saved hyperparameters alone."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not _names_a_file(ckpt_path):
            return
        checkpoint = read_checkpoint(ckpt_path, weights_only=True, mmap=True)
        hparams = checkpoint.get("hyper_parameters") or {}
        model = self.config[subcommand].model
        check_model_class(ckpt_path, hparams, model.class_path)
        self._checked_ckpt_path = ckpt_path
        if not hparams:
            return
        given = self._given_model_args(subcommand)
        teacher = recorded_teacher(ckpt_path, checkpoint, given)
        if teacher is not None:
            rank_zero_info(
                f"teacher {given['teacher']} (model.init_args.teacher) does not exist: using {teacher}, the teacher "
                f"checkpoint {ckpt_path} was trained with (its fingerprint "
                f"{checkpoint['signs_teacher']['fingerprint']} is checked when the checkpoint loads)"
            )
            given = {**given, "teacher": teacher}
        merged = merge_model_args(hparams, given, model.init_args.as_dict(), model.class_path)
        update = {subcommand: {"model": {"class_path": model.class_path, "init_args": merged.init_args}}}
        self.config = self.parser.parse_object(update, self.config)
        rank_zero_info(merged.summary(ckpt_path))

    def _given_model_args(self, subcommand: str) -> dict[str, Any]:
        """The model ``init_args`` given on the command line or in a config file, without defaults."""
        if isinstance(self._args, (dict, Namespace)):
            given = self.parser.parse_object(self._args, defaults=False)
        else:
            given = self.parser.parse_args(self._args, defaults=False)
        init_args = (given[subcommand].get("model") or Namespace()).get("init_args")
        return init_args.as_dict() if init_args is not None else {}

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        configured = self._get(self.config_init, "trainer", default={})
        plugins = with_atomic_checkpoint_io(kwargs.get("plugins", configured.get("plugins")))
        kwargs["plugins"] = without_lightning_requeue(plugins, kwargs.get("strategy", configured.get("strategy")))
        trainer = super().instantiate_trainer(**kwargs)
        # Every fit requeues on SIGUSR1 under Slurm without a callback in its config (a no-op elsewhere), and
        # handles SIGTERM without a collective inside the signal handler.
        trainer.callbacks += [RequeueOnSignal(), SigtermFlagOnly()]
        return trainer

    def _check_resolved_checkpoint(self) -> None:
        """The class check for a ckpt_path resolved only once the trainer exists (``--ckpt_path last``)."""
        ckpt_path = self.config_init[self.subcommand].get("ckpt_path")
        if _names_a_file(ckpt_path) and ckpt_path != self._checked_ckpt_path:
            hparams = read_checkpoint(ckpt_path, weights_only=True, mmap=True).get("hyper_parameters") or {}
            check_model_class(ckpt_path, hparams, f"{type(self.model).__module__}.{type(self.model).__qualname__}")

    def _refuse_untrained(self) -> None:
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") is None and not config.get("allow_untrained"):
            raise SignsError(
                f"without --ckpt_path, {self.subcommand} would evaluate the model as built, i.e. an untrained "
                f"{type(self.model).__name__}: pass --ckpt_path (a .ckpt file a fit wrote, or last), or "
                "--allow_untrained true to evaluate it anyway"
            )

    def _print_table(self) -> None:
        from signs_lightning.evaluation import format_table

        if self.trainer.is_global_zero:
            if self.config_init[self.subcommand].get("ckpt_path") is None:
                print(f"Metrics of the UNTRAINED {type(self.model).__name__} (no --ckpt_path):")
            metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
            print(format_table(metrics))

    def fit(self, model: L.LightningModule, **kwargs: Any) -> None:
        try:
            self.trainer.fit(model, **kwargs)
        except SIGTERMException:
            # Lightning ends a fit on SIGTERM with SystemExit(None), i.e. status 0: a scheduler would read success.
            callbacks = self.trainer.checkpoint_callbacks
            saved = [c.sigterm_checkpoint for c in callbacks if getattr(c, "sigterm_checkpoint", None)]
            where = f"saved {saved[0]}: resume with --ckpt_path {saved[0]}" if saved else "no checkpoint was saved"
            if self.trainer.is_global_zero:
                print(f"signs fit: stopped by SIGTERM; {where}", file=sys.stderr)
            sys.exit(SIGTERM_EXIT)

    def before_fit(self) -> None:
        self._check_resolved_checkpoint()

    def before_validate(self) -> None:
        self._check_resolved_checkpoint()
        self._refuse_untrained()

    def before_test(self) -> None:
        self._check_resolved_checkpoint()
        self._refuse_untrained()

    def after_instantiate_classes(self) -> None:
        # `--ckpt_path last` also considers the HPC checkpoints of older runs (signs_lightning/run/resume.py).
        if self.subcommand is not None:
            from signs_lightning.run.resume import resolve_ckpt_path

            config = self.config_init[self.subcommand]
            config["ckpt_path"] = resolve_ckpt_path(config.get("ckpt_path"), self.trainer)

    def before_predict(self) -> None:
        self._check_resolved_checkpoint()
        self._refuse_untrained()
        # Predictions that nobody writes would be computed and dropped: write them unless a writer is configured.
        from lightning.pytorch.callbacks import BasePredictionWriter

        from signs_lightning.inference.prediction import SampleWriter, refuse_earlier_samples

        callbacks = self.trainer.callbacks
        if not any(isinstance(c, BasePredictionWriter) for c in callbacks):
            callbacks.append(SampleWriter(f"{self.trainer.default_root_dir}/samples"))
            setting = "--trainer.default_root_dir (predict writes into its samples/)"
        else:
            setting = "output_dir for the SampleWriter callback"
        # As `signs sample`: the first process checks, before any process starts writing.
        if rank_zero_only.rank == 0:
            for writer in (c for c in callbacks if isinstance(c, SampleWriter)):
                refuse_earlier_samples(writer.output_dir, setting)

    def after_validate(self) -> None:
        self._print_table()

    def after_test(self) -> None:
        self._print_table()


def cli_main(args: list[str] | None = None, run: bool = True) -> SignsCLI:
    """Build the CLI (and run its subcommand when ``run``); ``args`` defaults to ``sys.argv[1:]``."""
    return SignsCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={
            "description": "SIGN: distil a diffusion teacher into a one-step generator, evaluate and use it."
        },
        # A requeued job (SLURM) reuses its log dir: let it overwrite its own config.yaml.
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def main(argv: list[str] | None = None) -> None:
    """``signs``: errors from bad input end in one line (status 1); ``SIGNS_DEBUG=1`` shows the traceback."""
    command = sys.argv[1:] if argv is None else argv
    if command and not command[0].startswith("-") and command[0] not in COMMAND_HELP:
        # argparse's own message lists only LightningCLI's four subcommands.
        names = ", ".join(COMMAND_HELP)
        print(f"signs: error: unknown command {command[0]!r}: choose from {names} (signs --help)", file=sys.stderr)
        sys.exit(2)
    try:
        if command and command[0] in COMMANDS:  # demo, sample, edit, export: their own parsers
            module, _, function = COMMANDS[command[0]].partition(":")
            getattr(importlib.import_module(module), function)(command[1:])
            return
        # LightningCLI reads sys.argv itself; passing it again as args only triggers its "both given" warning.
        cli_main(argv)
    except Exception as error:
        cause = underlying(error)
        # An error unwrapped from jsonargparse was raised while building the model or data: bad input, whatever
        # its type. Other errors of unexpected types may be bugs and keep their traceback.
        if debugging() or (cause is error and not isinstance(error, ONE_LINE_ERRORS)):
            raise
        name = f"signs {command[0]}" if command and not command[0].startswith("-") else "signs"
        print(f"{name}: error: {one_line(cause)} ({DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)
    close_process_group()


def _names_a_file(ckpt_path: str | None) -> bool:
    """Whether ``ckpt_path`` is a local file path (not None, a special value, a registry name or a remote URL)."""
    if not ckpt_path or ckpt_path in SPECIAL_CKPT_PATHS or str(ckpt_path).startswith("registry"):
        return False
    return _is_local_file_protocol(ckpt_path)


if __name__ == "__main__":
    main()
