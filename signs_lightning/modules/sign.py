"""SIGNModule: distil a frozen diffusers teacher into an idempotent one-step generator (docs/method.md)."""

from __future__ import annotations

import functools
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from signs_lightning import sampling
from signs_lightning.diffusion.score_model import ScoreModel, load_teacher
from signs_lightning.diffusion.teacher_pairs import TeacherPairs, load_or_generate_pairs
from signs_lightning.evaluation import FIDEvaluator
from signs_lightning.evaluation.strategy import EvalStrategy
from signs_lightning.losses import (
    Distance,
    denoising_loss,
    distance_fn,
    dmd_loss,
    flow_loss,
    flow_pair,
    idempotence_loss,
    reconstruction_loss,
    regression_loss,
)
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.networks.generator import IdempotentGenerator, OutputHead

LOSS_TERMS = ("rec", "idem", "flow", "dmd", "reg")


class SIGNModule(GeneratorModule):
    """Student f, frozen teacher, fake score; every loss computed in ``training_step`` (manual optimisation).

    The teacher is loaded from ``teacher`` (a diffusers pipeline folder or hub id) and never stored in
    checkpoints: they record its source and fingerprint, and the teacher is reloaded from the source.

    Args:
        teacher: diffusers pipeline folder or hub id (``unet/`` + ``scheduler/``).
        conditioning_timestep, output_head: how f calls the UNet (see ``IdempotentGenerator``).
        distance: d(·,·) of L_rec, L_idem, L_flow and L_reg.
        lambda_rec, lambda_idem, lambda_flow, lambda_dmd, lambda_reg: loss weights; 0 skips a term's compute
            (``lambda_dmd = 0`` also removes the fake score and its optimizer).
        flow_intervals: N of L_flow's grid; flow_target: ``student`` (stop-grad f) or ``ema``.
        dmd_t_min, dmd_t_max: L_dmd's t range as fractions of T.
        reg_pairs, reg_sampler_steps, reg_seed, reg_batch_size: L_reg's cached teacher DDIM pairs and how
            many of them each step uses (default: the data batch size).
        reg_trajectory_fraction: fraction of L_reg's inputs taken from the teacher's DDIM trajectory instead of
            its start z_ref: a partly-noised state x_t of the same ODE path, with the same target y_ref. These are
            the inputs the multi-step sampler feeds f (samples re-noised to an intermediate level), and the
            target is the ODE's endpoint from them, a sharp sample rather than the blurry posterior mean.
        gen_every: the generator steps once every ``gen_every`` batches; the fake score every batch.
        max_generator_steps: stop after this many generator steps (``trainer.max_steps`` counts the steps of
            both optimizers).
        gradient_clip_norm: clip each network's gradient norm (``None``: no clipping).
        ema_decay: EMA of the generator (``None``: none); samples and metrics use the EMA when present.
        sample_nfe: NFE settings for validation samples and metrics.
        renoise_max_level: the multi-step sampler re-noises to levels evenly spaced from this fraction of T down
            (``sampling.renoise_timesteps``).
        generator_optimizer, fake_score_optimizer: optimizer factories (LightningCLI ``class_path`` configs).
        generator_lr_scheduler, fake_score_lr_scheduler: optional LR-scheduler factories for each optimizer, stepped
            after each applied update of it (e.g. ``torch.optim.lr_scheduler.LinearLR`` with ``start_factor: 0.01,
            total_iters: 1000``: a linear warm-up, then constant, as DMD2).
        max_consecutive_skips: updates with a non-finite gradient are skipped; this many in a row stop the fit.
        predict_samples, predict_nfe: what ``signs predict`` generates (sample i from seed (run seed, i)).
        evaluator: optional ``FIDEvaluator`` run in the validation hooks.
        cache_dir: where L_reg pairs (and reference statistics) are cached; default ``$SIGNS_CACHE``.
    """

    def __init__(
        self,
        teacher: str,
        conditioning_timestep: int | None = None,
        output_head: OutputHead = "x0",
        distance: Distance = "mse",
        lambda_rec: float = 1.0,
        lambda_idem: float = 1.0,
        lambda_flow: float = 0.0,
        lambda_dmd: float = 0.0,
        lambda_reg: float = 1.0,
        flow_intervals: int = 18,
        flow_target: Literal["student", "ema"] = "student",
        dmd_t_min: float = 0.02,
        dmd_t_max: float = 0.98,
        reg_pairs: int = 4000,
        reg_sampler_steps: int = 10,
        reg_seed: int = 0,
        reg_batch_size: int | None = None,
        reg_trajectory_fraction: float = 0.0,
        gen_every: int = 1,
        max_generator_steps: int | None = None,
        gradient_clip_norm: float | None = 10.0,
        ema_decay: float | None = 0.999,
        sample_nfe: list[int] = [1, 2],
        renoise_max_level: float = sampling.DEFAULT_RENOISE_MAX_LEVEL,
        generator_optimizer: OptimizerCallable = functools.partial(torch.optim.AdamW, lr=1e-3),
        fake_score_optimizer: OptimizerCallable = functools.partial(torch.optim.AdamW, lr=1e-3),
        generator_lr_scheduler: LRSchedulerCallable | None = None,
        fake_score_lr_scheduler: LRSchedulerCallable | None = None,
        evaluator: FIDEvaluator | None = None,
        cache_dir: str | None = None,
        max_consecutive_skips: int = 10,
        predict_samples: int = 64,
        predict_nfe: int = 1,
    ) -> None:
        self.save_hyperparameters(ignore=[
            "generator_optimizer", "fake_score_optimizer", "generator_lr_scheduler", "fake_score_lr_scheduler",
            "evaluator",
        ])
        if gen_every < 1:
            raise ValueError(f"gen_every must be >= 1, got {gen_every}")
        if not 0 <= reg_trajectory_fraction <= 1:
            raise ValueError(f"reg_trajectory_fraction must be in [0, 1], got {reg_trajectory_fraction}")
        if reg_trajectory_fraction > 0 and reg_sampler_steps < 2:
            raise ValueError(
                f"reg_trajectory_fraction > 0 needs a trajectory: reg_sampler_steps >= 2, got {reg_sampler_steps}"
            )
        if flow_target == "ema" and ema_decay is None:
            raise ValueError("flow_target='ema' needs ema_decay")
        weights = {term: float(w) for term, w in zip(LOSS_TERMS, (lambda_rec, lambda_idem, lambda_flow, lambda_dmd, lambda_reg))}
        if any(w < 0 for w in weights.values()) or not any(weights.values()):
            raise ValueError(f"loss weights must be >= 0 and not all 0, got {weights}")
        frozen_teacher = load_teacher(teacher)
        # The resolved source (absolute for a local folder): a checkpoint must not depend on the working folder.
        self.hparams.teacher = frozen_teacher.source
        super().__init__(
            student=IdempotentGenerator(frozen_teacher, conditioning_timestep, output_head),
            teacher=frozen_teacher,
            ema_decay=ema_decay,
            max_generator_steps=max_generator_steps,
            gradient_clip_norm=gradient_clip_norm,
            sample_nfe=sample_nfe,
            renoise_max_level=renoise_max_level,
            evaluator=evaluator,
            max_consecutive_skips=max_consecutive_skips,
            predict_samples=predict_samples,
            predict_nfe=predict_nfe,
        )
        self.loss_weights = weights
        self.distance = distance_fn(distance)
        # Initialised from the teacher, as in DMD; absent (no compute, no optimizer) when L_dmd is off.
        self.fake_score: ScoreModel | None = frozen_teacher.trainable_copy() if weights["dmd"] > 0 else None
        self.generator_optimizer = generator_optimizer
        self.fake_score_optimizer = fake_score_optimizer
        self.generator_lr_scheduler = generator_lr_scheduler
        self.fake_score_lr_scheduler = fake_score_lr_scheduler
        self.pairs: TeacherPairs | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.teacher.image_shape

    # -- set-up -----------------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.loss_weights["reg"] > 0 and self.pairs is None:
            # Here, not in ``setup``: the teacher is on the training device only once the strategy has moved it.
            self.pairs = self.teacher_pairs(self.trainer.strategy)

    def teacher_pairs(self, strategy: EvalStrategy | None = None) -> TeacherPairs:
        """L_reg's pairs for this module's settings, from the cache (made on first use, shared out over the ranks
        of ``strategy``; every rank must call it)."""
        hp = self.hparams
        return load_or_generate_pairs(
            self.teacher, hp.reg_pairs, hp.reg_sampler_steps, hp.reg_seed, hp.cache_dir,
            trajectory=hp.reg_trajectory_fraction > 0, strategy=strategy,
        )

    def configure_optimizers(self) -> list[dict]:
        optimizers = [("generator", self.generator_optimizer(self.student.parameters()), self.generator_lr_scheduler)]
        if self.fake_score is not None:
            optimizers.append(
                ("fake_score", self.fake_score_optimizer(self.fake_score.parameters()), self.fake_score_lr_scheduler)
            )
        return self.with_schedulers(optimizers)

    # -- training ---------------------------------------------------------------------------------------------
    def generator_losses(self, x: Tensor, z: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Each weighted-in loss term (unweighted) for real batch x and noise z, and f(z) (graph attached).

        All trainable f calls of the step (z, x, y, z_ref) run as one batched forward.
        """
        f, w, d = self.student, self.loss_weights, self.distance
        inputs: dict[str, Tensor] = {"z": z}
        if w["rec"] > 0:
            inputs["x"] = x
        if w["flow"] > 0:
            target_f = self.ema.module if self.hparams.flow_target == "ema" else f
            inputs["y"], flow_target = flow_pair(target_f, self.teacher, x, self.hparams.flow_intervals)
        if w["reg"] > 0:
            inputs["z_ref"], y_ref = self._reg_batch(x.shape[0], x.device)
        outputs = dict(zip(inputs, f(torch.cat(list(inputs.values()))).split([v.shape[0] for v in inputs.values()])))

        losses: dict[str, Tensor] = {}
        if w["rec"] > 0:
            losses["rec"] = reconstruction_loss(outputs["x"], x, d)
        if w["idem"] > 0:
            losses["idem"] = idempotence_loss(f, outputs["z"], d)
        if w["flow"] > 0:
            losses["flow"] = flow_loss(outputs["y"], flow_target, d)
        if w["dmd"] > 0:
            losses["dmd"] = dmd_loss(outputs["z"], self.teacher, self.fake_score, self.hparams.dmd_t_min, self.hparams.dmd_t_max)
        if w["reg"] > 0:
            losses["reg"] = regression_loss(outputs["z_ref"], y_ref, d)
        return losses, outputs["z"]

    def _reg_batch(self, batch_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """(inputs, targets) of L_reg: z_ref, or with probability ``reg_trajectory_fraction`` a random state of
        z_ref's DDIM trajectory; the target is y_ref either way."""
        size = self.hparams.reg_batch_size or batch_size
        pairs = self.pairs
        index = torch.randint(0, pairs.z.shape[0], (size,))
        inputs = pairs.z[index]
        if pairs.trajectory is not None:
            states = pairs.trajectory[index, torch.randint(0, pairs.trajectory.shape[1], (size,))]
            on_path = (torch.rand(size) < self.hparams.reg_trajectory_fraction).reshape(-1, 1, 1, 1)
            inputs = torch.where(on_path, states, inputs)
        return inputs.to(device), pairs.y[index].to(device)

    def train_batch(self, x: Tensor, optimizers: dict[str, Any]) -> dict[str, Tensor]:
        z = torch.randn_like(x)
        logs: dict[str, Tensor] = {}

        # -- generator f: every ``gen_every`` batches ------------------------------------------------------
        if self.global_batches % self.hparams.gen_every == 0:
            losses, f_z = self.generator_losses(x, z)
            total = sum(self.loss_weights[name] * value for name, value in losses.items())
            self.generator_update(total, optimizers["generator"])
            logs.update({f"train/loss_{name}": value.detach() for name, value in losses.items()})
            logs["train/loss"] = total.detach()
            f_z = f_z.detach()
        elif self.fake_score is not None:
            with torch.no_grad():
                f_z = self.student(z)

        # -- fake score s_ψ: every batch, on the student's current samples ----------------------------------
        if self.fake_score is not None:
            loss_denoise = denoising_loss(self.fake_score, f_z)
            self.update(loss_denoise, optimizers["fake_score"], "fake_score", self.fake_score.parameters)
            logs["train/loss_denoise"] = loss_denoise.detach()
        return logs
