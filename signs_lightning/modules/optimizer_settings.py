"""A resumed fit trains with the optimizer settings of its config, not with those saved in the checkpoint.

Lightning restores each optimizer's state dict on resume, param groups included, so a learning rate (weight decay,
betas, ...) changed for the resumed fit would be replaced by the checkpoint's value while the run's config.yaml
records the new one. ``ConfiguredOptimizerSettings``, which every module of the package attaches
(``ScoredModule.configure_callbacks``), records what the config gave each param group before the restore and puts
the changed values back after it, in one log line.

An LR scheduler holds its base learning rates in its own state. A schedule proportional to its base lr (LambdaLR,
LinearLR, StepLR, ...: lr_t = base_lr · g(t)) moves to the new base lr: its base lrs, ``initial_lr`` and the current
lr are scaled by new / old, so it goes on as if it had started from the new lr. Another schedule (OneCycleLR,
CyclicLR, ...) cannot be moved, and neither can a schedule whose own settings changed (its state keeps the old
ones): such changes are refused, in one line that says what to do.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch.optim import Optimizer, lr_scheduler

from signs_lightning.core.errors import SignsError

# Not settings: the parameters themselves, and the lr a scheduler started from (compared as its base lr).
NOT_SETTINGS = frozenset({"params", "param_names", "initial_lr"})
# What torch's cyclic schedulers drive besides the lr (cycle_momentum): read off their progress, not the config.
SCHEDULED_MOMENTUM = frozenset({"momentum", "betas"})
# Schedules with lr_t = base_lr · g(t) (a chain of factors): scaling the base lr scales every later lr alike.
PROPORTIONAL_SCHEDULES = (
    lr_scheduler.LambdaLR,
    lr_scheduler.MultiplicativeLR,
    lr_scheduler.StepLR,
    lr_scheduler.MultiStepLR,
    lr_scheduler.ConstantLR,
    lr_scheduler.LinearLR,
    lr_scheduler.ExponentialLR,
    lr_scheduler.PolynomialLR,
)
# Schedules whose state dict is their settings plus the progress below; others' mix the two (SequentialLR holds its
# children's progress, ReduceLROnPlateau its best metric), so their settings are not compared.
FLAT_SCHEDULES = (*PROPORTIONAL_SCHEDULES, lr_scheduler.CosineAnnealingLR)
SCHEDULE_PROGRESS = frozenset(
    {"base_lrs", "last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial", "verbose"}
)
NEW_RUN = "start a new run from its weights (SIGNModule: model.init_args.init_from)"


class ResumeSettingsError(SignsError):
    """A setting changed on resume that cannot be applied to the restored optimizer or LR-scheduler state."""


@dataclass
class Settings:
    """One optimizer's settings: each param group's hyperparameters, and its LR scheduler's base lrs and settings."""

    groups: list[dict[str, Any]]
    initial_lrs: list[Any]  # each group's lr when its schedule started (None: no scheduler ever ran on it)
    base_lrs: list[Any] | None = None  # None: no scheduler, or one without base lrs (ReduceLROnPlateau)
    schedule: dict[str, Any] | None = None  # a FLAT_SCHEDULES scheduler's settings: its state dict minus progress


@dataclass
class Change:
    """A setting whose configured value differs from the checkpoint's."""

    optimizer: str
    group: int
    key: str
    saved: Any
    configured: Any
    base_lr: bool = False  # the base lr of the optimizer's scheduler (its lr follows the schedule)

    def describe(self, groups: int, applied: bool = False) -> str:
        """``<optimizer> <key>=<configured> (checkpoint: <saved>)``, and how the schedule moved once ``applied``."""
        where = self.optimizer if groups == 1 else f"{self.optimizer} (param group {self.group})"
        scaled = f", its schedule scaled by {self.configured / self.saved:g}" if applied and self.base_lr else ""
        return f"{where} {self.key}={self.configured!r} (checkpoint: {self.saved!r}{scaled})"


def settings(optimizer: Optimizer, scheduler: Any | None) -> Settings:
    """A copy of ``optimizer``'s settings and of its ``scheduler``'s (None: it has none)."""
    groups = [{k: copy.deepcopy(v) for k, v in g.items() if k not in NOT_SETTINGS} for g in optimizer.param_groups]
    initial_lrs = [group.get("initial_lr") for group in optimizer.param_groups]
    if scheduler is None:
        return Settings(groups, initial_lrs)
    base_lrs = list(scheduler.base_lrs) if hasattr(scheduler, "base_lrs") else None
    schedule = None
    if isinstance(scheduler, FLAT_SCHEDULES):
        schedule = {k: copy.deepcopy(v) for k, v in scheduler.state_dict().items() if k not in SCHEDULE_PROGRESS}
    return Settings(groups, initial_lrs, base_lrs, schedule)


def scheduler_of(trainer: L.Trainer, optimizer: Optimizer) -> Any | None:
    """The LR scheduler configured for ``optimizer``, or None."""
    for config in trainer.lr_scheduler_configs:
        if getattr(config.scheduler, "optimizer", None) is optimizer:
            return config.scheduler
    return None


def proportional(scheduler: Any) -> bool:
    """Whether every lr of ``scheduler``'s schedule is its base lr times a factor of the step alone."""
    if isinstance(scheduler, lr_scheduler.CosineAnnealingLR):
        return scheduler.eta_min == 0
    return isinstance(scheduler, PROPORTIONAL_SCHEDULES)


def changes(name: str, configured: Settings, restored: Settings, scheduler: Any | None) -> list[Change]:
    """The configured settings that differ from the restored (checkpoint's) ones."""
    skipped: set[str] = set()
    if scheduler is not None:
        # The lr follows the schedule, whose base lr is compared instead; a cyclic schedule drives the momentum too.
        skipped = {"lr"} if proportional(scheduler) else {"lr", *SCHEDULED_MOMENTUM}
    found = []
    for index, (want, have) in enumerate(zip(configured.groups, restored.groups)):
        for key in [*want, *(k for k in have if k not in want)]:
            if key not in skipped and not same(want.get(key), have.get(key)):
                found.append(Change(name, index, key, have.get(key), want.get(key)))
    if configured.base_lrs is not None and restored.base_lrs is not None:
        for index, (want, have) in enumerate(zip(configured.base_lrs, restored.base_lrs)):
            if not same(want, have):
                found.append(Change(name, index, "lr", have, want, base_lr=True))
    return found


def check_applicable(
    name: str, found: list[Change], configured: Settings, restored: Settings, scheduler: Any | None
) -> None:
    """Raise ``ResumeSettingsError`` when the restored scheduler state cannot take the configured settings."""
    if scheduler is None:
        return
    kind = type(scheduler).__name__
    if configured.base_lrs is not None and any(lr is None for lr in restored.initial_lrs):
        # Lightning restores no scheduler state then, and the fresh schedule would start from the restored lr.
        raise ResumeSettingsError(
            f"optimizer {name} has a {kind} LR scheduler in the config but ran without one in the checkpoint: a "
            f"schedule cannot start in the middle of a run; resume without it, or {NEW_RUN}"
        )
    if not same(configured.schedule, restored.schedule):
        raise ResumeSettingsError(
            f"the {kind} LR scheduler of optimizer {name} has other settings in the config than in the checkpoint "
            f"({_schedule_differences(configured, restored)}), and a resumed schedule keeps the checkpoint's: resume "
            f"with the checkpoint's scheduler settings, or {NEW_RUN}"
        )
    if not found:
        return
    changed = "; ".join(change.describe(len(configured.groups)) for change in found)
    if not proportional(scheduler):
        raise ResumeSettingsError(
            f"optimizer settings changed on resume ({changed}), but the {kind} schedule of optimizer {name} is not "
            f"proportional to its base lr and cannot be moved to them: resume with the checkpoint's settings, or "
            f"{NEW_RUN}"
        )
    if any(change.base_lr and not change.saved for change in found):
        raise ResumeSettingsError(
            f"optimizer settings changed on resume ({changed}), but the {kind} schedule of optimizer {name} started "
            f"from lr 0, which no factor scales to another lr: resume with lr 0, or {NEW_RUN}"
        )


def apply(found: list[Change], optimizer: Optimizer, scheduler: Any | None) -> None:
    """Put the configured values of ``found`` into ``optimizer`` (and move ``scheduler`` to a changed base lr)."""
    for change in found:
        group = optimizer.param_groups[change.group]
        if not change.base_lr:
            group[change.key] = copy.deepcopy(change.configured)
            continue
        # lr_t = base_lr · g(t): the current lr and every later one scale with the base lr.
        group["lr"] = group["lr"] * (change.configured / change.saved)
        group["initial_lr"] = change.configured
        scheduler.base_lrs[change.group] = change.configured
        if getattr(scheduler, "_last_lr", None) is not None:
            scheduler._last_lr[change.group] = group["lr"]


def same(a: Any, b: Any) -> bool:
    """Whether two setting values are equal: tensors by value, tuples and lists alike (a config gives lists)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def _schedule_differences(configured: Settings, restored: Settings) -> str:
    want, have = configured.schedule or {}, restored.schedule or {}
    keys = [k for k in {**want, **have} if not same(want.get(k), have.get(k))]
    return ", ".join(f"{k}={want.get(k)!r} (checkpoint: {have.get(k)!r})" for k in keys)


def optimizer_names(module: L.LightningModule, count: int) -> list[str]:
    """The module's names of its optimizers (``GeneratorModule.optimizer_names``), else their positions."""
    names = list(getattr(module, "optimizer_names", None) or [])
    return names if len(names) == count else [str(index) for index in range(count)]


class ConfiguredOptimizerSettings(L.Callback):
    """On resume, the optimizers' settings are the config's: recorded once the optimizers exist
    (``on_fit_start``), put back after Lightning restored the checkpoint's (``on_train_start``)."""

    def __init__(self) -> None:
        self._configured: list[Settings] | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._configured = [settings(opt, scheduler_of(trainer, opt)) for opt in trainer.optimizers]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path is None or self._configured is None:
            return  # a fresh fit: nothing was restored
        names = optimizer_names(pl_module, len(trainer.optimizers))
        applied = []
        for name, optimizer, configured in zip(names, trainer.optimizers, self._configured):
            scheduler = scheduler_of(trainer, optimizer)
            restored = settings(optimizer, scheduler)
            found = changes(name, configured, restored, scheduler)
            check_applicable(name, found, configured, restored, scheduler)
            apply(found, optimizer, scheduler)
            applied += [change.describe(len(configured.groups), applied=True) for change in found]
        if applied:
            rank_zero_info(
                f"resumed from {trainer.ckpt_path} with the config's optimizer settings instead of the checkpoint's: "
                + "; ".join(applied)
            )
