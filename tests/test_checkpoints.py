"""Checkpoints through the ``signs`` command: written atomically, resumed with the command line's model arguments,
saved on SIGTERM."""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import write_config

from signs_lightning.core.checkpoint_io import (
    AtomicCheckpointIO,
    CheckpointError,
    CheckpointSaveError,
    read_checkpoint,
)
from signs_lightning.core.errors import SignsError
from signs_lightning.run.checkpoint_args import check_model_class, merge_model_args
from signs_lightning.run.cli import SIGTERM_EXIT, cli_main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI warns when it is given args while sys.argv holds pytest's."""
    monkeypatch.setattr(sys, "argv", ["signs"])


def counters(path: Path) -> dict[str, int]:
    return read_checkpoint(path, weights_only=True)["signs_counters"]


# -- atomic writes -----------------------------------------------------------------------------------------------

SAVE_FOREVER = """
import sys, torch
from signs_lightning.core.checkpoint_io import AtomicCheckpointIO
io, state = AtomicCheckpointIO(), {"state_dict": {"w": torch.randn(8_000_000)}}
for n in range(1, 10**6):
    state["n"] = n
    io.save_checkpoint(state, sys.argv[1])
    print(n, flush=True)
"""


def test_a_kill_during_a_save_leaves_the_previous_checkpoint_whole(tmp_path) -> None:
    path = tmp_path / "last.ckpt"
    for _ in range(5):  # a kill lands in a save nearly always (saving is all the script does); retry the rare miss
        saver = subprocess.Popen(
            [sys.executable, "-c", SAVE_FOREVER, str(path)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for _ in range(3):  # three whole saves of 32 MB, then a kill during a later one
            assert saver.stdout.readline()
        time.sleep(0.01)
        saver.send_signal(signal.SIGKILL)
        saver.wait()
        assert read_checkpoint(path)["n"] >= 3
        interrupted = [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
        if interrupted:
            break
    assert interrupted, "no kill landed in a save"


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full")


def test_a_failed_save_keeps_the_previous_checkpoint_and_no_temporary_file(tmp_path) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    with pytest.raises(RuntimeError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "x": Unpicklable()}, path)
    assert torch.equal(read_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


TORCH_WRITER_FAILURE = (
    "[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file data/0: file write failed"
)


@pytest.mark.parametrize(
    "failure,expected",
    [
        (RuntimeError(TORCH_WRITER_FAILURE), r"the write failed, most likely because the disk is full \(Pytorch"),
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
    ],
    ids=["torch_writer", "enospc"],
)
def test_a_full_disk_during_a_save_is_one_line_naming_the_checkpoint(tmp_path, monkeypatch, failure, expected):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()

    def full_disk(obj, handle):
        handle.write(b"PK partial")
        raise failure

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointSaveError) as raised:
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    message = str(raised.value)
    assert isinstance(raised.value, SignsError) and "\n" not in message
    assert message.startswith(f"could not save checkpoint {path}: ")
    assert re.search(expected, message), message
    assert "enforce fail" not in message
    assert "free space" in message and "--trainer.default_root_dir" in message
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_the_cli_writes_checkpoints_atomically_unless_the_config_names_a_checkpoint_io(tiny_teacher_dir, tmp_path):
    config = str(write_config(tmp_path / "fit.yaml", tiny_teacher_dir))
    assert isinstance(cli_main(["--config", config], run=False).trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    plugin = "lightning.pytorch.plugins.io.TorchCheckpointIO"
    own = cli_main(["--config", config, "--trainer.plugins", plugin], run=False)
    assert type(own.trainer.strategy.checkpoint_io).__name__ == "TorchCheckpointIO"


# -- resuming ----------------------------------------------------------------------------------------------------


def test_resume_takes_the_given_model_arguments_and_the_checkpoints_for_the_rest(tiny_teacher_dir, tmp_path, caplog):
    teacher = shutil.copytree(tiny_teacher_dir, tmp_path / "teacher_a")
    config = write_config(tmp_path / "fit.yaml", teacher, steps=2)
    cli_main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run")])
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    moved = teacher.rename(tmp_path / "teacher_b")  # the checkpoint's teacher path no longer exists
    # A config that leaves L_reg's settings out: the checkpoint's 16 pairs, not the default 4000, must be used.
    settings = yaml.safe_load(config.read_text())
    del settings["model"]["init_args"]["reg"]
    config.write_text(yaml.safe_dump(settings))

    with caplog.at_level("INFO"):
        cli = cli_main(
            [
                "fit",
                "--config",
                str(config),
                "--trainer.default_root_dir",
                str(tmp_path / "run"),
                "--ckpt_path",
                str(checkpoint),
                "--model.init_args.max_generator_steps",
                "4",
                "--model.init_args.teacher",
                str(moved),
            ]
        )
    assert cli.model.generator_steps == 4 and counters(checkpoint)["generator_steps"] == 4
    assert cli.model.hparams.teacher == str(moved) and cli.model.teacher.source == str(moved)
    assert cli.model.losses["reg"].pairs == 16
    (line,) = [r.getMessage() for r in caplog.records if "model arguments taken from the checkpoint" in r.getMessage()]
    assert f"checkpoint {checkpoint}: reg=" in line and "'pairs': 16" in line
    assert "max_generator_steps=4 (checkpoint: 2)" in line and f"teacher='{moved}' (checkpoint: '{teacher}')" in line


@pytest.mark.parametrize("ckpt_path", ["last", "explicit"])
def test_a_moved_run_resumed_in_its_new_folder_goes_on_writing_last_ckpt(tiny_teacher_dir, tmp_path, ckpt_path):
    """It used to write last-v1.ckpt there, leaving last.ckpt (what --ckpt_path last and CKPT=.../last.ckpt read)
    at the old step: Lightning forgets the saved checkpoint paths in a folder other than the one saved."""
    config = write_config(tmp_path / "fit.yaml", tiny_teacher_dir, steps=2)
    cli_main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "a")])
    moved = shutil.copytree(tmp_path / "a", tmp_path / "b") / "checkpoints"
    resume = "last" if ckpt_path == "last" else str(moved / "last.ckpt")
    steps = ["--model.init_args.max_generator_steps", "3"]
    cli_main(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.default_root_dir",
            str(tmp_path / "b"),
            "--ckpt_path",
            resume,
            *steps,
        ]
    )
    assert counters(moved / "last.ckpt")["generator_steps"] == 3
    assert read_checkpoint(moved / "last.ckpt", weights_only=True)["global_step"] == 3
    # As a resume in place: the step-2 periodic checkpoint replaced by step 3's, no versioned names.
    periodic, last = sorted(p.name for p in moved.iterdir())
    assert periodic.endswith("-step=3.ckpt") and last == "last.ckpt"
    assert counters(tmp_path / "a" / "checkpoints" / "last.ckpt")["generator_steps"] == 2  # the original untouched


def test_saved_arguments_the_model_no_longer_takes_are_dropped_and_class_paths_compare_as_classes() -> None:
    saved = {"_class_path": "signs_lightning.modules.SIGNModule", "old_knob": 1, "ema_decay": 0.9, "teacher": "a"}
    merged = merge_model_args(
        saved, {"teacher": "b"}, {"ema_decay": 0.999, "teacher": "b"}, "signs_lightning.modules.sign.SIGNModule"
    )
    assert merged.init_args == {"ema_decay": 0.9, "teacher": "b"}
    assert (merged.taken, merged.replaced, merged.dropped) == (
        {"ema_decay": 0.9},
        {"teacher": ("a", "b")},
        ["old_knob"],
    )
    assert merged.summary("x.ckpt").endswith("; ignored (no longer arguments of the model): old_knob")
    check_model_class("x.ckpt", saved, "signs_lightning.modules.sign.SIGNModule")  # one class, two import paths
    with pytest.raises(CheckpointError, match="x.ckpt was written by signs_lightning.modules.SIGNModule"):
        check_model_class("x.ckpt", saved, "signs_lightning.modules.IGNModule")


def test_sigterm_saves_last_and_exits_143_naming_it(tiny_teacher_dir, tmp_path) -> None:
    config = write_config(tmp_path / "fit.yaml", tiny_teacher_dir, steps=1000)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT / "tests"),
        "SIGNS_CACHE": str(tmp_path / "cache"),
    }
    env.pop("SLURM_RESTART_COUNT", None)  # HoldFirstRun holds only a job's first run
    command = [
        str(Path(sys.executable).parent / "signs"),
        "fit",
        "--config",
        str(config),
        "--trainer.default_root_dir",
        str(tmp_path / "run"),
        "--trainer.callbacks+=slurm_hold.HoldFirstRun",
        "--trainer.callbacks.init_args.step",
        "2",
        "--trainer.callbacks.init_args.marker_dir",
        str(tmp_path),
    ]
    fit = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "held-0").exists():  # held after generator step 2, waiting for a signal
        assert fit.poll() is None and time.monotonic() < deadline, fit.communicate()
        time.sleep(0.1)
    fit.send_signal(signal.SIGTERM)
    _, err = fit.communicate(timeout=60)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert fit.returncode == SIGTERM_EXIT, err
    last_line = err.strip().splitlines()[-1]
    assert last_line == f"signs fit: stopped by SIGTERM; saved {last}: resume with --ckpt_path {last}"
    assert counters(last)["generator_steps"] == 2
    # Resuming into the same folder is not refused (it holds this run's checkpoints), and continues from step 2.
    cli = cli_main(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.default_root_dir",
            str(tmp_path / "run"),
            "--ckpt_path",
            str(last),
            "--model.init_args.max_generator_steps",
            "3",
        ]
    )
    assert cli.model.generator_steps == 3 and counters(last)["generator_steps"] == 3
