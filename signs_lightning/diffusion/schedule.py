"""Discrete DDPM/DDIM noise schedule: q(x, t, eps) and the conversions between prediction types."""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor, nn

PredictionType = Literal["epsilon", "v_prediction", "sample"]
PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "v_prediction", "sample")


def _expand(values: Tensor, like: Tensor) -> Tensor:
    """Broadcast per-sample values of shape (B,) against images of shape (B, C, H, W)."""
    return values.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


class NoiseSchedule(nn.Module):
    """The cumulative products ā_t of a DDPM-family scheduler, plus its prediction type.

    The betas are computed by diffusers' own ``DDPMScheduler`` so that every beta schedule it knows
    (linear, scaled_linear, squaredcos_cap_v2, sigmoid) gives exactly the teacher's ā_t.

    Args:
        alphas_cumprod: ā_t for t = 0..T-1, shape (T,).
        prediction_type: what the network predicts: ``epsilon``, ``v_prediction`` or ``sample``.
        scheduler_config: the diffusers scheduler config it was built from (``from_scheduler_config`` keeps it), or
            None; the multistep ODE solvers build their diffusers schedulers from it (``diffusion/ode_solvers.py``).

    >>> schedule = NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000})
    >>> schedule.num_timesteps, schedule.prediction_type
    (1000, 'epsilon')
    >>> round(float(schedule.alphas_cumprod[-1].sqrt()), 4)  # why an epsilon->x0 head at t=999 is ill-conditioned
    0.0064
    """

    def __init__(
        self,
        alphas_cumprod: Tensor,
        prediction_type: PredictionType = "epsilon",
        scheduler_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        if alphas_cumprod.ndim != 1 or not bool(((alphas_cumprod > 0) & (alphas_cumprod <= 1)).all()):
            raise ValueError("alphas_cumprod must be a 1-d tensor with values in (0, 1]")
        self.prediction_type: PredictionType = prediction_type
        self.scheduler_config = dict(scheduler_config) if scheduler_config is not None else None
        # Kept in float64 and cast on use: sqrt(1 - ā) near t=0 loses digits in float32.
        self.register_buffer("alphas_cumprod", alphas_cumprod.double(), persistent=False)

    @classmethod
    def from_scheduler_config(cls, config: dict[str, Any]) -> "NoiseSchedule":
        """Build from a diffusers scheduler config (``scheduler/scheduler_config.json``)."""
        from diffusers import DDPMScheduler

        known = {k: v for k, v in dict(config).items() if not k.startswith("_")}
        scheduler = DDPMScheduler.from_config(known)
        return cls(scheduler.alphas_cumprod.clone(), scheduler.config.prediction_type, known)

    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def alpha_sigma(self, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """√ā_t and √(1-ā_t), broadcast against ``like`` (B, C, H, W). ``t`` is an integer tensor (B,)."""
        abar = self.alphas_cumprod[t.long()]
        return _expand(abar.sqrt(), like), _expand((1 - abar).sqrt(), like)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """q(x, t, ε) = √ā_t x + √(1-ā_t) ε."""
        alpha, sigma = self.alpha_sigma(t, x0)
        return alpha * x0 + sigma * noise

    def split_prediction(self, output: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(x̂₀, ε̂) from a network output of this schedule's prediction type."""
        alpha, sigma = self.alpha_sigma(t, x_t)
        if self.prediction_type == "epsilon":
            eps = output
            x0 = (x_t - sigma * eps) / alpha
        elif self.prediction_type == "v_prediction":
            x0 = alpha * x_t - sigma * output
            eps = sigma * x_t + alpha * output
        else:
            x0 = output
            eps = (x_t - alpha * x0) / sigma
        return x0, eps

    def training_target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """What a network of this prediction type should output for x_t = q(x0, t, noise)."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            alpha, sigma = self.alpha_sigma(t, x0)
            return alpha * noise - sigma * x0
        return x0

    def ddim_timesteps(self, num_steps: int) -> list[int]:
        """Decreasing timesteps of a ``num_steps`` deterministic DDIM run, "trailing" spacing.

        Trailing spacing starts at t = T-1, so even a 1-step run starts from pure noise (diffusers' default
        "leading" spacing would start a 1-step run at t = 0).

        >>> NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000}).ddim_timesteps(4)
        [999, 749, 499, 249]
        """
        if num_steps < 1 or num_steps > self.num_timesteps:
            raise ValueError(f"num_steps must be in [1, {self.num_timesteps}], got {num_steps}")
        step = self.num_timesteps / num_steps
        return [int(round(self.num_timesteps - i * step)) - 1 for i in range(num_steps)]
