"""What the generator LightningModules (SIGN, IGN) share: the update step, EMA, step budget, per-rank randomness,
sampling, checkpoints, validation, test and prediction."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from signs_lightning.core.distributed import DistributedStrategy
from signs_lightning.core.errors import SignsError
from signs_lightning.core.randomness import run_seed, seed_step, seeded_generator
from signs_lightning.data.errors import check_matches_model
from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.diffusion.score_model import ScoreModel
from signs_lightning.evaluation import FIDEvaluator
from signs_lightning.evaluation.grid import nfe_rows, sampler_grid
from signs_lightning.evaluation.keys import DIAGNOSTICS_PREFIX, IDEMPOTENCE_KEY, RECONSTRUCTION_KEY, metric_key
from signs_lightning.evaluation.scoring import nfe_samplers, score_model
from signs_lightning.inference import sampling
from signs_lightning.losses import Distance, distance_fn
from signs_lightning.losses.objective import Objective
from signs_lightning.losses.terms import LossTerm, TermContext, build_terms
from signs_lightning.modules.ema import EMA
from signs_lightning.modules.scored import ScoredModule

TEACHER_PREFIX = "teacher."


def default_schedule() -> NoiseSchedule:
    """DDPM's linear β schedule (1e-4..0.02, T = 1000): the re-noising schedule of a model with no teacher."""
    return NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000, "beta_schedule": "linear"})


class NonFiniteUpdates(SignsError):
    """Too many updates in a row had a non-finite gradient."""


@dataclass
class StepTools:
    """How ``GeneratorModule.update`` back-propagates and clips. The default (``None`` on the module) is Lightning's
    (``manual_backward``, ``clip_gradients``: precision plugins, DDP); a bare PyTorch loop injects plain ones, so
    both run the same step function."""

    backward: Callable[[Tensor], None]
    clip: Callable[[Any, float], None]


def bare_step_tools(module: "GeneratorModule") -> StepTools:
    """Plain PyTorch: ``loss.backward()`` and ``clip_grad_norm_`` over the optimizer's parameters."""

    def clip(optimizer: Any, max_norm: float) -> None:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)

    return StepTools(backward=lambda loss: loss.backward(), clip=clip)


class GeneratorModule(ScoredModule):
    """Base of the one-step generator modules (SIGN, IGN, an exported generator); manual optimisation.

    Subclasses choose f, the teacher, the loss-term slots and their defaults; the training step is shared: every
    ``gen_every`` batches f takes one update on the weighted sum of the terms (``losses.objective.Objective``),
    and every batch the terms train their own networks. The arguments below are the subclasses' too (they pass
    them through ``**kwargs``).

    Args:
        extra_losses: further ``LossTerm`` s (new research terms), added to the generator loss.
        gen_every: the generator steps once every ``gen_every`` batches; terms' own networks (the fake score)
            every batch.
        generator_warmup: the first this many batches train only the terms' own networks (DMD2's fake-score
            warm-up: the fake score learns f's current samples before L_dmd's gradient reaches f).
        max_generator_steps: stop after this many generator steps (``trainer.max_steps`` counts the steps of
            every optimizer).
        gradient_clip_norm: clip each network's gradient norm (``None``: no clipping).
        ema_decay: EMA of the generator (``None``: none); samples and metrics use the EMA when present.
        sample_nfe: NFE settings of the validation sample grid (the evaluator's own ``nfe`` sets the metrics').
        renoise_max_level: the multi-step sampler re-noises to levels from this fraction of T down, spaced as
            ``renoise_spacing`` says (``sampling.renoise_timesteps``).
        renoise_noise: what the multi-step sampler re-noises with: ``fresh`` noise at every level, the
            ``initial`` noise z it started from, or the noise its last step implies (``path``: DDIM with f as the
            denoiser); ``sampling.multistep``.
        renoise_eta: with ``renoise_noise`` ``initial`` or ``path``, how much fresh noise (from the sampler's
            generator) is mixed into the rule's noise at each level, in [0, 1]: ε ← √(1 − η²)·ε + η·ε_fresh
            (DDIM's η; 0: none, the rule as it is; > 0 with ``fresh`` is an error). ``sampling.multistep``.
        renoise_spacing: the multi-step sampler's ``nfe − 1`` levels: ``even`` (evenly spaced from
            ``renoise_max_level``·(T − 1) down) or ``constant`` (all at that top level). Why both: with the path
            rule, re-noising to the same level twice is a no-op (the implied noise puts f's input back where it
            was); fresh noise mixed in (eta) makes repeated steps at one level refine instead. Measured on the
            MNIST stage-1 model, 3 seeds: constant 0.3·T with eta 0.4 gives 2.84 / 2.80 / 2.81 LeNet FD at
            2 / 3 / 4 NFE, against the even path rule's 2.95 / 3.50 / 4.25.
        generator_lr_scheduler: f's optional LR-scheduler factory (LightningCLI ``class_path`` config); it steps
            after each applied update (e.g. ``torch.optim.lr_scheduler.LinearLR`` with ``start_factor: 0.01,
            total_iters: 1000``: DMD2's warm-up).
        evaluator: optional ``FIDEvaluator`` run in the validation and test hooks.
        max_consecutive_skips: updates with a non-finite gradient are skipped; this many in a row stop the fit.
        predict_samples: how many samples ``signs predict`` generates (sample i from seed (run seed, i)).
        predict_nfe: the NFE of ``signs predict``'s samples.
        compile: a speed switch, like the four below (each measured on and off by ``python -m benchmarks.speed``;
            none changes the checkpoint format): ``torch.compile`` f, the teacher and the terms' networks (the fake
            score) once the fit starts (``nn.Module.compile``: the state-dict keys keep their names). The first
            steps pay the compilation.
        channels_last: f, its EMA, the teacher and the fake score, and the training batches, in the channels-last
            memory format (NHWC convolutions and norms). The only switch that changes what is trained beyond float
            rounding: the terms' ``randn_like`` fill channels-last tensors in memory order, other draws.
        foreach_ema: the EMA updated by fused ``torch._foreach_*`` kernels with its decay computed on the device
            (``EMA``'s ``foreach``), instead of a loop over the parameters reading the update count to the host.
        one_pass_gradients: one pass over the gradients per update: their total norm, computed once, decides the
            skip and scales the clip (else the finiteness check and the clip each walk every gradient).
        teacher_inference_mode: the teacher's and the fake score's target-only calls run under
            ``torch.inference_mode`` instead of ``torch.no_grad`` (``ScoreModel.target_mode``).

    Keyword-only, given by the subclass:
        student: f, (B, C, H, W) → (B, C, H, W); the trained network.
        teacher: frozen ``ScoreModel`` or ``None``; never saved in checkpoints (only its source and fingerprint).
        terms: the named loss-term slots (instances, ``{class_path, init_args}`` or None); ``None``: no training.
        distance: d(·,·) of every term that compares images.
        generator_optimizer: f's optimizer factory.
        batched_forward: see ``Objective``.
        schedule: the re-noising schedule; default the teacher's, else DDPM's linear one (a generator loaded from
            an exported folder has a schedule but no teacher).
    """

    grid_key = "samples/nfe_rows_then_ffz"

    def __init__(
        self,
        *,
        student: nn.Module,
        teacher: ScoreModel | None,
        terms: Mapping[str, LossTerm | dict | None] | None = None,
        distance: Distance = "mse",
        generator_optimizer: OptimizerCallable = functools.partial(torch.optim.AdamW, lr=1e-3),
        batched_forward: bool = True,
        schedule: NoiseSchedule | None = None,
        extra_losses: list[LossTerm] = [],
        gen_every: int = 1,
        generator_warmup: int = 0,
        max_generator_steps: int | None = None,
        gradient_clip_norm: float | None = 10.0,
        ema_decay: float | None = 0.999,
        sample_nfe: list[int] = [1, 2],
        renoise_max_level: float = sampling.DEFAULT_RENOISE_MAX_LEVEL,
        renoise_noise: sampling.RenoiseNoise = "fresh",
        renoise_eta: float = 0.0,
        renoise_spacing: sampling.RenoiseSpacing = "even",
        generator_lr_scheduler: LRSchedulerCallable | None = None,
        evaluator: FIDEvaluator | None = None,
        max_consecutive_skips: int = 10,
        predict_samples: int = 64,
        predict_nfe: int = 1,
        compile: bool = False,
        channels_last: bool = False,
        foreach_ema: bool = True,
        one_pass_gradients: bool = True,
        teacher_inference_mode: bool = True,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if gen_every < 1:
            raise ValueError(f"gen_every must be >= 1, got {gen_every}")
        if generator_warmup < 0:
            raise ValueError(f"generator_warmup must be >= 0, got {generator_warmup}")
        if max_generator_steps is not None and max_generator_steps < 1:
            # 0 or less would end the fit before its first step, leaving an untrained last.ckpt and status 0.
            raise ValueError(
                f"max_generator_steps must be a positive integer (or null for no limit), got {max_generator_steps}"
            )
        if any(k < 1 for k in sample_nfe):
            raise ValueError(f"sample_nfe entries must be >= 1, got {sample_nfe}")
        sampling.check_renoise_settings(renoise_noise, renoise_max_level, renoise_spacing, renoise_eta)
        if max_consecutive_skips < 1:
            raise ValueError(f"max_consecutive_skips must be >= 1, got {max_consecutive_skips}")
        if predict_samples < 1 or predict_nfe < 1:
            raise ValueError(f"predict_samples and predict_nfe must be >= 1, got {predict_samples}, {predict_nfe}")
        self.student = student
        self.teacher = teacher
        if schedule is None:
            schedule = teacher.schedule if teacher is not None else default_schedule()
        self.schedule = schedule
        self.ema = EMA(student, ema_decay, foreach=foreach_ema) if ema_decay is not None else None
        self.max_generator_steps = max_generator_steps
        self.gradient_clip_norm = gradient_clip_norm
        self.sample_nfe = list(sample_nfe)
        self.renoise_max_level = renoise_max_level
        self.renoise_noise = renoise_noise
        self.renoise_eta = renoise_eta
        self.renoise_spacing = renoise_spacing
        self.evaluator = evaluator
        self.max_consecutive_skips = max_consecutive_skips
        self.predict_samples = predict_samples
        self.predict_nfe = predict_nfe
        # Not ``self.compile``: that is nn.Module's method.
        self.compile_networks = compile
        self.channels_last = channels_last
        self.one_pass_gradients = one_pass_gradients
        self.teacher_inference_mode = teacher_inference_mode
        self.gen_every = gen_every
        self.generator_warmup = generator_warmup
        self.distance = distance_fn(distance)
        self.generator_optimizer = generator_optimizer
        self.generator_lr_scheduler = generator_lr_scheduler
        self.losses = Objective(build_terms(terms, extra_losses) if terms is not None else [], batched_forward)
        self._record_terms()
        # Set by `signs sample`, not init arguments: how many samples a predict batch holds, and f^k(z) (k =
        # predict_nfe, no re-noising) instead of the re-noising sampler.
        self.predict_batch_size = 64
        self.predict_repeat = False
        # Counted here, not read off trainer.global_step, which counts the steps of every optimizer.
        self.generator_steps = 0
        self.global_batches = 0
        self.skipped_updates = 0
        self.consecutive_skips = 0
        # The run's seed, recorded in checkpoints so that a resumed run keeps its random streams.
        self.seed: int | None = None
        self._schedulers: dict[str, Any] = {}
        # The optimizers' names, in the order configure_optimizers returns them.
        self.optimizer_names: list[str] = []
        self.step_tools: StepTools | None = None
        self.losses.bind(
            TermContext(
                student=self.student,
                ema=self.ema.module if self.ema is not None else None,
                teacher=self.teacher,
                schedule=self.schedule,
                sampler_inputs=self.sampler_inputs,
                distance=self.distance,
                update=self.update,
            )
        )

    def _record_terms(self) -> None:
        # Checkpoints record each term as {class_path, init_args} (LightningCLI already gives dicts).
        for key, value in self.hparams.items():
            if isinstance(value, LossTerm):
                self.hparams[key] = value.config()
            elif isinstance(value, list) and any(isinstance(v, LossTerm) for v in value):
                self.hparams[key] = [v.config() if isinstance(v, LossTerm) else v for v in value]

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
        self.prepare_evaluator(stage)

    def on_fit_start(self) -> None:
        if self.seed is None:
            self.seed = run_seed()
        # Here, not in ``setup``: the teacher is on the training device only once the strategy has moved it.
        self.prepare_training(self.trainer.strategy)

    def prepare_training(self, strategy: DistributedStrategy | None) -> None:
        """Once the module is on its training device, before the first step (``on_fit_start``; a bare training
        loop calls it itself): the terms' set-up, then the speed switches."""
        self.losses.setup(strategy)
        # After the set-up: L_reg's cached teacher pairs are made by the plain eager teacher, exactly as before.
        if self.channels_last:
            for network in self._networks(self.sampling_network):
                network.to(memory_format=torch.channels_last)
        if self.teacher is not None:
            self.teacher.inference_targets = self.teacher_inference_mode
        if self.compile_networks:
            # In place (nn.Module.compile): no ``_orig_mod.`` in the state dict. Here and not at construction:
            # the EMA and the fake score are deep copies made before, which must not share f's or the teacher's
            # compiled call.
            for network in self._networks():
                network.compile()

    def _networks(self, *extra: nn.Module) -> list[nn.Module]:
        """f, the teacher, the terms' own networks (the fake score) and ``extra``: the networks a step runs."""
        networks = [self.student, *extra]
        networks += [self.teacher] if self.teacher is not None else []
        return networks + [m for m in self.losses.modules() if isinstance(m, ScoreModel)]

    def configure_optimizers(self) -> list[dict[str, Any]]:
        optimizers = [("generator", self.generator_optimizer(self.student.parameters()), self.generator_lr_scheduler)]
        optimizers += [
            (name, factory(params), scheduler) for name, params, factory, scheduler in self.losses.optimizers()
        ]
        return self.with_schedulers(optimizers)

    # -- optimisation -----------------------------------------------------------------------------------------
    def with_schedulers(
        self, pairs: Iterable[tuple[str, torch.optim.Optimizer, LRSchedulerCallable | None]]
    ) -> list[dict[str, Any]]:
        """``configure_optimizers``' return value for named (optimizer, LR-scheduler factory) pairs.

        Schedulers are stepped by ``update`` after each applied step of their optimizer (manual optimisation: Lightning
        does not step them), and are visible to ``LearningRateMonitor`` under ``lr-<name>``.
        """
        configs = []
        self.optimizer_names = []
        for name, optimizer, scheduler_factory in pairs:
            self.optimizer_names.append(name)
            config: dict[str, Any] = {"optimizer": optimizer}
            self._schedulers[name] = scheduler_factory(optimizer) if scheduler_factory is not None else None
            if self._schedulers[name] is not None:
                config["lr_scheduler"] = {"scheduler": self._schedulers[name], "name": f"lr-{name}"}
            configs.append(config)
        return configs

    def update(self, loss: Tensor, optimizer: Any, name: str, parameters: Callable[[], Iterable[Tensor]]) -> bool:
        """One update of one network: zero grad, backward, non-finite check, clip, optimizer and LR-scheduler step.

        An update whose gradient is not finite is skipped (no weight, optimizer, scheduler or EMA change), counted
        and logged; ``max_consecutive_skips`` in a row raise ``NonFiniteUpdates`` naming the last checkpoint. The
        check reads the all-reduced gradient, so every DDP rank takes the same decision. Under fp16 the precision
        plugin's GradScaler makes that decision instead (it unscales before clipping and skips non-finite steps
        itself). Returns whether the update was applied.
        """
        optimizer.zero_grad(set_to_none=True)
        tools = self.step_tools
        if tools is None:
            self.manual_backward(loss)
        else:
            tools.backward(loss)
        if not self._finite_and_clipped(optimizer, parameters):
            self._skip(name)
            return False
        self.consecutive_skips = 0
        optimizer.step()
        if self._schedulers.get(name) is not None:
            self._schedulers[name].step()
        return True

    def generator_update(self, loss: Tensor, optimizer: Any) -> bool:
        """``update`` of f, then its EMA and the generator-step counter."""
        applied = self.update(loss, optimizer, "generator", self.student.parameters)
        if applied:
            if self.ema is not None:
                self.ema.update(self.student)
            self.generator_steps += 1
        return applied

    def _fp16(self) -> bool:
        """Whether Lightning trains in fp16, whose GradScaler skips non-finite steps itself (and whose scaled
        gradients may overflow before it unscales them)."""
        return self._trainer is not None and str(self.trainer.precision) in ("16-mixed", "16")

    def _finite_and_clipped(self, optimizer: Any, parameters: Callable[[], Iterable[Tensor]]) -> bool:
        """Whether the update's gradient is finite (under fp16 the GradScaler decides, later); if so, it is now
        clipped."""
        if self.one_pass_gradients and not self._fp16():
            return self._check_and_clip(list(parameters()))
        if not (self._fp16() or self._gradient_is_finite(parameters())):
            return False
        self._clip(optimizer)
        return True

    def _gradient_is_finite(self, parameters: Iterable[Tensor]) -> bool:
        norms = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
        return not norms or bool(torch.isfinite(torch.stack(norms).sum()))

    def _clip(self, optimizer: Any) -> None:
        """Clip the gradients' total norm to ``gradient_clip_norm``: Lightning's ``clip_gradients`` (precision
        plugins: fp16 unscales first), or the injected bare one."""
        if self.gradient_clip_norm is None:
            return
        if self.step_tools is None:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_norm, gradient_clip_algorithm="norm")
        else:
            self.step_tools.clip(optimizer, self.gradient_clip_norm)

    def _check_and_clip(self, parameters: list[Tensor]) -> bool:
        """``one_pass_gradients``: whether the total gradient norm is finite and, if so, the gradients clipped by
        that same norm. Lightning's ``clip_gradients`` would compute the norm again; for the precisions that reach
        here (not fp16) it is exactly ``clip_grad_norm_`` over these parameters, which this is, in one pass."""
        with_grad = [p for p in parameters if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in with_grad])
        # The update's one host synchronisation: the skip decision needs the norm's value.
        if not bool(torch.isfinite(norm)):
            return False
        if self.gradient_clip_norm is not None:
            torch.nn.utils.clip_grads_with_norm_(with_grad, self.gradient_clip_norm, norm)
        return True

    def _skip(self, name: str) -> None:
        self.skipped_updates += 1
        self.consecutive_skips += 1
        if self.consecutive_skips >= self.max_consecutive_skips:
            callback = self.trainer.checkpoint_callback if self._trainer is not None else None
            last = (
                getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "") or "none written"
            )
            raise NonFiniteUpdates(
                f"{self.consecutive_skips} updates in a row had a non-finite gradient ({name} at generator step "
                f"{self.generator_steps}); last good checkpoint: {last}. Lower the learning rate or check the data, "
                "then resume with --ckpt_path"
            )

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        if self.max_generator_steps is not None and self.generator_steps >= self.max_generator_steps:
            self.trainer.should_stop = True
            return -1  # Lightning: skip the rest of this epoch
        return None

    def generator_losses(self, x: Tensor, z: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Each term's unweighted loss for real batch x and noise z, and f(z) (graph attached)."""
        return self.losses.losses(x, z)

    def train_batch(self, x: Tensor, optimizers: dict[str, Any]) -> dict[str, Tensor]:
        """One training batch: every loss and update; returns the values to log. ``optimizers`` by name, in the
        order ``configure_optimizers`` gave them."""
        z = torch.randn_like(x)
        if self.channels_last:
            # After drawing z: randn_like fills a channels-last tensor in memory order, other numbers.
            x, z = (t.contiguous(memory_format=torch.channels_last) for t in (x, z))
        logs: dict[str, Tensor] = {}
        f_z = None

        # -- generator f: every ``gen_every`` batches after the warm-up ---------------------------------------
        after_warmup = self.global_batches - self.generator_warmup
        if after_warmup >= 0 and after_warmup % self.gen_every == 0:
            losses, f_z = self.generator_losses(x, z)
            total = self.losses.total(losses)
            self.generator_update(total, optimizers["generator"])
            logs.update({f"train/loss_{name}": value.detach() for name, value in losses.items()})
            logs["train/loss"] = total.detach()
            f_z = f_z.detach()

        # -- the terms' own networks (the fake score s_ψ): every batch -------------------------------------
        logs.update(self.losses.auxiliary_updates(z, f_z, optimizers))
        return logs

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x = batch[0]
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        logs = self.seeded_train_batch(x, dict(zip(self.optimizer_names, optimizers)))
        self.log_training(logs, x, batch_size=x.shape[0])

    def seeded_train_batch(self, x: Tensor, optimizers: dict[str, Any]) -> dict[str, Tensor]:
        """``train_batch`` with every random draw from a stream of (seed, rank, batch): ranks differ, runs repeat,
        and a resumed run draws what an uninterrupted one would."""
        rank = self.global_rank if self._trainer is not None else 0
        seed_step(self.seed if self.seed is not None else run_seed(), rank, self.global_batches)
        logs = self.train_batch(x, optimizers)
        self.global_batches += 1
        return logs

    def log_training(self, logs: dict[str, Tensor], x: Tensor, batch_size: int) -> None:
        """Log the loss terms every step, and the idempotence/reconstruction errors every log interval."""
        if self.global_batches % max(1, self.trainer.log_every_n_steps) == 0:
            logs.update(self.diagnostics(x))
        logs["train/skipped_updates"] = torch.tensor(float(self.skipped_updates))
        self.log_dict(logs, prog_bar=False, batch_size=batch_size)
        progress = {"gen_step": float(self.generator_steps)}
        if "train/loss" in logs:
            progress["loss"] = logs["train/loss"]
        self.log_dict(progress, prog_bar=True, logger=False, batch_size=batch_size)
        self.log("train/generator_steps", float(self.generator_steps), batch_size=batch_size)

    # -- sampling ---------------------------------------------------------------------------------------------
    @property
    def sampling_network(self) -> nn.Module:
        """The network that samples: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.student

    @torch.no_grad()
    def sample(self, z: Tensor, nfe: int = 1, generator: sampling.RandomSource = None) -> Tensor:
        """f(z) for nfe = 1, else re-noise-and-project with ``nfe`` NFE (``sampling.multistep``), the re-noising
        noise drawn from ``generator`` (one for the batch, or one per sample)."""
        f = self.sampling_network
        if nfe == 1:
            return sampling.one_step(f, z)
        levels = self.renoise_timesteps(nfe)
        return sampling.multistep(f, z, self.schedule, levels, generator, self.renoise_noise, self.renoise_eta)

    @torch.no_grad()
    def sample_repeated(self, z: Tensor, nfe: int = 2, generator: sampling.RandomSource = None) -> Tensor:
        """f^nfe(z): f applied ``nfe`` times, no re-noising (``generator`` goes unused; it makes this a sampler
        like ``sample``). f(f(z)) is the one-step sample's distance from being a fixed point."""
        return sampling.repeated_projection(self.sampling_network, z, nfe)

    @torch.no_grad()
    def sampler_inputs(self, z: Tensor) -> Tensor:
        """With the training network f, what the multi-step sampler feeds f after its first step, one state per
        noise in z: a step drawn uniformly from the largest ``sample_nfe`` sampler's (at least 2), whose first
        re-noised input every multi-step setting shares."""
        nfe = max(2, *self.sample_nfe)
        steps = sampling.multistep_steps(
            self.student, z, self.schedule, self.renoise_timesteps(nfe), None, self.renoise_noise, self.renoise_eta
        )
        states = torch.stack([x_in for x_in, _ in steps][1:])
        pick = torch.randint(0, states.shape[0], (z.shape[0],), device=z.device)
        return states[pick, torch.arange(z.shape[0], device=z.device)]

    def renoise_timesteps(self, nfe: int) -> list[int]:
        """The re-noising levels of the ``nfe``-NFE sampler (``sampling.renoise_timesteps``)."""
        return sampling.renoise_timesteps(self.schedule, nfe, self.renoise_max_level, self.renoise_spacing)

    @torch.no_grad()
    def diagnostics(self, x: Tensor, prefix: str = DIAGNOSTICS_PREFIX) -> dict[str, Tensor]:
        """Idempotence error mean (f(f(z)) − f(z))² and reconstruction error mean (f(x) − x)², MSE; keys
        ``{prefix}/idempotence_error`` and ``{prefix}/reconstruction_error``."""
        f = self.sampling_network
        f_z = f(torch.randn_like(x))
        return {
            metric_key(prefix, IDEMPOTENCE_KEY): (f(f_z) - f_z).pow(2).mean(),
            metric_key(prefix, RECONSTRUCTION_KEY): (f(x) - x).pow(2).mean(),
        }

    # -- validation and test ----------------------------------------------------------------------------------
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch, batch_idx, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch, batch_idx, "test")

    def _evaluation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, prefix: str) -> None:
        x = batch[0]
        self.log_seeded(batch_idx, x, lambda: self.diagnostics(x, prefix))

    def on_test_epoch_end(self) -> None:
        if self.evaluator is not None:
            self.log_dict(self.score("test"))

    def score(self, prefix: str) -> dict[str, float]:
        """FID of ``sample`` at the evaluator's NFE and of the teacher's DDIM at its ``teacher_nfe``."""
        samplers = nfe_samplers(self.sample, self.evaluator.nfe)
        return score_model(
            self.evaluator, samplers, self.image_shape, self.trainer.strategy, prefix=prefix, teacher=self.teacher
        )

    def sample_grid(self, count: int = 16, seed: int = 0) -> Tensor:
        """A (3, H', W') grid in [0, 1]: rows of f(z) at each NFE, then f(f(z)), same z and noise throughout."""
        rows = [*nfe_rows(self.sample, self.sample_nfe, seed), self.sample_repeated]
        return sampler_grid(rows, self.image_shape, count, seeded_generator(seed), self.device)

    @property
    def grid_step(self) -> int:
        return self.generator_steps

    # -- prediction (``signs predict``) -------------------------------------------------------------------------
    def predict_dataloader(self) -> torch.utils.data.DataLoader:
        """Sample indices 0 .. ``predict_samples`` − 1; sample i depends on (seed, i) only, on any device count."""
        return torch.utils.data.DataLoader(range(self.predict_samples), batch_size=self.predict_batch_size)

    @torch.no_grad()
    def predict_step(self, batch: Tensor, batch_idx: int) -> dict[str, Tensor]:
        """{"index": (B,), "images": (B, C, H, W) in [-1, 1]} at ``predict_nfe`` NFE (f^k with k = ``predict_nfe``
        when ``predict_repeat``)."""
        seed = self.seed if self.seed is not None else run_seed()
        indices = [int(i) for i in batch]
        z = torch.stack([torch.randn(self.image_shape, generator=seeded_generator(seed, i)) for i in indices])
        renoise = [seeded_generator(seed, i, 1) for i in indices]
        z = z.to(self.device)
        if self.predict_repeat:
            images = self.sample_repeated(z, self.predict_nfe)
        else:
            images = self.sample(z, self.predict_nfe, renoise)
        images = images.float().clamp(-1, 1)
        return {"index": batch, "images": images}

    # -- checkpoints: counters and seed in, teacher out ---------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not self._excluded(k)}
        checkpoint["signs_counters"] = {
            "generator_steps": self.generator_steps,
            "global_batches": self.global_batches,
            "skipped_updates": self.skipped_updates,
            "seed": self.seed,
        }
        if self.teacher is not None:
            checkpoint["signs_teacher"] = {"source": self.teacher.source, "fingerprint": self.teacher.fingerprint()}
        if getattr(self, "last_validation", None):
            checkpoint["signs_validation"] = self.last_validation

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counters = checkpoint.get("signs_counters", {})
        self.generator_steps = int(counters.get("generator_steps", 0))
        self.global_batches = int(counters.get("global_batches", 0))
        self.skipped_updates = int(counters.get("skipped_updates", 0))
        self.seed = counters.get("seed")
        # A resumed run's next checkpoint keeps the last validation until it validates again.
        self.last_validation = checkpoint.get("signs_validation")
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
