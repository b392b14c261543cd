"""The model of a run started from a checkpoint (``--ckpt_path``): which class, with which arguments.

LightningCLI builds that model from the hyperparameters saved in the checkpoint, so the command line's model
arguments (a longer ``max_generator_steps``, a repaired teacher path) are silently dropped, and a checkpoint of
another module class silently changes the class that runs. Here the class must match, arguments given on the
command line or in the config win, and the checkpoint fills in only the ones they leave out.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from signs_lightning.core.checkpoint_io import CheckpointError

CLASS_KEY = "_class_path"  # where LightningCLI's instantiator records the class in ``hyper_parameters``


@dataclass
class ModelArgs:
    """The merged ``init_args`` and what the checkpoint contributed, for the log."""

    init_args: dict[str, Any]
    taken: dict[str, Any] = field(default_factory=dict)  # from the checkpoint, differing from the config's value
    replaced: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (checkpoint's, given)
    dropped: list[str] = field(default_factory=list)  # saved, but no longer arguments of the class

    def summary(self, ckpt_path: str) -> str:
        """One log line: the arguments the checkpoint supplied, and the given ones that replace its values."""
        taken = ", ".join(f"{k}={_short(v)}" for k, v in self.taken.items())
        replaced = ", ".join(f"{k}={_short(v)} (checkpoint: {_short(was)})" for k, (was, v) in self.replaced.items())
        line = (
            f"model arguments taken from the checkpoint {ckpt_path}: {taken or 'none that differ from the config'}; "
            f"given on the command line or in the config instead of the checkpoint's: {replaced or 'none'}"
        )
        if self.dropped:
            line += f"; ignored (no longer arguments of the model): {', '.join(self.dropped)}"
        return line


def check_model_class(ckpt_path: str, hparams: dict[str, Any], model_class: str) -> None:
    """Raise ``CheckpointError`` if the checkpoint records a module class other than ``model_class``."""
    saved = hparams.get(CLASS_KEY)
    if saved is None or _same_class(saved, model_class):
        return
    name = model_class.rsplit(".", 1)[-1]
    raise CheckpointError(
        f"checkpoint {ckpt_path} was written by {saved}, but the config's model is {model_class}: resume it with "
        f"the config it was trained with (model.class_path: {saved}), or pass a checkpoint of a {name}"
    )


def recorded_teacher(ckpt_path: str, checkpoint: dict[str, Any], given: dict[str, Any]) -> str | None:
    """The teacher ``checkpoint`` was trained with, to use instead of a given ``teacher`` that does not exist.

    The README's ``signs validate --config configs/sign_mnist.yaml --ckpt_path $CKPT`` on the demo's checkpoint: the
    config names ``teachers/mnist16``, the demo trained with ``runs/demo/teacher``. The checkpoint's teacher is taken
    only when the checkpoint records its fingerprint, which the module checks when it loads the checkpoint
    (``GeneratorModule.on_load_checkpoint``): a different teacher at that path is refused, never used silently.

    Returns:
        The recorded teacher's source; None to keep the given teacher (it exists, none is given, or the recorded
        one does not exist either: loading the given one then says what is missing).

    Raises:
        CheckpointError: the recorded teacher exists but the checkpoint holds no fingerprint to check it by (the
            message names the flag that uses it).
    """
    from signs_lightning.diffusion.score_model import teacher_available

    teacher = given.get("teacher")
    if not isinstance(teacher, str) or teacher_available(teacher):
        return None
    record = checkpoint.get("signs_teacher")
    record = record if isinstance(record, dict) else {}
    source = record.get("source") or (checkpoint.get("hyper_parameters") or {}).get("teacher")
    if not isinstance(source, str) or source == teacher or not teacher_available(source):
        return None
    if not record.get("fingerprint"):
        raise CheckpointError(
            f"teacher {teacher} (model.init_args.teacher) does not exist; checkpoint {ckpt_path} was trained with "
            f"teacher {source}, which does, but it records no fingerprint to check that it is still the same "
            f"teacher: if it is, add --model.init_args.teacher {source}"
        )
    return source


def merge_model_args(
    hparams: dict[str, Any], given: dict[str, Any], current: dict[str, Any], model_class: str
) -> ModelArgs:
    """``init_args`` for ``model_class``: ``given`` (command line and config) over the checkpoint's ``hparams``.

    Args:
        hparams: the checkpoint's ``hyper_parameters``.
        given: the model ``init_args`` given explicitly (no defaults).
        current: the ``init_args`` the config alone would use (defaults included), to report real changes.
        model_class: the class path of the model to build; its signature decides which saved arguments still
            apply.
    """
    accepted = _init_parameters(_import(model_class))
    saved = {k: v for k, v in hparams.items() if not k.startswith("_")}
    dropped = sorted(k for k in saved if accepted is not None and k not in accepted)
    saved = {k: v for k, v in saved.items() if k not in dropped}
    merged = {**saved, **given}
    taken = {k: v for k, v in saved.items() if k not in given and _plain(current.get(k)) != _plain(v)}
    replaced = {k: (saved[k], given[k]) for k in given if k in saved and _plain(saved[k]) != _plain(given[k])}
    return ModelArgs(merged, taken, replaced, dropped)


def _init_parameters(model_class: type) -> set[str] | None:
    """The keyword arguments ``model_class`` takes, following ``**kwargs`` up to the base classes' ``__init__`` (as
    jsonargparse does); None when the chain ends in one that takes any."""
    names: set[str] = set()
    for cls in model_class.__mro__:
        if "__init__" not in vars(cls):
            continue
        parameters = inspect.signature(cls.__init__).parameters.values()
        names |= {p.name for p in parameters if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return names
    return None


def _same_class(a: str, b: str) -> bool:
    # One class has several import paths (signs_lightning.modules.SIGNModule, signs_lightning.modules.sign.SIGNModule).
    try:
        return _import(a) is _import(b)
    except (ImportError, AttributeError):
        return a == b


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _plain(value: Any) -> Any:
    """Namespaces as dicts and tuples as lists, so that a config value compares equal to its saved copy."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "__path__"}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
