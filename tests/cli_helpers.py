"""Tiny ``signs`` runs for the CLI tests: a config of a few-second fit on 8x8 MNIST with a tiny local teacher."""

from __future__ import annotations

from pathlib import Path

import yaml

from signs_lightning.run.cli import SignsCLI, cli_main

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
