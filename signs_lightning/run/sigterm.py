"""SIGTERM at a batch boundary, under DDP too.

Schedulers send SIGTERM before a kill (a pre-emption, ``scontrol requeue``, ``scancel``). Lightning's handler for it
(``_SignalConnector._sigterm_notifier_fn``) runs ``torch.distributed.broadcast`` inside the handler whenever the
process group is up: the signal lands anywhere, in a backward's all-reduce included, and that extra collective
mismatches the ones the ranks are running (a deadlock, or one collective's tensors read as another's). What the
handler's broadcast was for is done without it: Lightning's training loop broadcasts rank 0's flag at the start of
every batch and stops the fit there (``SIGTERMException``, on which ``run.callbacks.ModelCheckpoint`` saves
``last.ckpt``). ``SigtermFlagOnly`` swaps the handler, once Lightning has installed it, for one that only raises
that flag and, as Lightning's does, passes the signal on to the processes its launcher started.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import lightning as L


class SigtermFlagOnly(L.Callback):
    """During a fit, SIGTERM only sets ``trainer.received_sigterm`` (then calls the handler that was there before the
    fit, if it was a Python one); Lightning restores the pre-fit handler at the end of the fit.

    The ``signs`` CLI adds it to every Trainer it builds. Off the main thread (where no handler can be installed) it
    does nothing.
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning registered its handlers (Trainer._run) just before training starts; replace its SIGTERM one.
        if threading.current_thread() is not threading.main_thread():
            return
        connector = trainer._signal_connector
        before_fit = connector._original_handlers.get(signal.SIGTERM)

        def raise_flag(signum: int, frame: FrameType | None) -> None:
            if not connector.received_sigterm and trainer.strategy.launcher is not None:
                trainer.strategy.launcher.kill(signum)
            connector.received_sigterm = True
            if callable(before_fit):
                before_fit(signum, frame)

        signal.signal(signal.SIGTERM, raise_flag)
