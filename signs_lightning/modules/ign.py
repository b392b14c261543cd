"""IGNModule: the Idempotent Generative Network baseline (Shocher et al., ICLR 2024; docs/method.md §4.8)."""

from __future__ import annotations

import functools
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from signs_lightning.diffusion.score_model import load_teacher
from signs_lightning.evaluation import FIDEvaluator
from signs_lightning.inference import sampling
from signs_lightning.losses import Distance, distance_fn, idempotence_loss, reconstruction_loss, tightening_loss
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.networks.dcgan import DCGANAutoencoder
from signs_lightning.networks.generator import IdempotentGenerator

Network = Literal["teacher_unet", "dcgan"]
LOSS_TERMS = ("rec", "idem", "tight")


class IGNModule(GeneratorModule):
    """IGN: f trained on L_rec + L_idem + clamped L_tight in one backward, with no teacher loss.

    total = λ_rec·d(f(x), x) + λ_idem·d(f_sg(f(z)), f(z)) + λ_tight·tanh(L / (a·L_rec))·a·L_rec,
    L = −d(f(sg[f(z)]), sg[f(z)]): L_idem pulls f(z) onto f's fixed points through the inner f only, L_tight
    pushes the fixed-point set away from non-data through the outer f only (``idempotence_loss``,
    ``tightening_loss``). The defaults are IGN's published ones (L1, 20 / 20 / 2.5, a = 1.5, Adam 1e-4 (0.5, 0.999)).

    Args:
        network: ``teacher_unet``: f = ``IdempotentGenerator`` of the teacher, SIGN's architecture and
            initialisation (a like-for-like comparison; the teacher also supplies the multi-step re-noising
            schedule, and is otherwise unused). ``dcgan``: IGN's ``DCGANAutoencoder``, from scratch.
        teacher: diffusers pipeline folder or hub id; required by ``teacher_unet``, unused by ``dcgan``.
        image_size, channels: the ``dcgan`` network's geometry; with ``teacher_unet`` they default to (and must
            equal) the teacher's.
        dcgan_width: the ``dcgan`` network's first-layer width (see ``DCGANAutoencoder``).
        distance: d(·,·) of all three terms.
        lambda_rec, lambda_idem, lambda_tight: loss weights.
        tight_clamp_ratio: a of L_tight's clamp.
        max_generator_steps, gradient_clip_norm, ema_decay, sample_nfe, renoise_max_level, evaluator: as in
            ``SIGNModule`` (IGN caches no teacher pairs, so it has no ``cache_dir``).
        optimizer: the generator's optimizer factory (LightningCLI ``class_path`` config).
    """

    def __init__(
        self,
        network: Network = "teacher_unet",
        teacher: str | None = None,
        image_size: int | None = None,
        channels: int | None = None,
        dcgan_width: int = 64,
        distance: Distance = "l1",
        lambda_rec: float = 20.0,
        lambda_idem: float = 20.0,
        lambda_tight: float = 2.5,
        tight_clamp_ratio: float = 1.5,
        max_generator_steps: int | None = None,
        gradient_clip_norm: float | None = 10.0,
        ema_decay: float | None = 0.999,
        sample_nfe: list[int] = [1, 2],
        renoise_max_level: float = sampling.DEFAULT_RENOISE_MAX_LEVEL,
        optimizer: OptimizerCallable = functools.partial(torch.optim.Adam, lr=1e-4, betas=(0.5, 0.999)),
        evaluator: FIDEvaluator | None = None,
    ) -> None:
        self.save_hyperparameters(ignore=["optimizer", "evaluator"])
        weights = {term: float(w) for term, w in zip(LOSS_TERMS, (lambda_rec, lambda_idem, lambda_tight))}
        if any(w < 0 for w in weights.values()) or not any(weights.values()):
            raise ValueError(f"loss weights must be >= 0 and not all 0, got {weights}")
        if tight_clamp_ratio <= 0:
            raise ValueError(f"tight_clamp_ratio must be > 0, got {tight_clamp_ratio}")
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
            generator = IdempotentGenerator(frozen_teacher)
        elif network == "dcgan":
            if image_size is None or channels is None:
                raise ValueError("network='dcgan' needs image_size and channels")
            frozen_teacher = None
            generator = DCGANAutoencoder(image_size, channels, dcgan_width)
        else:
            raise ValueError(f"network must be 'teacher_unet' or 'dcgan', got {network!r}")
        super().__init__(
            student=generator,
            teacher=frozen_teacher,
            ema_decay=ema_decay,
            max_generator_steps=max_generator_steps,
            gradient_clip_norm=gradient_clip_norm,
            sample_nfe=sample_nfe,
            renoise_max_level=renoise_max_level,
            evaluator=evaluator,
        )
        self.loss_weights = weights
        self.distance = distance_fn(distance)
        self.optimizer = optimizer

    @property
    def image_shape(self) -> tuple[int, int, int]:
        if self.teacher is not None:
            return self.teacher.image_shape
        return self.hparams.channels, self.hparams.image_size, self.hparams.image_size

    def configure_optimizers(self) -> list[dict[str, Any]]:
        return self.with_schedulers([("generator", self.optimizer(self.student.parameters()), None)])

    # -- training ---------------------------------------------------------------------------------------------
    def generator_losses(self, x: Tensor, z: Tensor) -> dict[str, Tensor]:
        """The three unweighted terms for real images x and noise z, both (B, C, H, W); graphs attached.

        L_rec is always computed: it scales L_tight's clamp even when its own weight is 0.
        """
        f, w, d = self.student, self.loss_weights, self.distance
        losses = {"rec": reconstruction_loss(f(x), x, d)}
        f_z = f(z)
        if w["idem"] > 0:
            losses["idem"] = idempotence_loss(f, f_z, d)
        if w["tight"] > 0:
            losses["tight"] = tightening_loss(f, f_z, losses["rec"], d, self.hparams.tight_clamp_ratio)
        return losses

    def train_batch(self, x: Tensor, optimizers: dict[str, Any]) -> dict[str, Tensor]:
        losses = self.generator_losses(x, torch.randn_like(x))
        total = sum(self.loss_weights[name] * value for name, value in losses.items())
        self.generator_update(total, optimizers["generator"])
        logs = {f"train/loss_{name}": value.detach() for name, value in losses.items()}
        logs["train/loss"] = total.detach()
        return logs
