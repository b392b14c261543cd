"""TeacherModule: train a DDPM ``UNet2DModel`` on any DataModule and save it as a diffusers pipeline."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from signs_lightning.data.errors import check_matches_model
from signs_lightning.diffusion.schedule import NoiseSchedule, PredictionType
from signs_lightning.diffusion.score_model import ScoreModel
from signs_lightning.evaluation import FIDEvaluator
from signs_lightning.evaluation.grid import nfe_rows, sampler_grid
from signs_lightning.evaluation.scoring import ddim_sampler, nfe_samplers, score_model
from signs_lightning.losses import denoising_loss
from signs_lightning.modules.ema import EMA
from signs_lightning.modules.scored import ScoredModule
from signs_lightning.networks.unet import build_unet


class TeacherModule(ScoredModule):
    """DDPM training (the teacher's own loss, any prediction type), EMA weights exported in the hub layout.

    Args:
        image_size: height and width of the images; must match the DataModule (checked in ``setup``).
        channels: image channels; must match the DataModule.
        block_out_channels: the ``UNet2DModel``'s channels per resolution level (see ``build_unet``).
        layers_per_block: the UNet's ResNet layers per level.
        attention: self-attention in the lowest-resolution level.
        prediction_type: what the UNet predicts (the ``DDPMScheduler``'s ``prediction_type``).
        beta_schedule: the ``DDPMScheduler``'s β schedule.
        beta_start: its first β.
        beta_end: its last β.
        num_train_timesteps: its number of timesteps T.
        ema_decay: EMA of the UNet; the exported pipeline holds the EMA weights.
        output_dir: where ``on_fit_end`` writes the pipeline (``model_index.json``, ``unet/``, ``scheduler/``).
        sample_nfe: DDIM steps of the validation grid.
        optimizer: optimizer factory (LightningCLI ``class_path`` config).
        evaluator: optional ``FIDEvaluator``; its ``nfe`` are the DDIM step counts scored at each validation.
    """

    grid_key = "samples/ddim_rows"

    def __init__(
        self,
        image_size: int = 16,
        channels: int = 1,
        block_out_channels: list[int] = [16, 32, 32],
        layers_per_block: int = 1,
        attention: bool = False,
        prediction_type: PredictionType = "epsilon",
        beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"] = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        num_train_timesteps: int = 1000,
        ema_decay: float = 0.999,
        output_dir: str = "teachers/mnist16",
        sample_nfe: list[int] = [10],
        optimizer: OptimizerCallable = functools.partial(torch.optim.AdamW, lr=1e-3),
        evaluator: FIDEvaluator | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "evaluator"])
        from diffusers import DDPMScheduler

        self.scheduler_config = dict(
            DDPMScheduler(
                num_train_timesteps=num_train_timesteps,
                beta_schedule=beta_schedule,
                beta_start=beta_start,
                beta_end=beta_end,
                prediction_type=prediction_type,
                variance_type="fixed_large",
                clip_sample=False,
            ).config
        )
        unet = build_unet(image_size, channels, tuple(block_out_channels), layers_per_block, attention)
        self.model = ScoreModel(unet, NoiseSchedule.from_scheduler_config(self.scheduler_config), source=output_dir)
        self.ema = EMA(self.model, ema_decay)
        self.optimizer = optimizer
        self.evaluator = evaluator

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "channels"):
            check_matches_model(datamodule, self.hparams.channels, self.hparams.image_size, "being trained")
        self.prepare_evaluator(stage)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer(self.model.parameters())

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = denoising_loss(self.model, batch[0])
        self.log("train/loss_denoise", loss, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # Here, not in on_train_batch_end: Lightning calls the callbacks' batch-end hooks (the checkpoint saves)
        # before the module's, so a checkpoint would hold an EMA one update behind its weights.
        self.ema.update(self.model)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x = batch[0]
        self.log_seeded(batch_idx, x, lambda: {"val/loss_denoise": denoising_loss(self.ema.module, x)})

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the teacher's images."""
        return (self.hparams.channels, self.hparams.image_size, self.hparams.image_size)

    def score(self, prefix: str) -> dict[str, float]:
        """FID of the EMA's DDIM at each of the evaluator's ``nfe``."""
        samplers = nfe_samplers(ddim_sampler(self.ema.module), self.evaluator.nfe)
        return score_model(self.evaluator, samplers, self.image_shape, self.trainer.strategy, prefix=prefix)

    def sample_grid(self) -> Tensor:
        """Rows of the EMA's DDIM samples at each of ``sample_nfe`` DDIM steps, the same noise in every row."""
        rows = nfe_rows(ddim_sampler(self.ema.module), self.hparams.sample_nfe)
        return sampler_grid(rows, self.image_shape, 16, torch.Generator().manual_seed(0), self.device)

    @property
    def grid_step(self) -> int:
        return self.global_step

    def on_fit_end(self) -> None:
        if self.trainer.is_global_zero:
            self.export_pipeline(self.hparams.output_dir)
        self.trainer.strategy.barrier("signs_teacher_export")

    def export_pipeline(self, path: str | os.PathLike) -> Path:
        """Write the EMA UNet and its scheduler as a ``DDPMPipeline`` folder, atomically (temp folder, rename)."""
        from diffusers import DDPMPipeline, DDPMScheduler

        target = Path(path).expanduser()
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        unet = self.ema.module.unet
        pipeline = DDPMPipeline(unet=unet, scheduler=DDPMScheduler.from_config(self.scheduler_config))
        pipeline.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        return target
