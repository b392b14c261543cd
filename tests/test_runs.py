"""Runs from Python (``run.runs``): configs composed in order, overrides last, a teacher trained once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from signs_lightning.core.errors import SignsError
from signs_lightning.run import runs
from signs_lightning.run.cli import main

TRAINER = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "callbacks": None,
    "limit_val_batches": 0,
}
DATA = {"class_path": "signs_lightning.data.EmbeddedMNISTDataModule", "init_args": {"image_size": 8, "batch_size": 8}}


def write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def saved_config(root: Path) -> dict:
    (path,) = root.rglob("config.yaml")
    return yaml.safe_load(path.read_text())


def test_cli_args_compose_configs_then_overrides() -> None:
    assert runs.cli_args(["base.yaml", Path("diff.yaml")], ["model.init_args.sample_nfe=[1, 2]"], "runs/x") == [
        "--config", "base.yaml", "--config", "diff.yaml", "--trainer.default_root_dir", "runs/x",
        "--model.init_args.sample_nfe", "[1, 2]",
    ]  # fmt: skip
    with pytest.raises(SignsError, match="override 'max_steps' is not KEY=VALUE"):
        runs.cli_args(["base.yaml"], ["max_steps"])


def test_fit_applies_later_configs_and_overrides_over_earlier_ones(tiny_teacher_dir, tmp_path) -> None:
    base = write(
        tmp_path / "base.yaml",
        {
            "trainer": {**TRAINER, "max_epochs": -1},
            "model": {
                "class_path": "signs_lightning.modules.SIGNModule",
                "init_args": {"reg": {"init_args": {"pairs": 16, "sampler_steps": 2}}, "max_generator_steps": 50},
            },
            "data": DATA,
        },
    )
    experiment = write(tmp_path / "experiment.yaml", {"model": {"init_args": {"max_generator_steps": 2}}})
    overrides = [f"model.init_args.teacher={tiny_teacher_dir}", "model.init_args.sample_nfe=[1, 3]"]
    cli = runs.fit([base, experiment], overrides, tmp_path / "run")
    assert cli.model.generator_steps == 2
    assert cli.model.sample_nfe == [1, 3]
    assert cli.model.losses["reg"].pairs == 16  # the base's, kept under the experiment's layer
    assert cli.trainer.default_root_dir == str(tmp_path / "run")


def test_train_teacher_reuses_a_teacher_trained_with_the_same_settings(tmp_path, capsys) -> None:
    base = write(
        tmp_path / "teacher.yaml",
        {
            "trainer": {**TRAINER, "max_steps": 100},
            "model": {
                "class_path": "signs_lightning.modules.TeacherModule",
                "init_args": {"image_size": 8, "block_out_channels": [8, 8], "sample_nfe": [2]},
            },
            "data": DATA,
        },
    )
    short = write(tmp_path / "short.yaml", {"trainer": {"max_steps": 2}})
    folder, seconds = runs.train_teacher([base, short], tmp_path / "out", ["model.init_args.ema_decay=0.5"])
    assert folder == tmp_path / "out" / "teacher" and (folder / "model_index.json").is_file()
    assert seconds > 0
    config = saved_config(tmp_path / "out" / "teacher_logs")
    assert config["trainer"]["max_steps"] == 2
    assert config["model"]["init_args"]["ema_decay"] == 0.5
    assert config["model"]["init_args"]["output_dir"] == str(folder)

    assert runs.train_teacher([base, short], tmp_path / "out", ["model.init_args.ema_decay=0.5"]) == (folder, 0.0)
    assert "reusing the teacher" in capsys.readouterr().out
    # Another setting is another teacher: trained again, into a fresh log folder.
    _, seconds = runs.train_teacher([base, short], tmp_path / "out", ["model.init_args.ema_decay=0.9"])
    assert seconds > 0
    assert saved_config(tmp_path / "out" / "teacher_logs")["model"]["init_args"]["ema_decay"] == 0.9


def test_signs_demo_is_a_subcommand_with_one_line_errors(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--output", str(tmp_path / "demo"), "--override", "oops"])
    assert exit_info.value.code == 1
    assert "signs demo: error: override 'oops' is not KEY=VALUE" in capsys.readouterr().err
