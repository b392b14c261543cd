"""``--ckpt_path last``: resume from the newest checkpoint a run left, ``last.ckpt`` or an HPC checkpoint.

Lightning resolves ``ckpt_path="last"`` to ``ModelCheckpoint``'s ``last*.ckpt`` only. Our SLURM requeue
(``signs_lightning/run/requeue.py``) writes ``last.ckpt``; Lightning's own auto-requeue, which it replaces, wrote
``hpc_ckpt_<n>.ckpt`` in ``default_root_dir`` (Lightning picks those up only when ``ckpt_path`` is None). A run folder
from before the switch, resumed, must continue from whichever is newer: the HPC checkpoint of the interrupted run,
or the ``last.ckpt`` of a run that resumed from it and saved again.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn

LAST = "last"
HPC_CHECKPOINTS = "hpc_ckpt_*.ckpt"


def resume_candidates(trainer: L.Trainer) -> list[Path]:
    """Every ``last*.ckpt`` of the trainer's ``ModelCheckpoint`` callbacks and every HPC checkpoint of the run."""
    found = {str(p) for p in Path(trainer.default_root_dir).glob(HPC_CHECKPOINTS)}
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint):
            # Lightning's own "last" lookup: the callback's folder as it resolves it (dirpath, else the logger's).
            found |= callback._find_last_checkpoints(trainer)
    # Absolute: one spelling per file, and messages that say where it is whatever the working folder.
    return sorted({Path(os.path.abspath(p)) for p in found if Path(p).is_file()})


def resolve_ckpt_path(ckpt_path: str | None, trainer: L.Trainer) -> str | None:
    """``"last"`` → the newest resume candidate (by modification time), or None (a fresh start) when there is none.

    Any other value is returned unchanged.
    """
    if ckpt_path != LAST:
        return ckpt_path
    candidates = resume_candidates(trainer)
    if not candidates:
        rank_zero_warn(
            f"--ckpt_path last: no last*.ckpt and no {HPC_CHECKPOINTS} in {trainer.default_root_dir} yet: "
            "starting from scratch"
        )
        return None
    # The newest file holds the latest state: an HPC save is newer than the periodic last.ckpt it interrupted,
    # and a resumed run's next last.ckpt is newer than the HPC checkpoint it resumed from.
    newest = max(candidates, key=lambda path: path.stat().st_mtime_ns)
    rank_zero_info(f"--ckpt_path last: resuming from {newest}")
    return str(newest)
