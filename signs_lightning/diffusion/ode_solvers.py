"""Deterministic solvers of the teacher's probability-flow ODE, from noise z to a sample x0: the teacher sampling
behind L_reg's pair targets.

``solver`` names one of ``SOLVERS``:

- ``ddim``: this package's own DDIM (``ScoreModel.ddim_trajectory``; first order, η = 0), unchanged.
- ``dpmsolver++``: diffusers' ``DPMSolverMultistepScheduler`` with ``algorithm_type="dpmsolver++"`` (DPM-Solver++(2M),
  data prediction).
- ``unipc``: diffusers' ``UniPCMultistepScheduler`` (UniPC-2, ``bh2``, predictor-corrector on the model outputs
  already computed, so no extra NFE).

All three use ``steps`` teacher calls (NFE) on the same timestep grid, ``NoiseSchedule.ddim_timesteps(steps)``
("trailing" spacing: the first call is at t = T − 1, so noise z ~ N(0, I) is the ODE's start for any ``steps``), and
the last step lands at ā = 1, i.e. returns the teacher's clean estimate. They integrate the same ODE, so at many
steps they agree (``tests/test_ode_solvers.py`` measures it); at few steps the multistep solvers are the more
accurate ones.

The diffusers schedulers are built from the teacher's own scheduler config (``NoiseSchedule.scheduler_config``:
its betas, ``prediction_type`` and ``num_train_timesteps``) with these settings forced, so that they solve the ODE
our DDIM solves and nothing else (``SOLVER_SETTINGS``):

- ``timestep_spacing="trailing"``: the teacher's DDPM config usually says ``leading`` (diffusers' DDPM default), which
  would start a few-step run below T − 1 and disagree with our DDIM; the grid is checked against
  ``ddim_timesteps`` on every call.
- ``trained_betas``: the teacher's own betas as ``DDPMScheduler`` computes them (the same ā_t as
  ``NoiseSchedule``, checked), so every beta schedule diffusers' DDPM knows works, ``sigmoid`` included, which
  the multistep schedulers do not implement themselves; ``rescale_betas_zero_snr`` off (the betas are final).
- no noise is ever injected: ``algorithm_type="dpmsolver++"`` (not ``sde-dpmsolver++``), and ``step`` is given
  no generator.
- ``final_sigmas_type="zero"`` (the last step goes to σ = 0, i.e. returns x̂₀, as DDIM's last step does),
  ``use_karras_sigmas`` and the other sigma re-spacings off (they would change the grid), ``thresholding`` off
  (our DDIM does not clip or threshold either), ``euler_at_final`` off.
- diffusers' defaults kept: ``solver_order=2`` (the multistep warm-up starts at first order),
  ``lower_order_final=True`` (below 15 steps the last steps drop to lower order, diffusers' stabiliser for few
  steps; deterministic), DPM-Solver++'s ``solver_type="midpoint"``, UniPC's ``bh2`` with ``predict_x0``.

A fresh scheduler is built per call (diffusers' schedulers keep per-run state), and everything it does is
element-wise per sample, so pair i's result depends only on its own z_i: batching and sharding over ranks change
nothing but float rounding of the UNet's batched kernels.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import Tensor

from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.diffusion.score_model import ScoreModel

Solver = Literal["ddim", "dpmsolver++", "unipc"]
SOLVERS: tuple[str, ...] = ("ddim", "dpmsolver++", "unipc")

# Forced on top of the teacher's scheduler config for each diffusers solver (see the module docstring).
_COMMON = {
    "timestep_spacing": "trailing",
    "steps_offset": 0,
    "final_sigmas_type": "zero",
    "use_karras_sigmas": False,
    "use_exponential_sigmas": False,
    "use_beta_sigmas": False,
    "use_flow_sigmas": False,
    "thresholding": False,
    "rescale_betas_zero_snr": False,
    "use_dynamic_shifting": False,
    "solver_order": 2,
    "lower_order_final": True,
}
SOLVER_SETTINGS: dict[str, dict[str, Any]] = {
    "dpmsolver++": {
        **_COMMON,
        "algorithm_type": "dpmsolver++",
        "solver_type": "midpoint",
        "euler_at_final": False,
        "use_lu_lambdas": False,
        "lambda_min_clipped": -float("inf"),
        "variance_type": None,
    },
    "unipc": {**_COMMON, "predict_x0": True, "solver_type": "bh2", "disable_corrector": []},
}


def check_solver(solver: str) -> str:
    """``solver`` if it is one of ``SOLVERS``, else a one-line ``ValueError`` naming the accepted values."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r}: accepted values are {', '.join(SOLVERS)}")
    return solver


def solver_tag(solver: str) -> str:
    """``solver`` as it appears in file names: ``ddim``, ``dpmsolverpp``, ``unipc``."""
    return check_solver(solver).replace("+", "p")


def diffusers_scheduler(schedule: NoiseSchedule, solver: str) -> Any:
    """A fresh diffusers multistep scheduler (``dpmsolver++`` or ``unipc``) for ``schedule``'s teacher.

    Raises:
        ValueError: ``solver`` is not a diffusers solver of ``SOLVERS``.
        RuntimeError: the scheduler's ā_t differ from ``schedule``'s (it would solve another ODE).
    """
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    classes = {"dpmsolver++": DPMSolverMultistepScheduler, "unipc": UniPCMultistepScheduler}
    if check_solver(solver) not in classes:
        raise ValueError(f"{solver!r} is not a diffusers solver: accepted values are {', '.join(classes)}")
    cls = classes[solver]
    config = schedule.scheduler_config
    if config is None:  # a schedule built from ā_t alone: its betas are 1 − ā_t / ā_{t−1}
        abar = schedule.alphas_cumprod.cpu()
        betas = 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])
        config = {"num_train_timesteps": schedule.num_timesteps, "trained_betas": betas.tolist()}
    else:
        config = {**config, "trained_betas": DDPMScheduler.from_config(config).betas.tolist()}
    config = {**config, "prediction_type": schedule.prediction_type, **SOLVER_SETTINGS[solver]}
    accepted = inspect.signature(cls.__init__).parameters
    scheduler = cls.from_config({key: value for key, value in config.items() if key in accepted})
    expected = schedule.alphas_cumprod.cpu().float()
    if not torch.allclose(scheduler.alphas_cumprod.float(), expected, rtol=1e-6, atol=0):
        raise RuntimeError(f"{cls.__name__} built from the teacher's scheduler config has other alphas_cumprod")
    return scheduler


@torch.no_grad()
def trajectory(teacher: ScoreModel, z: Tensor, solver: str, steps: int) -> Iterator[Tensor]:
    """The states of a ``steps``-NFE run of ``solver`` from noise z (B, C, H, W), one at a time, on z's device.

    Yields x at each level of ``teacher.schedule.ddim_timesteps(steps)`` after the first (``steps − 1``
    partly-noised states, (B, C, H, W)), then x0: the points of one ODE trajectory that start at z. For ``unipc``
    the partly-noised states are the predictor's (the ones the teacher is evaluated at; the corrector refines each
    one inside the next step).
    """
    check_solver(solver)
    if solver == "ddim":
        yield from teacher.ddim_trajectory(z, steps)
        return
    grid = teacher.schedule.ddim_timesteps(steps)  # also validates steps
    scheduler = diffusers_scheduler(teacher.schedule, solver)
    scheduler.set_timesteps(steps, device=z.device)
    if scheduler.timesteps.tolist() != grid:
        raise RuntimeError(f"{solver} timesteps {scheduler.timesteps.tolist()} differ from the DDIM grid {grid}")
    x = z
    for t in scheduler.timesteps:
        output = teacher(x, t.expand(x.shape[0]))
        x = scheduler.step(output, t, x).prev_sample
        yield x


def solve(teacher: ScoreModel, z: Tensor, solver: str, steps: int) -> Tensor:
    """x0 (B, C, H, W) of a ``steps``-NFE run of ``solver`` (one of ``SOLVERS``) from noise z (B, C, H, W)."""
    *_, x0 = trajectory(teacher, z, solver, steps)
    return x0
