"""A diffusers ``UNet2DModel`` with its noise schedule: the teacher (frozen) and the fake score (trained)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor, nn

from signs_lightning.core.errors import first_line
from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.diffusion.teacher_family import check_distillable


class ScoreModel(nn.Module):
    """ε/v/x0-predicting UNet plus its schedule, exposing the operations SIGN's losses need.

    Args:
        unet: a diffusers ``UNet2DModel`` taking (x_t (B, C, H, W), t (B,)) and returning ``.sample``.
        schedule: the schedule the UNet was trained with.
        source: where the weights came from (a pipeline folder or hub id); recorded in checkpoints.
    """

    def __init__(self, unet: nn.Module, schedule: NoiseSchedule, source: str | None = None) -> None:
        super().__init__()
        self.unet = unet
        self.schedule = schedule
        self.source = source
        self._frozen = False
        self._fingerprint: str | None = None  # a frozen model's, hashed once in freeze()
        # Whether calls that only make targets run under inference mode (``target_mode``); set by the training
        # module's ``teacher_inference_mode`` switch.
        self.inference_targets = False

    # -- frozen teachers -------------------------------------------------------------------------------------
    def freeze(self) -> "ScoreModel":
        """Eval mode for good (``.train()`` no longer switches it), no gradients; the weights are fingerprinted
        now, once (``fingerprint``)."""
        self.requires_grad_(False)
        self._frozen = True
        self._fingerprint = self._weights_hash()
        return super().train(False)

    def train(self, mode: bool = True) -> "ScoreModel":
        return super().train(False if self._frozen else mode)

    def trainable_copy(self) -> "ScoreModel":
        """An unfrozen deep copy (same weights), e.g. to initialise the fake score from the teacher."""
        clone = copy.deepcopy(self)
        clone._frozen = False
        clone._fingerprint = None  # it trains: hashed at each call
        clone.requires_grad_(True)
        return clone.train()

    def target_mode(self) -> contextlib.AbstractContextManager:
        """The grad mode of calls whose results are only targets, never differentiated: ``torch.inference_mode``
        when ``inference_targets`` is on (no autograd bookkeeping at all: no version counters, no view tracking),
        else ``torch.no_grad``.

        An inference-mode tensor cannot be saved for backward: its users may only feed it to ops that save nothing
        of it, as the losses do (every distance and L_dmd's target start with a subtraction, whose backward needs
        neither operand).
        """
        return torch.inference_mode() if self.inference_targets else torch.no_grad()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the UNet was built for."""
        config = self.unet.config
        size = config.sample_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        return int(config.in_channels), int(height), int(width)

    # -- the diffusion operations -----------------------------------------------------------------------------
    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Raw network output (of ``schedule.prediction_type``) for x_t (B, C, H, W) at integer t (B,)."""
        return self.unet(x_t, t).sample

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return self.schedule.q_sample(x0, t, noise)

    def predict_x0(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Clean estimate x̂₀(x_t, t), shape (B, C, H, W)."""
        return self.schedule.split_prediction(self(x_t, t), x_t, t)[0]

    def ddim_step(self, x_t: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """One deterministic DDIM step x_t → x_s (s < t); s = -1 stands for ā = 1, i.e. returns x̂₀.

        This is DDIMScheduler.step with eta=0, clip_sample=False, set_alpha_to_one=True.
        """
        x0, eps = self.schedule.split_prediction(self(x_t, t), x_t, t)
        final = s < 0
        alpha_s, sigma_s = self.schedule.alpha_sigma(s.clamp(min=0), x_t)
        alpha_s = torch.where(final.reshape(-1, 1, 1, 1), torch.ones_like(alpha_s), alpha_s)
        sigma_s = torch.where(final.reshape(-1, 1, 1, 1), torch.zeros_like(sigma_s), sigma_s)
        return alpha_s * x0 + sigma_s * eps

    @torch.no_grad()
    def ddim_from(self, x_t: Tensor, t: Tensor, num_steps: int) -> Tensor:
        """x̂ at t = 0 by ``num_steps`` deterministic DDIM steps from x_t at its levels t ((B,), one per image),
        the steps evenly spaced down from each t: the teacher's ODE from a partly-noised state (SDEdit's end)."""
        for k in range(num_steps):
            level = (t * (num_steps - k) + num_steps // 2) // num_steps
            after = (
                (t * (num_steps - k - 1) + num_steps // 2) // num_steps if k < num_steps - 1 else -torch.ones_like(t)
            )
            x_t = self.ddim_step(x_t, level, after)
        return x_t

    @torch.no_grad()
    def ddim_trajectory(self, noise: Tensor, num_steps: int) -> Iterator[Tensor]:
        """The teacher's deterministic DDIM sampler, ``num_steps`` NFE, one state at a time.

        Yields x at each level of ``schedule.ddim_timesteps(num_steps)`` after the first (``num_steps - 1``
        partly-noised states, (B, C, H, W)), then x0: the points of one ODE trajectory that start at ``noise``.
        """
        timesteps = self.schedule.ddim_timesteps(num_steps) + [-1]
        x = noise
        for t, s in zip(timesteps[:-1], timesteps[1:]):
            batch = x.shape[0]
            x = self.ddim_step(x, x.new_full((batch,), t, dtype=torch.long), x.new_full((batch,), s, dtype=torch.long))
            yield x

    @torch.no_grad()
    def ddim_sample(self, noise: Tensor, num_steps: int) -> Tensor:
        """The teacher's own deterministic DDIM sampler, ``num_steps`` NFE, from noise (B, C, H, W) to x0."""
        *_, x0 = self.ddim_trajectory(noise, num_steps)
        return x0

    def fingerprint(self) -> str:
        """A short hash of the weights and schedule: a cache key that changes whenever the model does.

        A frozen model's (the teacher) was computed when it was frozen, at load: checkpoints, caches and
        validations ask for it often, and its weights do not change. A trainable one (a fake score, a teacher in
        training) is hashed at each call.
        """
        if self._frozen and self._fingerprint is not None:
            return self._fingerprint
        return self._weights_hash()

    def _weights_hash(self) -> str:
        digest = hashlib.sha1(self.schedule.prediction_type.encode())
        digest.update(self.schedule.alphas_cumprod.cpu().numpy().tobytes())
        for name, tensor in sorted(self.unet.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]


def load_teacher(source: str | os.PathLike, dtype: torch.dtype = torch.float32) -> ScoreModel:
    """Load a frozen teacher from a diffusers pipeline folder or hub id (``unet/`` + ``scheduler/``).

    A local folder is recorded (``ScoreModel.source``) by its absolute path, so a checkpoint that names it does not
    depend on the working directory it was written from.

    Raises:
        FileNotFoundError: a folder that does not exist or lacks a file of the pipeline layout, or a hub id that
            is not in the Hugging Face cache (with what to download).
        UnsupportedTeacher: a teacher SIGN cannot distil (a latent or conditional pipeline, a sigma-based
            scheduler, a Fourier time embedding, a learned variance, class labels), by what it is; a ValueError.
    """
    from diffusers import DDPMScheduler, UNet2DModel

    source = str(source)
    folder = _teacher_folder(source)
    location = str(folder) if folder is not None else source
    try:
        # Configs first: a teacher that cannot work is refused before its weights are read.
        unet_config = UNet2DModel.load_config(location, subfolder="unet")
        scheduler_config = DDPMScheduler.load_config(location, subfolder="scheduler")
    except (OSError, ValueError) as error:
        if folder is not None:
            raise FileNotFoundError(f"teacher folder {folder}: {first_line(error)}") from error
        raise FileNotFoundError(_missing_teacher(source)) from error
    components, listed_in = _pipeline_components(folder, source)
    check_distillable(location, components, unet_config, scheduler_config, listed_in)
    try:
        unet = UNet2DModel.from_pretrained(location, subfolder="unet", torch_dtype=dtype)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"teacher {location}: cannot load unet/ weights: {first_line(error)}") from error
    return ScoreModel(unet, NoiseSchedule.from_scheduler_config(scheduler_config), source=location).freeze()


# The teacher folders the configs export, and the command that makes each (TeacherModule's output_dir).
TEACHER_EXPORTS = {
    "teachers/mnist16": "signs fit --config configs/teacher_mnist.yaml",
    "teachers/ddpm-celeba64": "signs fit --config configs/teacher_celeba64.yaml",
}


def teacher_available(source: str) -> bool:
    """Whether ``source`` is an existing local folder, or a hub id whose pipeline is in the Hugging Face cache."""
    if Path(source).expanduser().exists():
        return True
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    return _cached_hub_file(source, "unet/config.json") is not None


def _export_command(source: str) -> str | None:
    """The command that makes ``source`` when it is one of the configs' teacher folders (``TEACHER_EXPORTS``)."""
    return TEACHER_EXPORTS.get(Path(source).as_posix().removeprefix("./").rstrip("/"))


def _missing_teacher(source: str, path_only: bool = False) -> str:
    """What to do about a teacher that is neither a folder here nor a hub id in the cache.

    ``teachers/mnist16`` is both a relative path and a well-formed hub id: it reads as a path when a config exports
    a teacher there (``TEACHER_EXPORTS``) or its parent folder exists, else as a hub id. ``path_only``: ``source``
    cannot be a hub id (``./x``, ``/x``, ``a/b/c``).
    """
    path = Path(source).expanduser()
    folder = os.path.abspath(path)
    make = _export_command(source)
    if make is not None:
        return (
            f"teacher folder {folder} does not exist: `{make}` trains the teacher and exports it there (`make demo` "
            "writes its own to runs/demo/teacher), or point model.init_args.teacher at another diffusers pipeline "
            "folder"
        )
    if path_only or (len(path.parts) > 1 and path.parent.is_dir()):
        return (
            f"teacher folder {folder} does not exist: point model.init_args.teacher at a diffusers pipeline folder "
            "(model_index.json, unet/, scheduler/), e.g. teachers/mnist16, which "
            f"`{TEACHER_EXPORTS['teachers/mnist16']}` makes (`make demo` writes its teacher to runs/demo/teacher)"
        )
    return (
        f"teacher {source!r}: the folder {folder} does not exist, and no hub model of that name is in the Hugging "
        f"Face cache: with network access run `hf download {source}`, or point model.init_args.teacher at a "
        f"diffusers pipeline folder (e.g. teachers/mnist16, which `{TEACHER_EXPORTS['teachers/mnist16']}` makes)"
    )


# The pipeline files load_teacher reads, with what each one is, for the message when one is missing.
_PIPELINE_FILES = {
    "unet/config.json": "the UNet's architecture",
    "scheduler/scheduler_config.json": "the noise schedule the UNet was trained with",
}


def _teacher_folder(source: str) -> Path | None:
    """The absolute folder ``source`` names, or None when it can only be a hub id (``name`` or ``org/name``).

    Raises:
        FileNotFoundError: ``source`` can only be a path (``./x``, ``/x``, ``~/x``, ``a/b/c``) and does not
            exist, or it is a folder that lacks one of ``_PIPELINE_FILES``.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    path = Path(source).expanduser()
    folder = Path(os.path.abspath(path))
    if not path.exists():
        try:
            validate_repo_id(source)
        except HFValidationError:
            raise FileNotFoundError(_missing_teacher(source, path_only=True)) from None
        if _export_command(source) is not None and _cached_hub_file(source, "unet/config.json") is None:
            # A config's export folder, not made yet: no hub model to ask for (offline, that takes ~30 s of retries).
            raise FileNotFoundError(_missing_teacher(source))
        return None
    layout = (
        "Expected the diffusers pipeline layout written by `DDPMPipeline.save_pretrained(dir)` (model_index.json, "
        "unet/, scheduler/), e.g. the output of `signs fit --config configs/teacher_mnist.yaml`."
    )
    if not folder.is_dir():
        raise FileNotFoundError(f"teacher {folder} is a file, not a folder. {layout}")
    for name, what in _PIPELINE_FILES.items():
        if not (folder / name).is_file():
            raise FileNotFoundError(f"teacher folder {folder} has no {name} ({what}). {layout}")
    return folder


def _pipeline_components(folder: Path | None, source: str) -> tuple[list[str], str]:
    """The components the pipeline names beside its unet and scheduler, and where they were found.

    ``model_index.json`` when there is one (for a hub id, when it is in the cache); else, for a folder, its
    sub-folders that hold a diffusers config (a latent teacher copied without its index still has ``vae/``).
    """
    index = folder / "model_index.json" if folder is not None else _cached_hub_file(source, "model_index.json")
    if index is not None and index.is_file():
        try:
            entries = json.loads(index.read_text())
        except ValueError as error:
            raise ValueError(f"teacher {index} is not valid JSON ({first_line(error)})") from None
        if not isinstance(entries, dict):
            raise ValueError(f"teacher {index} is not a diffusers model index (a JSON object)")
        # Optional components a pipeline lacks are recorded as [null, null].
        return [k for k, v in entries.items() if not k.startswith("_") and v != [None, None]], "model_index.json names"
    if folder is None:
        return [], ""
    configs = ("config.json", "scheduler_config.json", "tokenizer_config.json", "preprocessor_config.json")
    parts = sorted(p.name for p in folder.iterdir() if p.is_dir() and any((p / c).is_file() for c in configs))
    return parts, "the folder has"


def _cached_hub_file(repo_id: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, filename)
    return Path(cached) if isinstance(cached, str) else None
