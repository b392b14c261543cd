"""The model card's facts without a fit: FID rows and their sources, the checkpoint's last validation, the
training configuration's sources, and no local path or user name in what a card states."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from signs_lightning.commands.export import VALIDATION_KEY, last_validation, training_config, with_teacher
from signs_lightning.inference import model_card
from signs_lightning.inference.model_card import FidRow, fid_rows, fid_setting, public_config, public_teacher

VALIDATION = {
    "val/fid1k_lenet16_nfe1": 3.264,
    "val/fid1k_lenet16_nfe2": 2.53,
    "val/teacher_fid1k_lenet16_nfe1": 9.0,  # the teacher's sampler, not the exported one
    "val/fid1k_lenet16_of_ffz": 5.0,  # f(f(z)): no NFE setting of the pipeline
    "val/idempotence_error": 0.1,
}


def test_typed_fids_win_at_their_nfe_and_every_row_says_where_it_came_from() -> None:
    where = "the checkpoint's last validation (generator step 2000)"
    rows = fid_rows({2: 2.4}, "2,000 samples, LeNet features", VALIDATION, where)
    assert rows == [
        FidRow(1, "3.26", f"{where}, 1,000 samples, lenet16 features"),
        FidRow(2, "2.4", "given on the command line: 2,000 samples, LeNet features"),
    ]
    assert fid_rows({}, "", {}, "") == []


def test_fid_settings_are_read_from_the_metric_names() -> None:
    assert fid_setting("fid50k_inception") == "50,000 samples, inception features"
    assert fid_setting("fid2.5k_lenet16") == "2,500 samples, lenet16 features"


def test_last_validation_is_the_checkpoints_entry_else_the_runs_curve(tmp_path: Path) -> None:
    entry = {VALIDATION_KEY: {"generator_step": 2000, "metrics": VALIDATION}}
    assert last_validation(entry, tmp_path / "checkpoints" / "last.ckpt") == (
        VALIDATION,
        "the checkpoint's last validation (generator step 2000)",
    )
    # Without the entry: the run's curve.jsonl, its last row at or before the checkpoint's generator step.
    (tmp_path / "checkpoints").mkdir()
    rows = [{"generator_step": s, "global_step": s, "val/fid1k_lenet16_nfe1": 10.0 / s} for s in (500, 1000, 1500)]
    (tmp_path / "curve.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    counters = {"signs_counters": {"generator_steps": 1200}}
    assert last_validation(counters, tmp_path / "checkpoints" / "last.ckpt") == (
        {"val/fid1k_lenet16_nfe1": 0.01},
        "the run's validation at generator step 1000 (curve.jsonl)",
    )
    assert last_validation({}, tmp_path / "elsewhere" / "x.ckpt") == ({}, "")


def test_the_config_is_the_runs_config_yaml_else_the_checkpoints_hyperparameters(tmp_path: Path) -> None:
    hparams = {
        "_class_path": "signs_lightning.modules.SIGNModule",
        "teacher": "/data/teachers/mnist16",
        "ema_decay": 0.9,
    }
    path = tmp_path / "checkpoints" / "last.ckpt"
    config, source = training_config(
        {"hyper_parameters": hparams, "datamodule_hyper_parameters": {"batch_size": 8}}, path
    )
    assert config == {
        "model": {"class_path": hparams["_class_path"], "init_args": {"teacher": hparams["teacher"], "ema_decay": 0.9}},
        "data": {"init_args": {"batch_size": 8}},
    }
    assert source.startswith("the checkpoint's hyperparameters")
    saved = {
        "seed_everything": 0,
        "trainer": {"precision": "bf16-mixed", "devices": 4, "strategy": "ddp", "logger": False, "callbacks": None},
        "model": {"class_path": hparams["_class_path"], "init_args": {"evaluator": {"class_path": "FIDEvaluator"}}},
        "data": {"class_path": "MNIST", "init_args": {"root": "/home/alice/data"}},
        "optimizer": None,
    }
    version = tmp_path / "lightning_logs" / "version_0"
    version.mkdir(parents=True)
    (version / "config.yaml").write_text(yaml.safe_dump(saved))
    config, source = training_config({"hyper_parameters": hparams}, path)
    assert source.startswith("the run's config.yaml")
    assert config["trainer"] == {"precision": "bf16-mixed", "devices": 4, "strategy": "ddp"}
    assert config["model"]["init_args"]["evaluator"] and config["data"]["class_path"] == "MNIST"
    # Another module's run folder: not this checkpoint's config.
    other = {"_class_path": "signs_lightning.modules.IGNModule"}
    assert training_config({"hyper_parameters": other}, path)[1].startswith("the checkpoint's hyperparameters")


def test_public_config_cuts_absolute_and_home_paths_and_the_user_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_card.getpass, "getuser", lambda: "alice")
    config = {
        "model": {"init_args": {"teacher": "/home/alice/teachers/mnist16", "cache_dir": "~/cache/pairs"}},
        "data": {"init_args": {"root": "/scratch/alice/data/", "note": "see /tmp/x/y.txt, alice_runs", "n": 3}},
        "trainer": {"default_root_dir": "runs/sign_mnist", "plugins": ["https://example.org/a/b"]},
    }
    public = public_config(with_teacher(config, public_teacher("/home/alice/teachers/mnist16")[0]))
    assert public == {
        "model": {"init_args": {"teacher": "mnist16", "cache_dir": "…/pairs"}},
        "data": {"init_args": {"root": "…/data", "note": "see …/y.txt, <user>_runs", "n": 3}},
        "trainer": {"default_root_dir": "runs/sign_mnist", "plugins": ["https://example.org/a/b"]},
    }
    assert public_config("owned by alice, not malice") == "owned by <user>, not malice"


def test_a_local_teacher_is_named_by_its_folder_and_a_hub_teacher_by_its_id() -> None:
    assert public_teacher("/home/alice/teachers/mnist16") == ("mnist16", "a local folder")
    assert public_teacher("google/ddpm-cifar10-32") == ("google/ddpm-cifar10-32", "Hugging Face hub")
