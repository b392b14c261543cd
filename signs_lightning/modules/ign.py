"""IGNModule: the Idempotent Generative Network baseline (Shocher et al., ICLR 2024; docs/method.md §4.8)."""

from __future__ import annotations

import functools
import warnings
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable

from signs_lightning.diffusion.score_model import load_teacher
from signs_lightning.losses import Distance
from signs_lightning.losses.ign import Tightening
from signs_lightning.losses.terms import Idempotence, Reconstruction
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.networks.dcgan import DCGANAutoencoder
from signs_lightning.networks.generator import IdempotentGenerator, OutputHead

Network = Literal["teacher_unet", "dcgan"]
# IGN's published weights (20 / 20 / 2.5) and clamp ratio, as configs: one default object would be shared.
DEFAULT_TERMS = {
    "rec": {"class_path": "signs_lightning.losses.Reconstruction", "init_args": {"weight": 20.0}},
    "idem": {"class_path": "signs_lightning.losses.Idempotence", "init_args": {"weight": 20.0}},
    "tight": {"class_path": "signs_lightning.losses.Tightening", "init_args": {"weight": 2.5, "clamp_ratio": 1.5}},
}


class IGNModule(GeneratorModule):
    """IGN: f trained on L_rec + L_idem + clamped L_tight in one backward, with no teacher loss: the same terms and
    training step as ``SIGNModule``, plus ``Tightening``.

    L_idem pulls f(z) onto f's fixed points through the inner f only, L_tight pushes the fixed-point set away
    from non-data through the outer f only (``idempotence_loss``, ``tightening_loss``). The defaults are IGN's
    published ones (L1, 20 / 20 / 2.5, a = 1.5, Adam 1e-4 (0.5, 0.999)).

    Args:
        network: ``teacher_unet``: f = ``IdempotentGenerator`` of the teacher, SIGN's architecture and
            initialisation (a like-for-like comparison; the teacher also supplies the multi-step re-noising
            schedule, and is otherwise unused). ``dcgan``: IGN's ``DCGANAutoencoder``, from scratch.
        teacher: diffusers pipeline folder or hub id; required by ``teacher_unet``, unused by ``dcgan``.
        image_size: the ``dcgan`` network's height and width; with ``teacher_unet`` it defaults to (and must equal)
            the teacher's.
        channels: the ``dcgan`` network's image channels; with ``teacher_unet``, the teacher's.
        dcgan_width: the ``dcgan`` network's first-layer width (see ``DCGANAutoencoder``).
        rec: L_rec (``Reconstruction``); ``None`` switches it off. Each term is given as an instance or
            ``{class_path, init_args}``.
        idem: L_idem (``Idempotence``); ``None``: off.
        tight: L_tight (``Tightening``, IGN's); ``None``: off.
        conditioning_timestep: the fixed timestep at which the ``teacher_unet`` f calls the UNet
            (see ``IdempotentGenerator``).
        output_head: how the ``teacher_unet`` f reads the UNet's output (see ``IdempotentGenerator``).
        distance: d(·,·) of all terms.
        generator_optimizer: f's optimizer factory (LightningCLI ``class_path`` config).
        **kwargs: ``GeneratorModule``'s (as in ``SIGNModule``).
    """

    def __init__(
        self,
        network: Network = "teacher_unet",
        teacher: str | None = None,
        image_size: int | None = None,
        channels: int | None = None,
        dcgan_width: int = 64,
        rec: Reconstruction | None = DEFAULT_TERMS["rec"],
        idem: Idempotence | None = DEFAULT_TERMS["idem"],
        tight: Tightening | None = DEFAULT_TERMS["tight"],
        conditioning_timestep: int | None = None,
        output_head: OutputHead = "x0",
        distance: Distance = "l1",
        generator_optimizer: OptimizerCallable = functools.partial(torch.optim.Adam, lr=1e-4, betas=(0.5, 0.999)),
        **kwargs: Any,
    ) -> None:
        with warnings.catch_warnings():
            # Terms built in Python are recorded as their configs (GeneratorModule), not pickled as modules.
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            self.save_hyperparameters(ignore=["generator_optimizer", "generator_lr_scheduler", "evaluator"])
        if network == "teacher_unet":
            if teacher is None:
                raise ValueError("network='teacher_unet' needs a teacher (a diffusers pipeline folder or hub id)")
            frozen_teacher = load_teacher(teacher)
            # The resolved source (absolute for a local folder): a checkpoint must not depend on the working folder.
            self.hparams.teacher = frozen_teacher.source
            teacher_channels, teacher_size, _ = frozen_teacher.image_shape
            if image_size not in (None, teacher_size) or channels not in (None, teacher_channels):
                raise ValueError(
                    f"image_size={image_size}, channels={channels} contradict the teacher {teacher!r} "
                    f"({teacher_channels}x{teacher_size}x{teacher_size}): leave them unset with network='teacher_unet'"
                )
            generator = IdempotentGenerator(frozen_teacher, conditioning_timestep, output_head)
        elif network == "dcgan":
            if image_size is None or channels is None:
                raise ValueError("network='dcgan' needs image_size and channels")
            if conditioning_timestep is not None or output_head != "x0":
                raise ValueError("conditioning_timestep and output_head set how a UNet f is called: not with 'dcgan'")
            frozen_teacher = None
            generator = DCGANAutoencoder(image_size, channels, dcgan_width)
        else:
            raise ValueError(f"network must be 'teacher_unet' or 'dcgan', got {network!r}")
        super().__init__(
            student=generator,
            teacher=frozen_teacher,
            terms={"rec": rec, "idem": idem, "tight": tight},
            distance=distance,
            generator_optimizer=generator_optimizer,
            # IGN runs f(x) and f(z) as separate forwards: its DCGAN's batch norm sees real and generated apart.
            batched_forward=False,
            **kwargs,
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        if self.teacher is not None:
            return self.teacher.image_shape
        return self.hparams.channels, self.hparams.image_size, self.hparams.image_size
