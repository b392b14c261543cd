"""An exponential moving average of one network (the generator only, not the whole LightningModule)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """Shadow copy θ̄ ← d·θ̄ + (1−d)·θ with warm-up d_n = min(decay, (1+n)/(10+n)).

    Lives inside the LightningModule, so it is saved in and restored from checkpoints with the update count.

    Args:
        model: the network to average (deep-copied).
        decay: d, in [0, 1).
        foreach: update every tensor in a few fused ``torch._foreach_*`` kernels, with d_n computed on the device
            from the ``num_updates`` buffer (no read of the count to the host, so no synchronisation per update);
            ``False``: one ``lerp_`` per tensor with d_n computed on the host. The two agree to float rounding.
    """

    def __init__(self, model: nn.Module, decay: float, foreach: bool = True) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.foreach = foreach
        self.module = copy.deepcopy(model).requires_grad_(False).eval()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> "EMA":
        return super().train(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if self.foreach:
            self._update_foreach(model)
        else:
            self._update_loop(model)
        self.num_updates += 1

    def _update_loop(self, model: nn.Module) -> None:
        n = int(self.num_updates)
        decay = min(self.decay, (1 + n) / (10 + n))
        for shadow, live in zip(self.module.parameters(), model.parameters()):
            shadow.lerp_(live.detach(), 1.0 - decay)
        for shadow, live in zip(self.module.buffers(), model.buffers()):
            shadow.copy_(live)

    def _update_foreach(self, model: nn.Module) -> None:
        shadows = list(self.module.parameters())
        lives = [p.detach() for p in model.parameters()]
        # d_n in float64 as the host computes it, then in the parameters' dtype, as lerp_ uses a Python scalar.
        n = self.num_updates.double()
        decay = torch.clamp((1 + n) / (10 + n), max=self.decay).to(shadows[0].dtype)
        torch._foreach_mul_(shadows, decay)
        torch._foreach_add_(shadows, torch._foreach_mul(lives, 1 - decay))
        buffers = list(self.module.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(model.buffers()))

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
