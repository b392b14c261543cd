"""The training curve: one line per validation, with the seconds of training (not of scoring) so far."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import write_config

from signs_lightning.run.cli import cli_main


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["signs"])


def fit(config: Path, run: Path, steps: int, *extra: str):
    return cli_main(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.default_root_dir",
            str(run),
            "--trainer.val_check_interval",
            "2",
            "--trainer.check_val_every_n_epoch",
            "null",
            "--trainer.callbacks+=signs_lightning.run.callbacks.TrainingCurve",
            "--model.init_args.max_generator_steps",
            str(steps),
            *extra,
        ]
    )


def rows(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()]


def test_one_row_per_validation_and_the_clock_continues_after_a_resume(tiny_teacher_dir, tmp_path) -> None:
    config = write_config(tmp_path / "fit.yaml", tiny_teacher_dir)
    run = tmp_path / "run"
    fit(config, run, 4)
    first = rows(run)
    assert [r["generator_step"] for r in first] == [2, 4]
    assert 0 < first[0]["train_seconds"] < first[1]["train_seconds"]
    assert all("val/idempotence_error" in r for r in first), first

    fit(config, run, 6, "--ckpt_path", "last")
    resumed = rows(run)
    assert resumed[:2] == first and [r["generator_step"] for r in resumed[2:]] == [6]
    # The resumed run's clock starts from the seconds in the checkpoint, not from zero.
    assert resumed[2]["train_seconds"] > first[1]["train_seconds"]
