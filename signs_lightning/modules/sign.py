"""SIGNModule: distil a frozen diffusers teacher into an idempotent one-step generator (SIGN.md)."""

from __future__ import annotations

import functools
from typing import Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from signs_lightning import sampling
from signs_lightning.diffusion.score_model import ScoreModel, load_teacher
from signs_lightning.diffusion.teacher_pairs import TeacherPairs, load_or_generate_pairs
from signs_lightning.evaluation import FIDEvaluator
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
        renoise_fraction: fraction of generator steps whose L_rec input x is replaced by q(x, t, ε) with
            t drawn from the multi-step sampler's re-noising levels. Its target x is only the blurry posterior mean
            of such an input; measured, it did not help (``reg_trajectory_fraction`` did).
        gen_every: the generator steps once every ``gen_every`` batches; the fake score every batch.
        max_generator_steps: stop after this many generator steps (``trainer.max_steps`` counts the steps of
            both optimizers).
        gradient_clip_norm: clip each network's gradient norm (``None``: no clipping).
        ema_decay: EMA of the generator (``None``: none); samples and metrics use the EMA when present.
        sample_nfe: NFE settings for validation samples and metrics.
        renoise_max_level: the multi-step sampler re-noises to levels evenly spaced from this fraction of T down
            (``sampling.renoise_timesteps``).
        generator_optimizer, fake_score_optimizer: optimizer factories (LightningCLI ``class_path`` configs).
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
        renoise_fraction: float = 0.0,
        gen_every: int = 1,
        max_generator_steps: int | None = None,
        gradient_clip_norm: float | None = 10.0,
        ema_decay: float | None = 0.999,
        sample_nfe: list[int] = [1, 2],
        renoise_max_level: float = sampling.DEFAULT_RENOISE_MAX_LEVEL,
        generator_optimizer: OptimizerCallable = functools.partial(torch.optim.AdamW, lr=1e-3),
        fake_score_optimizer: OptimizerCallable = functools.partial(torch.optim.AdamW, lr=1e-3),
        evaluator: FIDEvaluator | None = None,
        cache_dir: str | None = None,
    ) -> None:
        self.save_hyperparameters(ignore=["generator_optimizer", "fake_score_optimizer", "evaluator"])
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
        generator = IdempotentGenerator(frozen_teacher, conditioning_timestep, output_head)
        super().__init__(
            generator, frozen_teacher, ema_decay, max_generator_steps, gradient_clip_norm, sample_nfe, renoise_max_level,
            evaluator,
        )
        self.weights = weights
        self.distance = distance_fn(distance)
        # Initialised from the teacher, as in DMD; absent (no compute, no optimizer) when L_dmd is off.
        self.fake_score: ScoreModel | None = frozen_teacher.trainable_copy() if weights["dmd"] > 0 else None
        self.generator_optimizer = generator_optimizer
        self.fake_score_optimizer = fake_score_optimizer
        self.reg: TeacherPairs | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.teacher.image_shape

    # -- set-up -----------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.weights["reg"] > 0 and self.reg is None:
            # Rank 0 makes (or finds) the cached pairs; the others wait, then read the same file.
            strategy = self.trainer.strategy
            if strategy.is_global_zero:
                self.teacher_pairs()
            strategy.barrier("signs_teacher_pairs")
            self.reg = self.teacher_pairs()

    def teacher_pairs(self) -> TeacherPairs:
        """L_reg's pairs for this module's settings, from the cache (generated and cached on first use)."""
        hp = self.hparams
        return load_or_generate_pairs(
            self.teacher, hp.reg_pairs, hp.reg_sampler_steps, hp.reg_seed, hp.cache_dir,
            trajectory=hp.reg_trajectory_fraction > 0,
        )

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        optimizers = [self.generator_optimizer(self.generator.parameters())]
        if self.fake_score is not None:
            optimizers.append(self.fake_score_optimizer(self.fake_score.parameters()))
        return optimizers

    # -- training ---------------------------------------------------------------------------------------------
    def generator_losses(self, x: Tensor, z: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Each weighted-in loss term (unweighted) for real batch x and noise z, and f(z) (graph attached).

        All trainable f calls of the step (z, x, y, z_ref) run as one batched forward.
        """
        f, w, d = self.generator, self.weights, self.distance
        inputs: dict[str, Tensor] = {"z": z}
        if w["rec"] > 0:
            inputs["x"] = self._maybe_renoise(x)
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

    def _maybe_renoise(self, x: Tensor) -> Tensor:
        """Replace a ``renoise_fraction`` of x by re-noised copies at the multi-step sampler's levels."""
        fraction = self.hparams.renoise_fraction
        if fraction <= 0:
            return x
        levels = torch.tensor(
            sorted({t for k in self.sample_nfe for t in self.renoise_timesteps(k)})
            or [self.teacher.schedule.num_timesteps // 2],
            device=x.device,
        )
        t = levels[torch.randint(len(levels), (x.shape[0],), device=x.device)]
        chosen = (torch.rand(x.shape[0], device=x.device) < fraction).reshape(-1, 1, 1, 1)
        return torch.where(chosen, self.teacher.q_sample(x, t, torch.randn_like(x)), x)

    def _reg_batch(self, batch_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """(inputs, targets) of L_reg: z_ref, or with probability ``reg_trajectory_fraction`` a random state of
        z_ref's DDIM trajectory; the target is y_ref either way."""
        size = self.hparams.reg_batch_size or batch_size
        index = torch.randint(0, self.reg.z.shape[0], (size,))
        inputs = self.reg.z[index]
        if self.reg.trajectory is not None:
            states = self.reg.trajectory[index, torch.randint(0, self.reg.trajectory.shape[1], (size,))]
            on_path = (torch.rand(size) < self.hparams.reg_trajectory_fraction).reshape(-1, 1, 1, 1)
            inputs = torch.where(on_path, states, inputs)
        return inputs.to(device), self.reg.y[index].to(device)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x = batch[0]
        z = torch.randn_like(x)
        optimizers = self.optimizers()
        gen_opt, fake_opt = (optimizers, None) if self.fake_score is None else optimizers
        logs: dict[str, Tensor] = {}

        if self.global_batches % self.hparams.gen_every == 0:
            losses, f_z = self.generator_losses(x, z)
            total = sum(self.weights[name] * value for name, value in losses.items())
            gen_opt.zero_grad(set_to_none=True)
            self.manual_backward(total)
            self.clip(gen_opt)
            gen_opt.step()
            self.after_generator_step()
            logs.update({f"train/loss_{name}": value.detach() for name, value in losses.items()})
            logs["train/loss"] = total.detach()
            f_z = f_z.detach()
        elif fake_opt is not None:
            with torch.no_grad():
                f_z = self.generator(z)

        if fake_opt is not None:
            loss_denoise = denoising_loss(self.fake_score, f_z)
            fake_opt.zero_grad(set_to_none=True)
            self.manual_backward(loss_denoise)
            self.clip(fake_opt)
            fake_opt.step()
            logs["train/loss_denoise"] = loss_denoise.detach()
        self.global_batches += 1
        self.log_training(logs, x, batch_size=x.shape[0])
