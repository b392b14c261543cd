"""Lightning callbacks the configs use."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments), made safe for runs that stop and resume.

    - ``last.ckpt`` is also written when a fit ends between save points. Lightning's own ``on_train_end`` writes
      it only if no ``last.ckpt`` was written before, so a fit that stops on ``trainer.max_time``,
      ``max_generator_steps`` or an early stop between two ``every_n_train_steps`` saves leaves a ``last.ckpt``
      that lags behind the model by up to that many steps; resuming from it would silently repeat them.
    - On SIGTERM (what schedulers send before a kill) the fit's state is saved to ``last.ckpt`` (a file, whatever
      ``save_last`` says) before Lightning stops the fit; ``sigterm_checkpoint`` is then its path. A ``last.ckpt``
      already written at that global step as a file (a SLURM requeue's, ``save_before_requeue``) is not written
      again: the SIGTERM that follows a requeue finds it.
    - A fit that does not resume refuses a folder that already holds checkpoints: Lightning would write
      ``last-v1.ckpt`` beside the earlier run's ``last.ckpt``, and "resume from last" could pick either run.
    - Without ``dirpath`` the checkpoints go to ``<trainer.default_root_dir>/checkpoints``, not Lightning's
      ``<logger>/version_<n>/checkpoints``: the version changes with every rerun, so a rerun (``--ckpt_path last``,
      a requeued job) would not find the checkpoints of the run it continues.
    - A run whose folder was moved or copied, resumed from a checkpoint in it, goes on writing its ``last.ckpt``.
      Lightning keeps the saved paths (``last_model_path``, top-k) only when the folder is the one saved in the
      checkpoint; in another it forgets them, finds ``last.ckpt`` taken by "another run" and writes ``last-v1.ckpt``,
      leaving ``last.ckpt`` (what ``--ckpt_path last`` and the docs' ``CKPT=…/last.ckpt`` read) at the old step.
      The saved paths are moved into the new folder instead (``_moved_run_state``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sigterm_checkpoint: str | None = None
        self._last_file_step: int | None = None  # the global step last.ckpt was last written at as a file
        # A dirpath given in the config does not follow trainer.default_root_dir: the refusal says which to change.
        self._dirpath_given = self.dirpath is not None
        self._resumed_in_own_folder = False  # set by on_load_checkpoint, read by load_state_dict right after it

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._default_dirpath(trainer)
        super().setup(trainer, pl_module, stage)

    def _find_last_checkpoints(self, trainer: L.Trainer) -> set[str]:
        self._default_dirpath(trainer)
        return super()._find_last_checkpoints(trainer)

    def _default_dirpath(self, trainer: L.Trainer) -> None:
        if self.dirpath is None:
            self.dirpath = os.path.join(os.path.realpath(trainer.default_root_dir), "checkpoints")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # trainer.ckpt_path is known once the checkpoint is restored: before on_fit_start for most strategies
        # (and before the module's on_fit_start, which may be slow), after it for FSDP and DeepSpeed.
        if not trainer.strategy.restore_checkpoint_after_setup:
            self._refuse_an_earlier_runs_folder(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.strategy.restore_checkpoint_after_setup:
            self._refuse_an_earlier_runs_folder(trainer)
        super().on_train_start(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        super().on_train_end(trainer, pl_module)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # Lightning calls this just before load_state_dict, which is not given the trainer.
        self._resumed_in_own_folder = _resumed_from_run_folder(trainer, self.dirpath)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(self._moved_run_state(state_dict))

    def _moved_run_state(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """``state_dict`` with its checkpoint paths moved from the saved folder into ``dirpath``, when the fit
        resumes from a checkpoint of its own folder (so the same run, moved or copied); else unchanged.

        A checkpoint of another folder is another run's (or a start from it): its paths stay, and Lightning keeps
        away from the files already in ``dirpath`` (``last-v1.ckpt`` rather than overwrite their ``last.ckpt``).
        """
        saved = state_dict.get("dirpath")
        if not self._resumed_in_own_folder or saved is None or self.dirpath is None or saved == self.dirpath:
            return state_dict
        here = str(self.dirpath)

        def moved(path: Any) -> Any:
            inside = isinstance(path, str) and bool(path) and os.path.dirname(path) == saved
            return os.path.join(here, os.path.basename(path)) if inside else path

        rebased = {
            key: moved(state_dict.get(key)) for key in ("best_model_path", "kth_best_model_path", "last_model_path")
        }
        best_k = {moved(path): score for path, score in state_dict.get("best_k_models", {}).items()}
        rank_zero_info(f"Resuming in {here} a run saved in {saved}: its checkpoints are written here, as before")
        return {**state_dict, **rebased, "best_k_models": best_k, "dirpath": here}

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            self._save_on_sigterm(trainer)
        super().on_exception(trainer, pl_module, exception)

    def _save_on_sigterm(self, trainer: L.Trainer) -> None:
        # Not a fit, or nothing trained yet: no state that a rerun could not redo.
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and not trainer.fast_dev_run
        if not fitting or trainer.global_step == 0:
            return
        self.sigterm_checkpoint = self._save_last_file(trainer, "SIGTERM")

    def save_before_requeue(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> str:
        """At the end of a training batch, before a SLURM requeue (``signs_lightning/run/requeue.py``): this batch's
        periodic saves, then the fit's state in ``last.ckpt`` as a file; returns its path."""
        # The periodic saves first: after the save below the callback would skip them (one save per global step).
        self.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        return self._save_last_file(trainer, "requeue")

    def _save_last_file(self, trainer: L.Trainer, reason: str) -> str:
        """The fit's state in ``last.ckpt`` as a real file (a "link" would point at an older periodic save); its path.

        Not written again when it already holds this global step: nothing has changed since.
        """
        path = self.last_model_path or self.format_checkpoint_name(
            self._monitor_candidates(trainer), self.CHECKPOINT_NAME_LAST
        )
        if self._last_file_step == trainer.global_step:
            rank_zero_info(f"{reason}: the fit's state at global step {trainer.global_step} is already in {path}")
            return path
        self.last_model_path = path  # before saving: it is part of the saved callback state
        self._save_checkpoint(trainer, path)
        self._last_file_step = trainer.global_step
        rank_zero_info(f"{reason}: saved the fit's state at global step {trainer.global_step} to {path}")
        return path

    def _refuse_an_earlier_runs_folder(self, trainer: L.Trainer) -> None:
        if trainer.ckpt_path is not None or self.dirpath is None or not (self.save_last or self.save_top_k != 0):
            return
        existing: list[str] = []
        if trainer.is_global_zero and self._fs.isdir(self.dirpath):
            pattern = os.path.join(str(self.dirpath), "*" + self.FILE_EXTENSION)
            existing = sorted(os.path.basename(p) for p in self._fs.glob(pattern))
        existing = trainer.strategy.broadcast(existing)
        if existing:
            shown = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
            setting = "the ModelCheckpoint's init_args.dirpath" if self._dirpath_given else "trainer.default_root_dir"
            raise FileExistsError(
                f"checkpoint folder {self.dirpath} already holds checkpoints of an earlier run ({shown}): resume "
                "that run with --ckpt_path last (or the path of one of them), or give this run another folder "
                f"({setting})"
            )


def _resumed_from_run_folder(trainer: L.Trainer, dirpath: str | None) -> bool:
    """Whether the fit resumes from a checkpoint in ``dirpath`` or in the run's folder (SLURM's ``hpc_ckpt_*``)."""
    if trainer.ckpt_path is None or dirpath is None:
        return False
    folder = os.path.realpath(os.path.dirname(str(trainer.ckpt_path)))
    return folder in (os.path.realpath(dirpath), os.path.realpath(trainer.default_root_dir))


class TrainingCurve(L.Callback):
    """Appends one JSON line per validation to ``<trainer.default_root_dir>/<filename>`` (rank 0): the generator
    step, the batch count, the seconds spent training so far and every logged metric whose name starts with
    ``prefix`` — the Fréchet distance against time and steps, so that recipes are compared by their curves rather
    than by where they stood at one budget.

    The seconds exclude validation (scoring costs the same for every recipe and is not training) and survive a
    resume (they are in the checkpoint), so a preempted run's curve continues where it stopped.
    """

    def __init__(self, filename: str = "curve.jsonl", prefix: str = "val/") -> None:
        self.filename = filename
        self.prefix = prefix
        self.train_seconds = 0.0
        self._since: float | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"train_seconds": self._seconds()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_seconds = float(state_dict["train_seconds"])

    def _seconds(self) -> float:
        return self.train_seconds + (time.perf_counter() - self._since if self._since is not None else 0.0)

    def _pause(self) -> None:
        self.train_seconds = self._seconds()
        self._since = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._since = time.perf_counter()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._since is not None:
            self._pause()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        if trainer.is_global_zero:
            row = {
                "generator_step": getattr(pl_module, "generator_steps", trainer.global_step),
                "global_step": trainer.global_step,
                "train_seconds": round(self.train_seconds, 3),
            }
            row.update({k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if k.startswith(self.prefix)})
            path = Path(trainer.default_root_dir) / self.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                out.write(json.dumps(row) + "\n")
        self._since = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()
