"""The generator loss terms as units (the shape of NVlabs/edm ``training/loss.py`` and SiD's ``sid_loss.py``):
each term is a small class that owns its hyperparameters, its set-up (L_reg's pair cache, L_dmd's fake score),
the inputs it wants f to see and its loss. The maths lives in ``losses/sign.py``; docs/method.md has the equations.

The contract, in the order the module calls it:

- ``bind(context)``: once, at construction; ``TermContext`` is everything a term may use of its module (f, its
  EMA, the frozen teacher, the re-noising schedule and the sampler's highest level, d(·,·), ``update``);
- ``setup(strategy)``: every rank, once the module is on its device (collectives allowed);
- each generator step, ``inputs(step) -> (inputs, targets)`` (extra tensors f must see, run in one batched
  forward with the others, and whatever ``loss`` needs besides) then ``loss(step, outputs, targets)``, the
  unweighted scalar, where ``outputs`` are f of this term's inputs under the same keys and ``step.f_z`` is f(z);
- for a term that trains a network of its own: ``optimizers()`` and, every batch, ``auxiliary_update``.

Adding a term is one class here (or anywhere importable), one YAML entry (``extra_losses``) and its test::

    model:
      init_args:
        extra_losses:
          - class_path: my_package.MyTerm
            init_args: {weight: 0.5}
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from signs_lightning.core.distributed import DistributedStrategy
from signs_lightning.diffusion.ode_solvers import SOLVERS
from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.diffusion.score_model import ScoreModel
from signs_lightning.diffusion.teacher_pairs import TeacherPairs, load_or_generate_pairs
from signs_lightning.losses.distances import DistanceFn
from signs_lightning.losses.sign import (
    denoising_loss,
    dmd_loss,
    flow_pair,
    idempotence_loss,
)

# update(loss, optimizer, name, parameters) -> applied: the module's one update of one network (backward, non-finite
# check, clip, optimizer and LR-scheduler step; ``GeneratorModule.update``).
UpdateFn = Callable[[Tensor, Any, str, Callable[[], Iterable[Tensor]]], bool]
TermInputs = tuple[dict[str, Tensor], Any]


@dataclass(frozen=True)
class TermContext:
    """What a term may use of the module that trains it, fixed at construction.

    student: f (trainable). ema: f's EMA network or None. teacher: the frozen teacher, or None (IGN's DCGAN).
    schedule: the re-noising schedule. sampler_inputs(z): with no gradient, what the module's multi-step sampler
    feeds f after its first step, one state per noise in z (``GeneratorModule.sampler_inputs``).
    distance: d(·,·). update: the module's update of one network (clipping, skipping, LR scheduler).
    """

    student: nn.Module
    ema: nn.Module | None
    teacher: ScoreModel | None
    schedule: NoiseSchedule
    sampler_inputs: Callable[[Tensor], Tensor]
    distance: DistanceFn
    update: UpdateFn


@dataclass(frozen=True)
class Step:
    """One generator step's batch: real images x and noise z, (B, C, H, W); f_z = f(z) with its graph, set once
    the batched forward has run (``None`` while terms make their inputs)."""

    x: Tensor
    z: Tensor
    f_z: Tensor | None = None


class LossTerm(nn.Module):
    """One weighted term of the generator loss. Subclasses set ``name`` (the ``train/loss_<name>`` log key) and
    implement ``loss``; those that need f on inputs of their own return them from ``inputs``.

    Every ``__init__`` argument is stored under its own name (``config`` reads them back for checkpoints).
    """

    name: ClassVar[str] = "term"

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"{type(self).__name__}: weight must be >= 0, got {weight}")
        self.weight = float(weight)
        self.context: TermContext | None = None

    def bind(self, context: TermContext) -> None:
        """Called once by the module's ``__init__``; subclasses that build networks from the teacher extend it."""
        self.context = context

    def setup(self, strategy: DistributedStrategy | None) -> None:
        """Called by every rank once the module is on its device (``on_fit_start``), before the first step."""

    def inputs(self, step: Step) -> TermInputs:
        """(extra inputs f must see this step, batched with the others; what ``loss`` needs besides)."""
        return {}, None

    def loss(self, step: Step, outputs: dict[str, Tensor], targets: Any) -> Tensor:
        """The unweighted term (a scalar with its graph); ``outputs``: f of this term's inputs, same keys."""
        raise NotImplementedError

    def optimizers(self) -> list[tuple[str, Iterable[nn.Parameter], OptimizerCallable, LRSchedulerCallable | None]]:
        """(name, parameters, optimizer factory, LR-scheduler factory) of networks this term trains itself."""
        return []

    def auxiliary_update(self, z: Tensor, f_z: Tensor | None, optimizers: dict[str, Any]) -> dict[str, Tensor]:
        """Every batch, after the generator's (possibly skipped) update: train this term's own networks.
        ``f_z`` is sg[f(z)] when the generator stepped this batch, else None. Returns values to log."""
        return {}

    def config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}`` that rebuilds this term (what checkpoints record)."""
        parameters = list(inspect.signature(type(self).__init__).parameters)[1:]
        return {
            "class_path": f"{type(self).__module__}.{type(self).__qualname__}",
            "init_args": {name: getattr(self, name) for name in parameters},
        }

    def needs_teacher(self) -> ScoreModel:
        """The context's teacher, or a clear error for a module that has none."""
        if self.context.teacher is None:
            raise ValueError(f"{type(self).__name__} needs a teacher; this module has none")
        return self.context.teacher


def build_term(spec: LossTerm | Mapping[str, Any] | None) -> LossTerm | None:
    """A term from an instance, a ``{"class_path", "init_args"}`` dict (YAML, checkpoints) or None (off)."""
    if spec is None or isinstance(spec, LossTerm):
        return spec
    module_name, _, class_name = spec["class_path"].rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)(**spec.get("init_args", {}))


def build_terms(slots: Mapping[str, Any], extra: Iterable[Any] = ()) -> list[LossTerm]:
    """The terms of named slots (each must hold a term of that name, or None) and extra terms, each an own copy (a
    default instance or a term passed to two modules must not share state: pairs, fake score)."""
    terms = []
    for slot, spec in slots.items():
        term = copy.deepcopy(build_term(spec))
        if term is not None and term.name != slot:
            raise ValueError(f"{slot}: expected a {slot!r} term, got {type(term).__name__} (name {term.name!r})")
        terms += [term] if term is not None else []
    terms += [copy.deepcopy(build_term(spec)) for spec in extra]
    if not any(term.weight > 0 for term in terms):
        raise ValueError(f"the loss needs at least one term with weight > 0, got {[t.name for t in terms]}")
    if len({term.name for term in terms}) != len(terms):
        raise ValueError(f"two loss terms share a name: {[t.name for t in terms]}")
    return terms


class Reconstruction(LossTerm):
    """L_rec = d(f(x), x) on real images x: the data are fixed points of f."""

    name = "rec"

    def inputs(self, step: Step) -> TermInputs:
        return {"x": step.x}, None

    def loss(self, step: Step, outputs: dict[str, Tensor], targets: Any) -> Tensor:
        return self.context.distance(outputs["x"], step.x)


class Idempotence(LossTerm):
    """L_idem = d(f_sg(f(z)), f(z)): the gradient reaches θ only through the inner f(z)."""

    name = "idem"

    def loss(self, step: Step, outputs: dict[str, Tensor], targets: Any) -> Tensor:
        return idempotence_loss(self.context.student, step.f_z, self.context.distance)


class Flow(LossTerm):
    """L_flow = d(f(y), sg[f⁻(ŷ)]): y on the teacher's ODE path from a real x, ŷ one teacher DDIM step further
    along it; f is consistent along the flow without a time input.

    Args:
        weight: λ_flow.
        intervals: N of the grid t_0 = 0 < ... < t_N = T − 1 (consistency distillation used 18).
        target: f⁻ is the stop-gradient student (``student``) or its EMA (``ema``; needs ``ema_decay``).
    """

    name = "flow"

    def __init__(self, weight: float = 1.0, intervals: int = 18, target: Literal["student", "ema"] = "student") -> None:
        super().__init__(weight)
        if intervals < 1:
            raise ValueError(f"Flow: intervals must be >= 1, got {intervals}")
        self.intervals = intervals
        self.target = target

    def bind(self, context: TermContext) -> None:
        super().bind(context)
        self.needs_teacher()
        if self.target == "ema" and context.ema is None:
            raise ValueError("Flow(target='ema') needs the module's ema_decay")

    def inputs(self, step: Step) -> TermInputs:
        target_f = self.context.ema if self.target == "ema" else self.context.student
        y, target = flow_pair(target_f, self.context.teacher, step.x, self.intervals)
        return {"y": y}, target

    def loss(self, step: Step, outputs: dict[str, Tensor], targets: Tensor) -> Tensor:
        return self.context.distance(outputs["y"], targets.detach())


class Regression(LossTerm):
    """L_reg = d(f(z_ref), y_ref) on cached (noise, teacher ODE sample) pairs, made once per teacher on the
    training devices and shared out over the ranks.

    Args:
        weight: λ_reg.
        pairs, sampler_steps, seed: how many pairs, the solver's steps (teacher NFE per pair), their noise seed.
        batch_size: pairs per step (default: the data batch size).
        trajectory_fraction: share of the inputs taken from the solver's trajectory instead of its start z_ref: a
            partly-noised state of the same ODE path, with the same target y_ref. These are the inputs the
            multi-step sampler feeds f, and the target is a sample, not the blurry posterior mean.
        cache_dir: where the pairs are cached (default ``$SIGNS_CACHE``).
        solver: the deterministic ODE solver that makes y_ref from z_ref: ``ddim`` (default), ``dpmsolver++`` or
            ``unipc`` (diffusers' multistep solvers; ``diffusion/ode_solvers.py``). With ``sampler_steps`` it is
            part of the cache key.
    """

    name = "reg"

    def __init__(
        self,
        weight: float = 1.0,
        pairs: int = 4000,
        sampler_steps: int = 10,
        seed: int = 0,
        batch_size: int | None = None,
        trajectory_fraction: float = 0.0,
        cache_dir: str | None = None,
        solver: str = "ddim",
    ) -> None:
        super().__init__(weight)
        if solver not in SOLVERS:
            raise ValueError(f"Regression: solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        if pairs < 1:
            raise ValueError(
                f"Regression: pairs must be a positive integer (how many teacher pairs L_reg fits), got {pairs}"
            )
        if not 0 <= trajectory_fraction <= 1:
            raise ValueError(f"Regression: trajectory_fraction must be in [0, 1], got {trajectory_fraction}")
        if trajectory_fraction > 0 and sampler_steps < 2:
            raise ValueError(
                f"Regression: trajectory_fraction > 0 needs a trajectory: sampler_steps >= 2, got {sampler_steps}"
            )
        self.pairs, self.sampler_steps, self.seed = pairs, sampler_steps, seed
        self.batch_size, self.trajectory_fraction, self.cache_dir = batch_size, trajectory_fraction, cache_dir
        self.solver = solver
        self.cached: TeacherPairs | None = None

    def bind(self, context: TermContext) -> None:
        super().bind(context)
        self.needs_teacher()

    def setup(self, strategy: DistributedStrategy | None) -> None:
        if self.cached is None:
            self.cached = load_or_generate_pairs(
                self.context.teacher,
                self.pairs,
                self.sampler_steps,
                self.seed,
                self.cache_dir,
                trajectory=self.trajectory_fraction > 0,
                strategy=strategy,
                solver=self.solver,
            )

    def inputs(self, step: Step) -> TermInputs:
        """(z_ref, or with probability ``trajectory_fraction`` a random state of z_ref's solver trajectory; y_ref)."""
        pairs, device = self.cached, step.x.device
        size = self.batch_size or step.x.shape[0]
        index = torch.randint(0, pairs.z.shape[0], (size,))
        inputs = pairs.z[index]
        if pairs.trajectory is not None:
            states = pairs.trajectory[index, torch.randint(0, pairs.trajectory.shape[1], (size,))]
            on_path = (torch.rand(size) < self.trajectory_fraction).reshape(-1, 1, 1, 1)
            inputs = torch.where(on_path, states, inputs)
        return {"z_ref": inputs.to(device)}, pairs.y[index].to(device)

    def loss(self, step: Step, outputs: dict[str, Tensor], targets: Tensor) -> Tensor:
        return self.context.distance(outputs["z_ref"], targets)


class DataRegression(LossTerm):
    """L_data = d(f(x_t), sg[Φ(x_t, t)]) on real images noised to a random level: x_t = q(x, t, ε),
    t ~ U{t_min·T .. t_max·T}, and Φ the teacher's deterministic DDIM in ``sampler_steps`` steps from (x_t, t) down
    to t = 0.

    x_t is what an informed editor feeds f (a noisy image at its own level, SDEdit's start); L_reg's trajectories
    from pure noise reach such states only through the teacher's marginals, and L_dmd never. f learns to finish the
    teacher's ODE from a real noisy image in one step. Cheap: a few teacher steps from t ≤ t_max.

    Args:
        weight: λ_data.
        t_min, t_max: the levels, as fractions of T.
        sampler_steps: the teacher's DDIM steps per target.
        fraction: share of the data batch used.
    """

    name = "data_reg"

    def __init__(
        self,
        weight: float = 1.0,
        t_min: float = 0.02,
        t_max: float = 0.6,
        sampler_steps: int = 8,
        fraction: float = 0.5,
    ) -> None:
        super().__init__(weight)
        if not 0 <= t_min < t_max <= 1:
            raise ValueError(f"DataRegression: need 0 <= t_min < t_max <= 1, got {t_min}, {t_max}")
        if sampler_steps < 1:
            raise ValueError(f"DataRegression: sampler_steps must be >= 1, got {sampler_steps}")
        if not 0 < fraction <= 1:
            raise ValueError(f"DataRegression: fraction must be in (0, 1], got {fraction}")
        self.t_min, self.t_max, self.sampler_steps, self.fraction = t_min, t_max, sampler_steps, fraction

    def bind(self, context: TermContext) -> None:
        super().bind(context)
        self.needs_teacher()

    def inputs(self, step: Step) -> TermInputs:
        teacher, last = self.context.teacher, self.context.teacher.schedule.num_timesteps - 1
        x = step.x[: max(1, round(self.fraction * step.x.shape[0]))]
        t = torch.randint(round(self.t_min * last), round(self.t_max * last) + 1, (x.shape[0],), device=x.device)
        x_t = teacher.q_sample(x, t, torch.randn_like(x))
        with teacher.target_mode():
            return {"noised_data": x_t}, teacher.ddim_from(x_t, t, self.sampler_steps)

    def loss(self, step: Step, outputs: dict[str, Tensor], targets: Tensor) -> Tensor:
        return self.context.distance(outputs["noised_data"], targets)


class DistributionMatching(LossTerm):
    """L_dmd with its fake score s_ψ and s_ψ's own loss and optimizer, as one unit (as SiD's ``sid_loss.py``).

    L_dmd = ½·mean((x_g − sg[x_g − g])²), g = (fake x̂₀ − teacher x̂₀)/w at x_t = q(sg[f(z)], t, ε); s_ψ (a
    trainable copy of the teacher) is trained every batch with the teacher's own denoising loss on sg[f(z)].

    Args:
        weight: λ_dmd.
        t_min, t_max: t ~ U[t_min·T, t_max·T].
        optimizer, lr_scheduler: the fake score's optimizer (default AdamW, lr 1e-3) and LR-scheduler factories.
        renoised_fraction: share of the batch on which L_dmd also matches the multi-step sampler's later steps:
            x_g = f(x_k) for x_k an input the sampler feeds f after its first step (``TermContext.sampler_inputs``:
            its own re-noising rule and levels; DMD2's backward simulation, the generator matched on the inputs it
            sees at inference). These samples are extra, f(z)'s whole batch stays matched.
        renoised_fake: the fake score learns from the same mix (f(z) and f(x_k)), so that it models what L_dmd
            matches; else from f(z) alone.
    """

    name = "dmd"

    def __init__(
        self,
        weight: float = 1.0,
        t_min: float = 0.02,
        t_max: float = 0.98,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        renoised_fraction: float = 0.0,
        renoised_fake: bool = False,
    ) -> None:
        super().__init__(weight)
        if not 0 <= t_min < t_max <= 1:
            raise ValueError(f"DistributionMatching: need 0 <= t_min < t_max <= 1, got {t_min}, {t_max}")
        if not 0 <= renoised_fraction <= 1:
            raise ValueError(f"DistributionMatching: renoised_fraction must be in [0, 1], got {renoised_fraction}")
        self.t_min, self.t_max = t_min, t_max
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.renoised_fraction, self.renoised_fake = renoised_fraction, renoised_fake
        self.fake_score: ScoreModel | None = None

    def bind(self, context: TermContext) -> None:
        super().bind(context)
        # Initialised from the teacher, as in DMD.
        self.fake_score = self.needs_teacher().trainable_copy()

    def inputs(self, step: Step) -> TermInputs:
        count = round(self.renoised_fraction * step.z.shape[0])
        if count == 0:
            return {}, None
        return {"renoised": self.context.sampler_inputs(step.z[:count])}, None

    def loss(self, step: Step, outputs: dict[str, Tensor], targets: Any) -> Tensor:
        x_g = torch.cat([step.f_z, outputs["renoised"]]) if "renoised" in outputs else step.f_z
        return dmd_loss(x_g, self.context.teacher, self.fake_score, self.t_min, self.t_max)

    def optimizers(self) -> list[tuple[str, Iterable[nn.Parameter], OptimizerCallable, LRSchedulerCallable | None]]:
        optimizer = self.optimizer or functools.partial(torch.optim.AdamW, lr=1e-3)
        return [("fake_score", self.fake_score.parameters(), optimizer, self.lr_scheduler)]

    def auxiliary_update(self, z: Tensor, f_z: Tensor | None, optimizers: dict[str, Any]) -> dict[str, Tensor]:
        count = round(self.renoised_fraction * z.shape[0]) if self.renoised_fake else 0
        with torch.no_grad():
            if f_z is None:
                f_z = self.context.student(z)
            if count:
                f_z = torch.cat([f_z, self.context.student(self.context.sampler_inputs(z[:count]))])
        loss = denoising_loss(self.fake_score, f_z)
        self.context.update(loss, optimizers["fake_score"], "fake_score", self.fake_score.parameters)
        return {"train/loss_denoise": loss.detach()}

    def config(self) -> dict[str, Any]:
        # Optimizer factories are code, not data: the checkpoint records the term's numbers; the YAML config (saved
        # beside the logs by LightningCLI) records the factories.
        config = super().config()
        config["init_args"] = {k: v for k, v in config["init_args"].items() if k not in ("optimizer", "lr_scheduler")}
        return config
