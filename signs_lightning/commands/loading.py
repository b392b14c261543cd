"""The generator ``signs sample`` / ``edit`` / ``export`` work with: from a checkpoint (SIGN or IGN) or an exported
folder, with a one-line error for anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from signs_lightning.core.checkpoint_io import CheckpointError, read_checkpoint
from signs_lightning.core.errors import SignsError
from signs_lightning.inference.pipeline import SIGNPipeline
from signs_lightning.modules import IGNModule, SIGNModule
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.modules.exported import ExportedGenerator
from signs_lightning.run.checkpoint_args import CLASS_KEY

GENERATOR_CLASSES = {"SIGNModule": SIGNModule, "IGNModule": IGNModule}
WHAT_TO_PASS = "pass a checkpoint (.ckpt) written by `signs fit`, or a folder written by `signs export`"
# Pipelines a teacher folder is saved as (a teacher fit writes DDPMPipeline): named as such in the refusal.
TEACHER_PIPELINES = ("DDPMPipeline", "DDIMPipeline")


def load_generator(source: str, teacher: str | None = None) -> GeneratorModule:
    """The generator ``source`` holds, on the CPU in eval mode.

    Args:
        source: a SIGN or IGN checkpoint, or a folder written by ``signs export``.
        teacher: where the teacher is now, for a checkpoint whose recorded teacher folder has moved (checkpoints
            hold only the teacher's source and fingerprint).

    Raises:
        FileNotFoundError: ``source`` (or the checkpoint's teacher) does not exist.
        CheckpointError: a checkpoint of another module (e.g. a teacher's), or not a checkpoint at all.
        SignsError: a folder that ``signs export`` did not write (e.g. a teacher's diffusers pipeline).
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {WHAT_TO_PASS}")
    if path.is_dir():
        check_exported_folder(path)
        if teacher is not None:
            raise CheckpointError(f"{path} is an exported folder, which needs no teacher: drop --teacher")
        return ExportedGenerator.from_folder(path).eval()
    hparams = read_checkpoint(path, weights_only=True, mmap=True).get("hyper_parameters") or {}
    module_class = generator_class(path, hparams)
    try:
        module = module_class.load_from_checkpoint(
            path, map_location="cpu", **({"teacher": teacher} if teacher else {})
        )
    except FileNotFoundError as error:
        if teacher is not None or "teacher" not in hparams:
            raise
        raise FileNotFoundError(
            f"{error}. The checkpoint's teacher was {hparams['teacher']!r}: if it has moved, pass --teacher FOLDER"
        ) from error
    return module.eval()


def check_exported_folder(path: Path) -> None:
    """Refuse a folder that is not a ``SIGNPipeline``: ``SIGNPipeline.from_pretrained`` takes any folder with a
    UNet and a scheduler (e.g. a teacher's) and would read its noise predictions as images."""
    index = path / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(f"{path} is a folder without model_index.json: {WHAT_TO_PASS}")
    try:
        name = json.loads(index.read_text()).get("_class_name")
    except (ValueError, AttributeError):
        raise SignsError(f"{index} is not a diffusers model index (JSON object): {WHAT_TO_PASS}") from None
    # A custom pipeline loaded from the hub records [module, class].
    name = name[-1] if isinstance(name, list) and name else name
    if name != SIGNPipeline.__name__:
        found = f"a diffusers {name}" if isinstance(name, str) else "a model_index.json naming no pipeline class"
        role = " teacher" if name in TEACHER_PIPELINES else ""
        raise SignsError(f"{path} holds {found}{role}, not a SIGN generator: {WHAT_TO_PASS}")


def generator_class(path: Path, hparams: dict[str, Any]) -> type[GeneratorModule]:
    """SIGNModule or IGNModule, as the checkpoint's hyperparameters say; anything else is refused."""
    saved = hparams.get(CLASS_KEY)
    if saved is None:
        # Fits outside LightningCLI record no class: IGN alone has a network, a teacher trainer has no teacher.
        if "network" in hparams:
            return IGNModule
        if "teacher" in hparams:
            return SIGNModule
        raise CheckpointError(f"checkpoint {path} is not a generator's (SIGNModule or IGNModule): {WHAT_TO_PASS}")
    name = saved.rsplit(".", 1)[-1]
    if name not in GENERATOR_CLASSES:
        raise CheckpointError(
            f"checkpoint {path} was written by {saved}, not by a generator (SIGNModule or IGNModule): {WHAT_TO_PASS}"
        )
    return GENERATOR_CLASSES[name]
