"""``ExportedGenerator``: the generator of a folder ``signs export`` wrote, as a ``GeneratorModule`` that samples and
edits (``signs sample``, ``signs edit``) but does not train."""

from __future__ import annotations

import os

from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.diffusion.score_model import ScoreModel
from signs_lightning.inference.pipeline import SIGNPipeline
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.networks.generator import IdempotentGenerator


class ExportedGenerator(GeneratorModule):
    """f rebuilt from a ``SIGNPipeline``: the same ``IdempotentGenerator`` (UNet, t̄, output head) and re-noising
    schedule as the module it was exported from, so the same seeds give the same images. No teacher, no EMA (the
    exported weights are the EMA's).

    Args:
        pipeline: a loaded ``SIGNPipeline``.
    """

    def __init__(self, pipeline: SIGNPipeline) -> None:
        config = pipeline.config
        schedule = NoiseSchedule.from_scheduler_config(pipeline.scheduler.config)
        teacher_like = ScoreModel(pipeline.unet, schedule)  # what IdempotentGenerator copies its UNet from
        network = IdempotentGenerator(teacher_like, config.conditioning_timestep, config.output_head)
        super().__init__(
            student=network.requires_grad_(False).eval(),
            teacher=None,
            ema_decay=None,
            max_generator_steps=None,
            gradient_clip_norm=None,
            sample_nfe=[1],
            renoise_max_level=config.renoise_max_level,
            # Folders exported before these options re-noised with fresh noise, to evenly spaced levels.
            renoise_noise=config.get("renoise_noise", "fresh"),
            renoise_eta=config.get("renoise_eta", 0.0),
            renoise_spacing=config.get("renoise_spacing", "even"),
            schedule=schedule,
        )
        self._image_shape = pipeline.image_shape

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> "ExportedGenerator":
        """Load a folder ``signs export`` wrote (``SIGNPipeline.from_pretrained``)."""
        return cls(SIGNPipeline.from_pretrained(str(folder)))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._image_shape
