"""SIGNModule: distil a frozen diffusers teacher into an idempotent one-step generator (docs/method.md)."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
from lightning.pytorch.cli import OptimizerCallable

from signs_lightning.core.checkpoint_io import read_checkpoint
from signs_lightning.core.errors import SignsError, one_line
from signs_lightning.diffusion.score_model import load_teacher
from signs_lightning.losses import Distance
from signs_lightning.losses.terms import DistributionMatching, Flow, Idempotence, Reconstruction, Regression
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.networks.generator import IdempotentGenerator, OutputHead

# Defaults as configs, not instances: one default object would be shared by every module built with it.
DEFAULT_TERMS = {
    name: {"class_path": f"signs_lightning.losses.{cls.__name__}"}
    for name, cls in (("rec", Reconstruction), ("idem", Idempotence), ("reg", Regression))
}


class SIGNModule(GeneratorModule):
    """Student f, frozen teacher and the loss terms (``losses/terms.py``), trained by manual optimisation.

    Every loss is computed in ``training_step`` (through ``GeneratorModule.train_batch``).

    The teacher is loaded from ``teacher`` (a diffusers pipeline folder or hub id) and never stored in
    checkpoints: they record its source and fingerprint, and the teacher is reloaded from the source.

    Args:
        teacher: diffusers pipeline folder or hub id (``unet/`` + ``scheduler/``).
        rec: L_rec (``Reconstruction``: real images are fixed points), with its weight; ``None``: off. Each term
            is given as an instance or ``{class_path, init_args}``; ``None`` switches it off (no compute).
        idem: L_idem (``Idempotence``: f's samples are fixed points); ``None``: off.
        flow: L_flow (``Flow``: consistency along the teacher's ODE); default off.
        dmd: L_dmd (``DistributionMatching``, with its fake score and its optimizer); default off (no fake score,
            no second optimizer).
        reg: L_reg (``Regression`` onto cached teacher ODE samples and their trajectory states); ``None``: off.
        conditioning_timestep: the fixed timestep at which f calls the teacher's UNet (see ``IdempotentGenerator``).
        output_head: how f reads the UNet's output as an image (see ``IdempotentGenerator``).
        distance: d(·,·) of every term that compares images.
        generator_optimizer: f's optimizer factory (LightningCLI ``class_path`` config).
        init_from: a SIGN checkpoint whose student (and EMA) weights this run starts from; its optimizers,
            counters and loss terms are not taken. DMD2's second stage: distribution matching on top of a
            regression-trained f, with a fresh fake score. (``--ckpt_path`` resumes a run; this starts a new one.)
        **kwargs: ``GeneratorModule``'s: extra_losses, gen_every, generator_warmup, max_generator_steps,
            gradient_clip_norm, ema_decay, sample_nfe, renoise_max_level, renoise_noise, renoise_eta,
            renoise_spacing, generator_lr_scheduler, evaluator, max_consecutive_skips, predict_samples, predict_nfe,
            and the speed switches compile, channels_last, foreach_ema, one_pass_gradients, teacher_inference_mode.
    """

    def __init__(
        self,
        teacher: str,
        rec: Reconstruction | None = DEFAULT_TERMS["rec"],
        idem: Idempotence | None = DEFAULT_TERMS["idem"],
        flow: Flow | None = None,
        dmd: DistributionMatching | None = None,
        reg: Regression | None = DEFAULT_TERMS["reg"],
        conditioning_timestep: int | None = None,
        output_head: OutputHead = "x0",
        distance: Distance = "mse",
        generator_optimizer: OptimizerCallable = functools.partial(torch.optim.AdamW, lr=1e-3),
        init_from: str | None = None,
        **kwargs: Any,
    ) -> None:
        with warnings.catch_warnings():
            # Terms built in Python are recorded as their configs (GeneratorModule), not pickled as modules.
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            # init_from only seeds a new run: a checkpoint of that run must load without the file it started from.
            self.save_hyperparameters(
                ignore=["generator_optimizer", "generator_lr_scheduler", "evaluator", "init_from"]
            )
        frozen_teacher = load_teacher(teacher)
        # The resolved source (absolute for a local folder): a checkpoint must not depend on the working folder.
        self.hparams.teacher = frozen_teacher.source
        super().__init__(
            student=IdempotentGenerator(frozen_teacher, conditioning_timestep, output_head),
            teacher=frozen_teacher,
            terms={"rec": rec, "idem": idem, "flow": flow, "dmd": dmd, "reg": reg},
            distance=distance,
            generator_optimizer=generator_optimizer,
            **kwargs,
        )
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
