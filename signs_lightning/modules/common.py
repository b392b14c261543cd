"""What the generator LightningModules (SIGN, IGN) share: EMA, step budget, sampling, checkpoints, validation."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torchvision
from torch import Tensor, nn

from signs_lightning import sampling
from signs_lightning.data.errors import check_matches_model
from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.diffusion.score_model import ScoreModel
from signs_lightning.evaluation import FIDEvaluator
from signs_lightning.modules.ema import EMA

TEACHER_PREFIX = "teacher."


def default_schedule() -> NoiseSchedule:
    """DDPM's linear β schedule (1e-4..0.02, T = 1000): the re-noising schedule of a model with no teacher."""
    return NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000, "beta_schedule": "linear"})


class GeneratorModule(L.LightningModule):
    """Base of the one-step generator modules; manual optimisation (subclasses write ``training_step``).

    Args:
        generator: f, (B, C, H, W) → (B, C, H, W).
        teacher: frozen ``ScoreModel`` or ``None``; never saved in checkpoints (only its source and fingerprint).
        ema_decay, max_generator_steps, gradient_clip_norm, sample_nfe, renoise_max_level, evaluator: see
            ``SIGNModule``.
    """

    def __init__(
        self,
        generator: nn.Module,
        teacher: ScoreModel | None,
        ema_decay: float | None,
        max_generator_steps: int | None,
        gradient_clip_norm: float | None,
        sample_nfe: list[int],
        renoise_max_level: float = sampling.DEFAULT_RENOISE_MAX_LEVEL,
        evaluator: FIDEvaluator | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if any(k < 1 for k in sample_nfe):
            raise ValueError(f"sample_nfe entries must be >= 1, got {sample_nfe}")
        if not 0 < renoise_max_level <= 1:
            raise ValueError(f"renoise_max_level must be in (0, 1], got {renoise_max_level}")
        self.generator = generator
        self.teacher = teacher
        self.schedule = teacher.schedule if teacher is not None else default_schedule()
        self.ema = EMA(generator, ema_decay) if ema_decay is not None else None
        self.max_generator_steps = max_generator_steps
        self.gradient_clip_norm = gradient_clip_norm
        self.sample_nfe = list(sample_nfe)
        self.renoise_max_level = renoise_max_level
        self.evaluator = evaluator
        # Counted here, not read off trainer.global_step, which counts the steps of every optimizer.
        self.generator_steps = 0
        self.global_batches = 0

    # -- geometry -------------------------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the generator's images."""
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "channels"):
            channels, height, _ = self.image_shape
            name = self.teacher.source if self.teacher is not None else type(self).__name__
            check_matches_model(datamodule, channels, height, name)
        if self.evaluator is not None and datamodule is not None:
            self.evaluator.prepare(datamodule, self.trainer.strategy)

    # -- optimisation helpers ---------------------------------------------------------------------------------
    def clip(self, optimizer: Any) -> None:
        if self.gradient_clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_norm, gradient_clip_algorithm="norm")

    def after_generator_step(self) -> None:
        if self.ema is not None:
            self.ema.update(self.generator)
        self.generator_steps += 1

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        if self.max_generator_steps is not None and self.generator_steps >= self.max_generator_steps:
            self.trainer.should_stop = True
            return -1  # Lightning: skip the rest of this epoch
        return None

    def log_training(self, logs: dict[str, Tensor], x: Tensor, batch_size: int) -> None:
        """Log the loss terms every step, and the idempotence/reconstruction errors every log interval."""
        if self.global_batches % max(1, self.trainer.log_every_n_steps) == 0:
            logs.update(self.diagnostics(x))
        logs["train/generator_steps"] = torch.tensor(float(self.generator_steps))
        self.log_dict(logs, prog_bar=False, batch_size=batch_size)

    # -- sampling ---------------------------------------------------------------------------------------------
    @property
    def sampler(self) -> nn.Module:
        """The network that samples: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.generator

    @torch.no_grad()
    def sample(self, z: Tensor, nfe: int = 1) -> Tensor:
        """f(z) for nfe = 1, else re-noise-and-project with ``nfe`` NFE (``sampling.multistep``)."""
        f = self.sampler
        if nfe == 1:
            return sampling.one_step(f, z)
        return sampling.multistep(f, z, self.schedule, self.renoise_timesteps(nfe))

    def renoise_timesteps(self, nfe: int) -> list[int]:
        """The re-noising levels of the ``nfe``-NFE sampler (``sampling.renoise_timesteps``)."""
        return sampling.renoise_timesteps(self.schedule, nfe, self.renoise_max_level)

    @torch.no_grad()
    def diagnostics(self, x: Tensor) -> dict[str, Tensor]:
        """Idempotence error mean (f(f(z)) − f(z))² and reconstruction error mean (f(x) − x)², MSE."""
        f = self.sampler
        f_z = f(torch.randn_like(x))
        return {
            "diag/idempotence_error": (f(f_z) - f_z).pow(2).mean(),
            "diag/reconstruction_error": (f(x) - x).pow(2).mean(),
        }

    # -- validation -------------------------------------------------------------------------------------------
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x = batch[0]
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(batch_idx * max(1, self.trainer.world_size) + self.global_rank)
            metrics = self.diagnostics(x)
        self.log_dict({k.replace("diag/", "val/"): v for k, v in metrics.items()}, sync_dist=True, batch_size=x.shape[0])

    def on_validation_epoch_end(self) -> None:
        # The sanity check only proves the loop runs; a full FID there would double the first validation's cost.
        if self.evaluator is not None and not self.trainer.sanity_checking:
            strategy = self.trainer.strategy
            metrics = self.evaluator.evaluate(self.sample, self.image_shape, strategy)
            if self.teacher is not None:
                metrics.update(
                    self.evaluator.evaluate_teacher(
                        self.teacher.ddim_sample, self.image_shape, strategy, teacher_key=self.teacher.fingerprint()
                    )
                )
            # Every rank computed the same values (the evaluator all-reduces): no sync_dist needed.
            self.log_dict(metrics)
        self.log_sample_grid()

    def sample_grid(self, count: int = 64, seed: int = 0) -> Tensor:
        """A (3, H', W') grid in [0, 1]: rows of f(z) at each NFE, then f(f(z)), same z throughout."""
        z = torch.randn((count, *self.image_shape), generator=torch.Generator().manual_seed(seed)).to(self.device)
        rows = [self.sample(z, k) for k in self.sample_nfe]
        rows.append(sampling.repeated_projection(self.sampler, z, 2))
        images = torch.cat([r[: min(count, 16)] for r in rows]).float().clamp(-1, 1).add(1).div(2)
        return torchvision.utils.make_grid(images.cpu(), nrow=min(count, 16), padding=1)

    def log_sample_grid(self) -> None:
        experiment = getattr(self.logger, "experiment", None)
        if self.trainer.is_global_zero and hasattr(experiment, "add_image"):
            with torch.no_grad():
                experiment.add_image("samples/nfe_rows_then_ffz", self.sample_grid(), self.generator_steps)

    # -- checkpoints: counters in, teacher out ------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not self._excluded(k)}
        checkpoint["signs_counters"] = {"generator_steps": self.generator_steps, "global_batches": self.global_batches}
        if self.teacher is not None:
            checkpoint["signs_teacher"] = {"source": self.teacher.source, "fingerprint": self.teacher.fingerprint()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counters = checkpoint.get("signs_counters", {})
        self.generator_steps = int(counters.get("generator_steps", 0))
        self.global_batches = int(counters.get("global_batches", 0))
        recorded = checkpoint.get("signs_teacher")
        if self.teacher is not None and recorded is not None and recorded["fingerprint"] != self.teacher.fingerprint():
            raise ValueError(
                f"checkpoint was trained with teacher {recorded['source']!r} (fingerprint {recorded['fingerprint']}), "
                f"but the teacher loaded from {self.teacher.source!r} has fingerprint {self.teacher.fingerprint()}: "
                "point model.init_args.teacher at the original teacher"
            )
        # Excluded weights come from their own sources, so the strict state-dict load still checks the rest.
        current = self.state_dict()
        checkpoint["state_dict"].update({k: v for k, v in current.items() if self._excluded(k)})

    @staticmethod
    def _excluded(key: str) -> bool:
        # The evaluator keeps its extractor out of the state dict by itself; only the teacher needs stripping.
        return key.startswith(TEACHER_PREFIX)
