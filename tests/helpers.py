"""What several test files share: a tiny SIGN of the tiny teacher and a short fit of it, ``signs`` configs and
arguments of a few-second run on 8x8 MNIST, and the teachers' schedule grid. (Fixtures live in conftest.py.)"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import yaml

from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.diffusion.schedule import PREDICTION_TYPES
from signs_lightning.losses import DistributionMatching, Flow, Regression
from signs_lightning.modules import SIGNModule
from signs_lightning.run.cli import SignsCLI, cli_main

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
# Every prediction type with the default schedule, and every schedule with epsilon: the grid diffusers tests use.
SCHEDULE_GRID = (
    [(p, "linear") for p in PREDICTION_TYPES]
    + [("epsilon", b) for b in BETA_SCHEDULES[1:]]
    + [("v_prediction", "squaredcos_cap_v2")]
)


TRAINER = {
    "accelerator": "cpu",
    "devices": 1,
    "max_epochs": -1,
    "logger": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
    "limit_val_batches": 1,
    "callbacks": [{"class_path": "signs_lightning.run.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}],
}
MODELS = {
    "sign": {
        "class_path": "signs_lightning.modules.SIGNModule",
        "init_args": {
            "reg": {"class_path": "signs_lightning.losses.Regression", "init_args": {"pairs": 16, "sampler_steps": 2}}
        },
    },
    "ign": {"class_path": "signs_lightning.modules.IGNModule", "init_args": {"network": "teacher_unet"}},
}


def write_config(path: Path, teacher: Path, model: str = "sign", steps: int = 3) -> Path:
    """A ``signs fit`` config at ``path``: ``steps`` generator steps, checkpoints via our ModelCheckpoint."""
    spec = MODELS[model]
    init_args = {**spec["init_args"], "teacher": str(teacher), "sample_nfe": [1], "max_generator_steps": steps}
    config = {
        "seed_everything": 0,
        "trainer": TRAINER,
        "model": {"class_path": spec["class_path"], "init_args": init_args},
        "data": {
            "class_path": "signs_lightning.data.EmbeddedMNISTDataModule",
            "init_args": {"image_size": 8, "batch_size": 8},
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def built_sign_cli(teacher: Path, *args: str) -> SignsCLI:
    """``signs`` with a SIGN of ``teacher`` on the embedded MNIST and ``args``, built but not run."""
    model = ["--model", "signs_lightning.modules.SIGNModule", "--model.init_args.teacher", str(teacher)]
    return cli_main([*model, "--data", "signs_lightning.data.EmbeddedMNISTDataModule", *args], run=False)


TINY = [
    "--model.class_path",
    "signs_lightning.modules.SIGNModule",
    "--model.init_args.reg.init_args.pairs",
    "16",
    "--model.init_args.reg.init_args.sampler_steps",
    "2",
    "--model.init_args.sample_nfe",
    "[1, 2]",
    "--data.class_path",
    "signs_lightning.data.EmbeddedMNISTDataModule",
    "--data.init_args.image_size",
    "8",
    "--data.init_args.batch_size",
    "8",
    "--trainer.logger",
    "false",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.limit_val_batches",
    "1",
    "--trainer.limit_test_batches",
    "1",
]


def tiny_sign(
    teacher_dir: Path,
    flow: bool | Flow = False,
    dmd: bool | DistributionMatching = False,
    reg: bool = True,
    pairs: int = 32,
    sampler_steps: int = 2,
    trajectory_fraction: float = 0.0,
    cache_dir: str | None = None,
    **kwargs,
) -> SIGNModule:
    """A SIGN of the tiny teacher with L_rec + L_idem, L_reg on small pair sets, and optionally L_flow and L_dmd
    (``True`` for the tiny defaults, or a term)."""
    settings = dict(
        flow=Flow(intervals=4) if flow is True else flow or None,
        dmd=DistributionMatching() if dmd is True else dmd or None,
        reg=Regression(
            pairs=pairs, sampler_steps=sampler_steps, trajectory_fraction=trajectory_fraction, cache_dir=cache_dir
        )
        if reg
        else None,
        ema_decay=0.9,
        sample_nfe=[1, 2],
    )
    settings.update(kwargs)
    return SIGNModule(teacher=str(teacher_dir), **settings)


def fit(model: SIGNModule, root: Path, steps: int, ckpt_path: str | None = None, **trainer_kwargs) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=-1,
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        **trainer_kwargs,
    )
    model.max_generator_steps = steps
    trainer.fit(model, EmbeddedMNISTDataModule(image_size=8, batch_size=8), ckpt_path=ckpt_path)
    return trainer


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
