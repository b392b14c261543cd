"""SIGNModule: distil a frozen diffusers teacher into an idempotent one-step generator (docs/method.md)."""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from signs_lightning.core.errors import SignsError, one_line
from signs_lightning.diffusion.score_model import load_teacher
from signs_lightning.evaluation import FIDEvaluator
from signs_lightning.inference import sampling
from signs_lightning.losses import Distance, distance_fn
from signs_lightning.losses.terms import (
    DistributionMatching,
    Flow,
    Idempotence,
    LossTerm,
    Reconstruction,
    Regression,
    Step,
    build_term,
)
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.networks.generator import IdempotentGenerator, OutputHead
from signs_lightning.run.checkpoint_io import read_checkpoint

# The named term slots: each can be set, tuned or switched off (null) from YAML or the command line.
TERM_SLOTS = ("rec", "idem", "flow", "dmd", "reg")
# Defaults as configs, not instances: one default object would be shared by every module built with it.
DEFAULT_TERMS = {
    name: {"class_path": f"signs_lightning.losses.{cls.__name__}"}
    for name, cls in (("rec", Reconstruction), ("idem", Idempotence), ("reg", Regression))
}


class SIGNModule(GeneratorModule):
    """Student f, frozen teacher and the loss terms (``losses/terms.py``); every loss computed in
    ``training_step`` (manual optimisation).

    The teacher is loaded from ``teacher`` (a diffusers pipeline folder or hub id) and never stored in
    checkpoints: they record its source and fingerprint, and the teacher is reloaded from the source.

    Args:
        teacher: diffusers pipeline folder or hub id (``unet/`` + ``scheduler/``).
        rec, idem, flow, dmd, reg: the loss terms (``Reconstruction``, ``Idempotence``, ``Flow``,
            ``DistributionMatching`` with its fake score, ``Regression``), each with its weight and
            hyperparameters; ``None`` switches a term off (no compute; without ``dmd`` no fake score, no second
            optimizer). Given as instances or ``{class_path, init_args}``. Defaults: rec + idem + reg.
        extra_losses: further ``LossTerm`` s (new research terms), added to the generator loss.
        conditioning_timestep, output_head: how f calls the UNet (see ``IdempotentGenerator``).
        distance: d(·,·) of every term that compares images.
        gen_every: the generator steps once every ``gen_every`` batches; terms' own networks (the fake score)
            every batch.
        generator_warmup: the first this many batches train only the terms' own networks (DMD2's fake-score
            warm-up: the fake score learns f's current samples before L_dmd's gradient reaches f).
        max_generator_steps: stop after this many generator steps (``trainer.max_steps`` counts the steps of
            every optimizer).
        gradient_clip_norm: clip each network's gradient norm (``None``: no clipping).
        ema_decay: EMA of the generator (``None``: none); samples and metrics use the EMA when present.
        sample_nfe: NFE settings for validation samples and metrics.
        renoise_max_level: the multi-step sampler re-noises to levels evenly spaced from this fraction of T down
            (``sampling.renoise_timesteps``).
        generator_optimizer, generator_lr_scheduler: f's optimizer and optional LR-scheduler factories (LightningCLI
            ``class_path`` configs); the scheduler steps after each applied update (e.g.
            ``torch.optim.lr_scheduler.LinearLR`` with ``start_factor: 0.01, total_iters: 1000``: DMD2's warm-up).
        evaluator: optional ``FIDEvaluator`` run in the validation and test hooks.
        max_consecutive_skips: updates with a non-finite gradient are skipped; this many in a row stop the fit.
        predict_samples, predict_nfe: what ``signs predict`` generates (sample i from seed (run seed, i)).
        init_from: a SIGN checkpoint whose student (and EMA) weights this run starts from; its optimizers,
            counters and loss terms are not taken. DMD2's second stage: distribution matching on top of a
            regression-trained f, with a fresh fake score. (``--ckpt_path`` resumes a run; this starts a new one.)
    """

    def __init__(
        self,
        teacher: str,
        rec: Reconstruction | None = DEFAULT_TERMS["rec"],
        idem: Idempotence | None = DEFAULT_TERMS["idem"],
        flow: Flow | None = None,
        dmd: DistributionMatching | None = None,
        reg: Regression | None = DEFAULT_TERMS["reg"],
        extra_losses: list[LossTerm] = [],
        conditioning_timestep: int | None = None,
        output_head: OutputHead = "x0",
        distance: Distance = "mse",
        gen_every: int = 1,
        generator_warmup: int = 0,
        max_generator_steps: int | None = None,
        gradient_clip_norm: float | None = 10.0,
        ema_decay: float | None = 0.999,
        sample_nfe: list[int] = [1, 2],
        renoise_max_level: float = sampling.DEFAULT_RENOISE_MAX_LEVEL,
        generator_optimizer: OptimizerCallable = functools.partial(torch.optim.AdamW, lr=1e-3),
        generator_lr_scheduler: LRSchedulerCallable | None = None,
        evaluator: FIDEvaluator | None = None,
        max_consecutive_skips: int = 10,
        predict_samples: int = 64,
        predict_nfe: int = 1,
        init_from: str | None = None,
    ) -> None:
        with warnings.catch_warnings():
            # Terms built in Python are recorded as their configs just below, not pickled as modules.
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            # init_from only seeds a new run: a checkpoint of that run must load without the file it started from.
            self.save_hyperparameters(
                ignore=["generator_optimizer", "generator_lr_scheduler", "evaluator", "init_from"]
            )
        if gen_every < 1:
            raise ValueError(f"gen_every must be >= 1, got {gen_every}")
        if generator_warmup < 0:
            raise ValueError(f"generator_warmup must be >= 0, got {generator_warmup}")
        # Own copies: a default instance or a term passed to two modules must not share state (pairs, fake score).
        slots = {name: copy.deepcopy(build_term(spec)) for name, spec in zip(TERM_SLOTS, (rec, idem, flow, dmd, reg))}
        for name, term in slots.items():
            if term is not None and term.name != name:
                raise ValueError(f"{name}: expected a {name!r} term, got {type(term).__name__} (name {term.name!r})")
        terms = [t for t in slots.values() if t is not None] + [copy.deepcopy(build_term(t)) for t in extra_losses]
        if not any(term.weight > 0 for term in terms):
            raise ValueError(f"the loss needs at least one term with weight > 0, got {[t.name for t in terms]}")
        if len({term.name for term in terms}) != len(terms):
            raise ValueError(f"two loss terms share a name: {[t.name for t in terms]}")
        # Checkpoints record each term as {class_path, init_args} (LightningCLI already gives dicts).
        for key in ("rec", "idem", "flow", "dmd", "reg", "extra_losses"):
            value = self.hparams.get(key)
            if isinstance(value, LossTerm):
                self.hparams[key] = value.config()
            elif isinstance(value, list):
                self.hparams[key] = [v.config() if isinstance(v, LossTerm) else v for v in value]
        frozen_teacher = load_teacher(teacher)
        # The resolved source (absolute for a local folder): a checkpoint must not depend on the working folder.
        self.hparams.teacher = frozen_teacher.source
        super().__init__(
            student=IdempotentGenerator(frozen_teacher, conditioning_timestep, output_head),
            teacher=frozen_teacher,
            ema_decay=ema_decay,
            max_generator_steps=max_generator_steps,
            gradient_clip_norm=gradient_clip_norm,
            sample_nfe=sample_nfe,
            renoise_max_level=renoise_max_level,
            evaluator=evaluator,
            max_consecutive_skips=max_consecutive_skips,
            predict_samples=predict_samples,
            predict_nfe=predict_nfe,
        )
        self.distance = distance_fn(distance)
        self.generator_optimizer = generator_optimizer
        self.generator_lr_scheduler = generator_lr_scheduler
        # Weight 0 keeps a term's settings in the config but skips its compute.
        self.losses = nn.ModuleDict({term.name: term for term in terms if term.weight > 0})
        for term in self.losses.values():
            term.bind(self)
        if init_from is not None:
            self._start_from(init_from)

    def _start_from(self, path: str) -> None:
        weights = read_checkpoint(path, weights_only=True)["state_dict"]
        student = {k: v for k, v in weights.items() if k.startswith("student.")}
        if not student:
            raise SignsError(f"init_from {path}: the checkpoint holds no student weights (a SIGN checkpoint is needed)")
        ema = {k: v for k, v in weights.items() if k.startswith("ema.")} if self.ema is not None else {}
        try:
            result = self.load_state_dict({**student, **ema}, strict=False)
        except RuntimeError as error:  # a shape mismatch
            raise SignsError(
                f"init_from {path}: its student does not fit this teacher's network ({one_line(error)[:200]})"
            ) from error
        loaded = ("student.", "ema.") if ema else ("student.",)
        missing = [k for k in result.missing_keys if k.startswith(loaded)]
        if missing or result.unexpected_keys:
            raise SignsError(
                f"init_from {path}: its student does not fit this teacher's network "
                f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})"
            )
        if self.ema is not None and not ema:  # a checkpoint without EMA: the EMA starts from its student
            self.ema.module.load_state_dict(self.student.state_dict())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.teacher.image_shape

    # -- set-up -----------------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        # Here, not in ``setup``: the teacher is on the training device only once the strategy has moved it.
        for term in self.losses.values():
            term.setup(self, self.trainer.strategy)

    def configure_optimizers(self) -> list[dict]:
        optimizers = [("generator", self.generator_optimizer(self.student.parameters()), self.generator_lr_scheduler)]
        for term in self.losses.values():
            optimizers += [
                (name, factory(parameters), scheduler) for name, parameters, factory, scheduler in term.optimizers()
            ]
        return self.with_schedulers(optimizers)

    # -- training ---------------------------------------------------------------------------------------------
    def generator_losses(self, x: Tensor, z: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Each term's unweighted loss for real batch x and noise z, and f(z) (graph attached).

        Every trainable f call of the step (z and each term's inputs) runs as one batched forward.
        """
        step = Step(
            x=x,
            z=z,
            student=self.student,
            teacher=self.teacher,
            ema=self.ema.module if self.ema is not None else None,
            distance=self.distance,
        )
        inputs = {"z": z}
        for term in self.losses.values():
            inputs.update({f"{term.name}/{key}": value for key, value in term.inputs(step).items()})
        outputs = self.student(torch.cat(list(inputs.values()))).split([v.shape[0] for v in inputs.values()])
        step.outputs = dict(zip(inputs, outputs))
        return {term.name: term.loss(step) for term in self.losses.values()}, step.f_z

    def train_batch(self, x: Tensor, optimizers: dict[str, Any]) -> dict[str, Tensor]:
        z = torch.randn_like(x)
        logs: dict[str, Tensor] = {}
        f_z = None

        # -- generator f: every ``gen_every`` batches after the warm-up ---------------------------------------
        after_warmup = self.global_batches - self.hparams.generator_warmup
        if after_warmup >= 0 and after_warmup % self.hparams.gen_every == 0:
            losses, f_z = self.generator_losses(x, z)
            total = sum(self.losses[name].weight * value for name, value in losses.items())
            self.generator_update(total, optimizers["generator"])
            logs.update({f"train/loss_{name}": value.detach() for name, value in losses.items()})
            logs["train/loss"] = total.detach()
            f_z = f_z.detach()

        # -- the terms' own networks (the fake score s_ψ): every batch -------------------------------------
        for term in self.losses.values():
            logs.update(term.auxiliary_update(self, z, f_z, optimizers))
        return logs
