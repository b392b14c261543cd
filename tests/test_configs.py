"""Every YAML config in configs/ parses with --print_config and builds its model and data classes."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml

from signs_lightning.cli import cli_main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert {
        "teacher_mnist.yaml",
        "sign_mnist.yaml",
        "ign_mnist.yaml",
        "sign_cifar10.yaml",
        "teacher_celeba64.yaml",
        "sign_celeba64.yaml",
    } <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_print_config(config: Path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(out.getvalue())
    original = yaml.safe_load(config.read_text())
    assert printed["model"]["class_path"] == original["model"]["class_path"]
    assert printed["data"]["class_path"] == original["data"]["class_path"]


def test_command_line_overrides_win(tmp_path) -> None:
    out = io.StringIO()
    config = Path(__file__).resolve().parents[1] / "configs" / "sign_mnist.yaml"
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli_main(
            [
                "fit",
                "--config",
                str(config),
                "--model.init_args.reg.init_args.pairs",
                "7",
                "--data.init_args.batch_size",
                "7",
                "--print_config",
            ]
        )
    printed = yaml.safe_load(out.getvalue())
    assert printed["model"]["init_args"]["reg"]["init_args"]["pairs"] == 7
    # The config's other L_reg settings survive the override of one of them.
    assert printed["model"]["init_args"]["reg"]["init_args"]["trajectory_fraction"] == 0.5
    assert printed["data"]["init_args"]["batch_size"] == 7


@pytest.mark.parametrize("name", ["sign_mnist.yaml", "ign_mnist.yaml"])
def test_mnist_configs_build_with_a_local_teacher(name, tiny_teacher_dir, tmp_path) -> None:
    """Instantiate (not run) model and data from the config, the teacher replaced by a tiny local folder."""
    config = Path(__file__).resolve().parents[1] / "configs" / name
    cli = cli_main(
        [
            "--config",
            str(config),
            "--model.init_args.teacher",
            str(tiny_teacher_dir),
            "--data.init_args.image_size",
            "8",
            "--trainer.default_root_dir",
            str(tmp_path),
        ],
        run=False,
    )
    assert cli.model.image_shape == (1, 8, 8)
    assert cli.datamodule.image_size == 8
