"""The student f: a time-free image-to-image network built from the teacher's UNet."""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import Tensor, nn

from signs_lightning.diffusion.score_model import ScoreModel

OutputHead = Literal["x0", "prediction"]


class IdempotentGenerator(nn.Module):
    """f_θ(x): the teacher's UNet called at a fixed timestep t̄, its output read as a clean image.

    Args:
        teacher: the score model whose architecture and weights initialise f (the teacher is not modified).
        conditioning_timestep: t̄; ``None`` means T-1.
        output_head: ``"x0"`` reads the UNet output as x0 directly (well conditioned: at t̄ = T-1 an ε-UNet
            already outputs ≈ its input, so f starts near the identity). ``"prediction"`` converts the output to
            x0 through the teacher's prediction type at t̄; for ε-prediction at t̄ = 999 this divides by
            √ā_999 ≈ 0.0064 and diverges, so use it only with a much smaller t̄.

    Input: x (B, C, H, W) at unit scale (noise, or images in [-1, 1]). Output: x0 (B, C, H, W).
    """

    def __init__(
        self,
        teacher: ScoreModel,
        conditioning_timestep: int | None = None,
        output_head: OutputHead = "x0",
    ) -> None:
        super().__init__()
        if output_head not in ("x0", "prediction"):
            raise ValueError(f"output_head must be 'x0' or 'prediction', got {output_head!r}")
        num_timesteps = teacher.schedule.num_timesteps
        t_bar = num_timesteps - 1 if conditioning_timestep is None else int(conditioning_timestep)
        if not 0 <= t_bar < num_timesteps:
            raise ValueError(f"conditioning_timestep must be in [0, {num_timesteps - 1}], got {t_bar}")
        self.unet = copy.deepcopy(teacher.unet).requires_grad_(True).train()
        self.schedule = copy.deepcopy(teacher.schedule)
        self.output_head = output_head
        self.conditioning_timestep = t_bar

    def forward(self, x: Tensor) -> Tensor:
        t = torch.full((x.shape[0],), self.conditioning_timestep, device=x.device, dtype=torch.long)
        out = self.unet(x, t).sample
        if self.output_head == "x0":
            return out
        return self.schedule.split_prediction(out, x, t)[0]
