"""The maths of SIGN's loss terms (docs/method.md §4, "Loss terms"); ``losses/terms.py`` wraps them as units.

f is the student ``IdempotentGenerator``; teacher and fake score are ``ScoreModel``s. Images are (B, C, H, W).
Every teacher and fake-score evaluation that only provides a target runs under the teacher's ``target_mode``
(``torch.no_grad``, or ``torch.inference_mode`` when the module's ``teacher_inference_mode`` is on).

Terms whose only trainable call is a plain f(input) take that output (``f_x``, ``f_y``, ``f_z_ref``) rather than
f itself, so the module can run all of one step's f calls as one batched forward (GroupNorm UNets are
per-sample, so batching changes nothing but speed).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from signs_lightning.diffusion.score_model import ScoreModel
from signs_lightning.losses.distances import DistanceFn


def with_detached_parameters(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """f_sg: ``module`` evaluated with its parameters detached, so gradients flow only through its input.

    Uses ``torch.func.functional_call`` on the live weights: no copy of the network per step.
    """
    params = {name: p.detach() for name, p in module.named_parameters()}
    params.update(dict(module.named_buffers()))
    return lambda x: functional_call(module, params, (x,))


def reconstruction_loss(f_x: Tensor, x: Tensor, distance: DistanceFn) -> Tensor:
    """L_rec = d(f(x), x) on real images x: the data are fixed points of f. ``f_x`` = f(x) with graph."""
    return distance(f_x, x)


def idempotence_loss(f: nn.Module, f_z: Tensor, distance: DistanceFn) -> Tensor:
    """L_idem = d(f_sg(f(z)), f(z)), with f_z = f(z) already computed (graph attached).

    The gradient reaches θ only through the inner f(z): the outer application uses detached parameters.
    """
    return distance(with_detached_parameters(f)(f_z), f_z)


def flow_timesteps(num_timesteps: int, num_intervals: int) -> Tensor:
    """The grid t_0 = 0 < t_1 < ... < t_N = T-1 of L_flow, shape (N + 1,).

    >>> flow_timesteps(1000, 4).tolist()
    [0, 250, 500, 749, 999]
    """
    return torch.linspace(0, num_timesteps - 1, num_intervals + 1).round().long()


def flow_pair(target_f: nn.Module, teacher: ScoreModel, x: Tensor, num_intervals: int) -> tuple[Tensor, Tensor]:
    """(y, sg[f⁻(ŷ)]): a point of the teacher's ODE trajectory and L_flow's target for f(y).

    n ~ U{0..N-1}; y = q(x, t_{n+1}, ε); ŷ = teacher DDIM step t_{n+1} → t_n (x̂₀ when t_n = 0);
    f⁻ is ``target_f`` (the student itself or its EMA), evaluated without gradient.
    """
    grid = flow_timesteps(teacher.schedule.num_timesteps, num_intervals).to(x.device)
    n = torch.randint(0, num_intervals, (x.shape[0],), device=x.device)
    t_next, t_prev = grid[n + 1], grid[n]
    y = teacher.q_sample(x, t_next, torch.randn_like(x))
    with teacher.target_mode():
        y_hat = teacher.ddim_step(y, t_next, torch.where(t_prev == 0, torch.full_like(t_prev, -1), t_prev))
        return y, target_f(y_hat)


def dmd_loss(
    x_g: Tensor,
    teacher: ScoreModel,
    fake_score: ScoreModel,
    t_min_fraction: float = 0.02,
    t_max_fraction: float = 0.98,
    t: Tensor | None = None,
    noise: Tensor | None = None,
) -> Tensor:
    """L_dmd = ½·mean((x_g − sg[x_g − g])²), g = (k − r)/w: distribution matching (DMD).

    x_t = q(sg[x_g], t, ε), t ~ U[t_min, t_max]·T; r = teacher x̂₀(x_t, t); k = fake x̂₀(x_t, t);
    w = per-sample mean |x_g − r|. The gradient with respect to x_g is g / numel: away from the fake score's
    estimate, towards the teacher's. ``t`` (B,) and ``noise`` (like x_g) are drawn when not given.
    """
    num_timesteps = teacher.schedule.num_timesteps
    if t is None:
        low, high = int(t_min_fraction * num_timesteps), int(t_max_fraction * num_timesteps)
        t = torch.randint(low, high + 1, (x_g.shape[0],), device=x_g.device)
    noise = torch.randn_like(x_g) if noise is None else noise
    with teacher.target_mode():
        x_t = teacher.q_sample(x_g.detach(), t, noise)
        real = teacher.predict_x0(x_t, t)
        fake = fake_score.predict_x0(x_t, t)
        weight = (x_g.detach() - real).abs().mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-8)
        grad = (fake - real) / weight
        target = x_g.detach() - grad
    return 0.5 * (x_g - target).pow(2).mean()


def denoising_loss(score: ScoreModel, x0: Tensor) -> Tensor:
    """L_denoise: the diffusion training loss of ``score`` (its own prediction type) on clean images x0.

    Used for the fake score on sg[f(z)], and for training teachers on data.
    """
    t = torch.randint(0, score.schedule.num_timesteps, (x0.shape[0],), device=x0.device)
    noise = torch.randn_like(x0)
    target = score.schedule.training_target(x0, noise, t)
    return (score(score.q_sample(x0, t, noise), t) - target).pow(2).mean()
