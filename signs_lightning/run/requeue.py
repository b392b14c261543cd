"""SLURM requeue at a batch boundary.

SIGUSR1 (the sbatch templates' ``--signal=SIGUSR1@90`` before the time limit, a pre-emption notice,
``scancel --signal=USR1``) only raises a flag. At the end of each training batch every rank agrees on it (one small
collective); once it is up, the checkpoint callbacks write ``last.ckpt`` there, global rank 0 runs
``scontrol requeue`` and the fit stops. The rerun (``--ckpt_path last``) resumes from that batch.

Lightning's own SLURM auto-requeue saves inside its SIGUSR1 handler instead, on every rank and wherever the step is,
barrier included: a signal that lands in a backward's all-reduce deadlocks the job or saves a half-updated state
(Lightning issue #21406). ``without_lightning_requeue`` turns it off for the CLI's trainers, and ``RequeueOnSignal``
installs its handler before Lightning would install its own (Lightning installs one only where none is).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from types import FrameType
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn

from signs_lightning.run.callbacks import ModelCheckpoint

REQUEUE_SIGNAL = signal.SIGUSR1


def without_lightning_requeue(plugins: list[Any], strategy: Any = None) -> list[Any]:
    """The Trainer's ``plugins``, plus ``SLURMEnvironment(auto_requeue=False)`` under Slurm when neither they nor
    the ``strategy`` object name a cluster environment (Lightning would pick a ``SLURMEnvironment`` that
    auto-requeues)."""
    given = any(isinstance(plugin, ClusterEnvironment) for plugin in plugins)
    if given or getattr(strategy, "cluster_environment", None) is not None or not SLURMEnvironment.detect():
        return plugins
    return [*plugins, SLURMEnvironment(auto_requeue=False)]


def slurm_job_id() -> str:
    """The id ``scontrol requeue`` takes: ``<array job id>_<task id>`` in an array job, else ``SLURM_JOB_ID``."""
    array_job_id = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job_id is not None:
        return f"{array_job_id}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ["SLURM_JOB_ID"]


def requeue_job(job_id: str) -> bool:
    """``scontrol requeue <job_id>``; whether Slurm took it (logged either way)."""
    rank_zero_info(f"requeuing SLURM job {job_id}...")
    try:
        result = subprocess.call(["scontrol", "requeue", job_id])
    except OSError as error:  # scontrol missing or not executable
        rank_zero_warn(f"Requeuing SLURM job {job_id} failed: {error}")
        return False
    if result != 0:
        rank_zero_warn(f"Requeuing SLURM job {job_id} failed with error code {result}")
        return False
    rank_zero_info(f"Requeued SLURM job: {job_id}")
    return True


class RequeueOnSignal(L.Callback):
    """Under Slurm, in a fit: on SIGUSR1, save ``last.ckpt`` at the end of the training batch, requeue the job from
    global rank 0 and stop the fit. Not under Slurm, in another thread than the main one (where no signal handler
    can be installed), or with no ``signs_lightning.run.callbacks.ModelCheckpoint`` to save: does nothing.

    The ``signs`` CLI adds it to every Trainer it builds.
    """

    def __init__(self) -> None:
        self._signalled = False
        self._installed = False
        self._previous_handler: Any = None
        self._limit_val_batches: int | float | None = None

    def _raise_flag(self, signum: int, frame: FrameType | None) -> None:
        # Nothing else: the signal may land anywhere, in a collective included.
        self._signalled = True

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Before Trainer._run registers Lightning's signal handlers, and before the module's own (maybe slow) setup:
        # an earlier SIGUSR1 would end the process, SIGUSR1's default action.
        if stage != TrainerFn.FITTING or not SLURMEnvironment.detect():
            return
        if threading.current_thread() is not threading.main_thread():
            return
        if not any(isinstance(callback, ModelCheckpoint) for callback in trainer.checkpoint_callbacks):
            rank_zero_warn(
                f"{REQUEUE_SIGNAL.name} will not requeue this Slurm job: the fit has no "
                "signs_lightning.run.callbacks.ModelCheckpoint to save its state before the requeue"
            )
            return
        self._signalled = False
        self._previous_handler = signal.signal(REQUEUE_SIGNAL, self._raise_flag)
        self._installed = True

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._installed or not self._agreed(trainer):
            return
        rank_zero_info(f"{REQUEUE_SIGNAL.name}: saving at global step {trainer.global_step}, then requeuing the job")
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint):
                callback.save_before_requeue(trainer, pl_module, outputs, batch, batch_idx)
        if trainer.is_global_zero:
            requeue_job(slurm_job_id())
        trainer.should_stop = True
        # Lightning validates when a fit is told to stop: an FID there could outlast what is left before the kill.
        self._limit_val_batches = trainer.limit_val_batches
        trainer.limit_val_batches = 0

    def _agreed(self, trainer: L.Trainer) -> bool:
        """Whether any rank got the signal (every rank calls this at the same batch: a collective)."""
        if trainer.world_size == 1:
            return self._signalled
        return trainer.strategy.reduce_boolean_decision(self._signalled, all=False)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore(trainer)  # an interrupted fit skips teardown

    def _restore(self, trainer: L.Trainer) -> None:
        if self._installed:
            # None: the handler was not installed from Python; the default action is the closest to it.
            signal.signal(REQUEUE_SIGNAL, self._previous_handler or signal.SIG_DFL)
            self._installed = False
        if self._limit_val_batches is not None:
            trainer.limit_val_batches = self._limit_val_batches
            self._limit_val_batches = None
