"""Bad input through the ``signs`` command: each case ends in one line that names the file or key, what is wrong
and what to do (status 1, no traceback), or in the right behaviour."""

from __future__ import annotations

import errno
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from helpers import write_config

from signs_lightning.run.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_teacher_dir: Path) -> Path:
    """The folder of a 3-step SIGN fit: its config fit.yaml, and checkpoints/ (last.ckpt, epoch=0-step=3.ckpt)."""
    root = tmp_path_factory.mktemp("trained")
    config = write_config(root / "fit.yaml", tiny_teacher_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIGNS_CACHE", str(root / "cache"))
        patch.setattr(sys, "argv", ["signs"])
        main(["fit", "--config", str(config), "--trainer.default_root_dir", str(root)])
    assert (root / "checkpoints" / "last.ckpt").is_file()
    return root


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI warns when it is given args while sys.argv holds pytest's."""
    monkeypatch.setattr(sys, "argv", ["signs"])


def signs(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | str | None, str, str]:
    """Run ``signs argv``: its exit status (None when it returned), its last stderr line and its stdout."""
    capsys.readouterr()
    try:
        main(argv)
        code = None
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Does not validate against any of the Union subtypes" not in err
    return code, err.strip().splitlines()[-1] if err.strip() else "", out


def fit_args(trained: Path, root: Path, *extra: str) -> list[str]:
    return ["fit", "--config", str(trained / "fit.yaml"), "--trainer.default_root_dir", str(root), *extra]


@pytest.mark.parametrize(
    "damage,expected",
    [
        ("truncated", "is truncated .* the save that wrote it was interrupted; resume from another checkpoint"),
        ("text", r"is not a PyTorch checkpoint \(it starts with b'step: 3"),
        ("empty", r"is empty \(0 bytes\)"),
        ("missing", "does not exist: pass the path of a .ckpt file written by `signs fit`"),
    ],
    ids=["truncated", "text", "empty", "missing"],
)
def test_a_bad_checkpoint_file_is_named_in_one_line(trained, tmp_path, capsys, damage, expected) -> None:
    bad = tmp_path / "bad.ckpt"
    data = (trained / "checkpoints" / "last.ckpt").read_bytes()
    content = {"truncated": data[: len(data) // 2], "text": b"step: 3\nloss: 0.1\n", "empty": b""}.get(damage)
    if content is not None:
        bad.write_bytes(content)
    code, line, _ = signs(fit_args(trained, tmp_path / "run", "--ckpt_path", str(bad)), capsys)
    assert code == 1
    assert line.startswith(f"signs fit: error: checkpoint {bad} ")
    assert re.search(expected, line), line


def test_a_checkpoint_of_another_module_class_is_refused(trained, tiny_teacher_dir, tmp_path, capsys) -> None:
    ign_config = write_config(tmp_path / "ign.yaml", tiny_teacher_dir, model="ign", steps=1)
    assert (
        signs(["fit", "--config", str(ign_config), "--trainer.default_root_dir", str(tmp_path / "ign")], capsys)[0]
        is None
    )
    ign_checkpoint = tmp_path / "ign" / "checkpoints" / "last.ckpt"
    code, line, _ = signs(fit_args(trained, tmp_path / "sign", "--ckpt_path", str(ign_checkpoint)), capsys)
    assert code == 1
    assert (
        f"checkpoint {ign_checkpoint} was written by signs_lightning.modules.IGNModule, but the config's model is "
        "signs_lightning.modules.SIGNModule: resume it with the config it was trained with"
    ) in line
    assert not (tmp_path / "sign").exists()  # refused before anything was built or written


def test_validate_needs_a_checkpoint_or_an_explicit_flag(trained, tmp_path, capsys) -> None:
    validate = ["validate", "--config", str(trained / "fit.yaml"), "--trainer.default_root_dir", str(tmp_path)]
    code, line, _ = signs(validate, capsys)
    assert code == 1
    assert (
        "without --ckpt_path, validate would evaluate the model as built, i.e. an untrained SIGNModule: pass "
        "--ckpt_path"
    ) in line and "--allow_untrained true" in line
    code, _, out = signs([*validate, "--allow_untrained", "true"], capsys)
    assert code is None and "Metrics of the UNTRAINED SIGNModule (no --ckpt_path):" in out
    code, _, out = signs([*validate, "--ckpt_path", str(trained / "checkpoints" / "last.ckpt")], capsys)
    assert code is None and "UNTRAINED" not in out


@pytest.mark.parametrize(
    "teacher,expected",
    [
        ("./no_such_teacher", "teacher folder {cwd}/no_such_teacher does not exist: point model.init_args.teacher at"),
        ("teachers/no_such_teacher", "the folder {cwd}/teachers/no_such_teacher does not exist, and no hub model"),
        ("no_scheduler", "has no scheduler/scheduler_config.json (the noise schedule the UNet was trained with)"),
        ("learned_variance", "predicts a learned variance (UNet out_channels 2, in_channels 1"),
        (
            "latent_pipeline",
            "teacher {cwd}/latent_pipeline: a latent pipeline (model_index.json names a vae: its UNet denoises "
            "latents, not images) is not supported: signs_lightning distils pixel-space, unconditional DDPM-family",
        ),
    ],
    ids=["no_folder", "no_folder_nor_hub_id", "no_scheduler", "learned_variance", "latent_pipeline"],
)
def test_an_error_while_the_model_is_built_is_one_line(
    trained, tiny_teacher_dir, tmp_path, monkeypatch, capsys, teacher, expected
) -> None:
    monkeypatch.chdir(tmp_path)
    if teacher in ("no_scheduler", "learned_variance", "latent_pipeline"):
        shutil.copytree(tiny_teacher_dir, tmp_path / teacher)
    if teacher == "no_scheduler":
        shutil.rmtree(tmp_path / teacher / "scheduler")
    if teacher == "learned_variance":
        unet_config = tmp_path / teacher / "unet" / "config.json"
        unet_config.write_text(json.dumps({**json.loads(unet_config.read_text()), "out_channels": 2}))
    if teacher == "latent_pipeline":
        index = tmp_path / teacher / "model_index.json"
        index.write_text(json.dumps({**json.loads(index.read_text()), "vae": ["diffusers", "AutoencoderKL"]}))
    code, line, _ = signs(fit_args(trained, tmp_path / "run", "--model.init_args.teacher", teacher), capsys)
    assert code == 1
    assert line.startswith("signs fit: error: ") and line.endswith("(SIGNS_DEBUG=1 shows the traceback)")
    assert expected.format(cwd=tmp_path) in line


def test_signs_debug_shows_the_whole_error(trained, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SIGNS_DEBUG", "1")
    with pytest.raises(ValueError) as info:
        main(fit_args(trained, tmp_path / "run", "--model.init_args.teacher", str(tmp_path / "absent")))
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_a_fresh_fit_refuses_a_folder_that_holds_another_runs_checkpoints(trained, tmp_path, capsys) -> None:
    shutil.copytree(trained / "checkpoints", tmp_path / "checkpoints")
    code, line, _ = signs(fit_args(trained, tmp_path), capsys)
    assert code == 1
    assert (
        f"checkpoint folder {tmp_path / 'checkpoints'} already holds checkpoints of an earlier run "
        "(epoch=0-step=3.ckpt, last.ckpt): resume that run with --ckpt_path last"
    ) in line
    assert line.endswith("give this run another folder (trainer.default_root_dir) (SIGNS_DEBUG=1 shows the traceback)")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch=0-step=3.ckpt", "last.ckpt"]


def test_a_config_with_a_fixed_checkpoint_folder_says_so(trained, tmp_path, capsys) -> None:
    """configs/sign_cifar10.yaml's case: a new trainer.default_root_dir still saves to the config's dirpath."""
    settings = yaml.safe_load((trained / "fit.yaml").read_text())
    settings["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(trained / "checkpoints")
    config = tmp_path / "fixed.yaml"
    config.write_text(yaml.safe_dump(settings))
    code, line, _ = signs(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert code == 1
    assert f"checkpoint folder {trained / 'checkpoints'} already holds checkpoints of an earlier run" in line
    assert "give this run another folder (the ModelCheckpoint's init_args.dirpath)" in line


@pytest.mark.parametrize("steps", ["0", "-5"])
def test_max_generator_steps_below_one_is_a_one_line_error(trained, tmp_path, capsys, steps) -> None:
    # It used to fit no step at all, exit 0 and leave an untrained last.ckpt.
    code, line, _ = signs(fit_args(trained, tmp_path / "run", "--model.init_args.max_generator_steps", steps), capsys)
    assert code == 1
    assert (
        f"max_generator_steps must be a positive integer (or null for no limit), got {steps} (SIGNS_DEBUG=1"
    ) in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_signs_test_without_a_test_split_is_a_one_line_error(trained, tmp_path, capsys) -> None:
    # It used to score the validation split and print `signs validate`'s numbers as the test split's.
    test = ["test", "--config", str(trained / "fit.yaml"), "--ckpt_path", str(trained / "checkpoints" / "last.ckpt")]
    code, line, out = signs([*test, "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert code == 1 and out == ""
    assert line.startswith("signs test: error: EmbeddedMNISTDataModule has no test split")
    assert "fit with data.init_args.test_per_class (e.g. 50) to hold test digits out of training" in line


@pytest.mark.parametrize("pairs", ["0", "-3"])
def test_reg_pairs_below_one_is_a_one_line_error(trained, tmp_path, capsys, pairs) -> None:
    # It used to crash when the pairs were made, with torch's "stack expects a non-empty TensorList".
    code, line, _ = signs(fit_args(trained, tmp_path / "run", "--model.init_args.reg.init_args.pairs", pairs), capsys)
    assert code == 1
    assert f"Regression: pairs must be a positive integer (how many teacher pairs L_reg fits), got {pairs}" in line
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    "command,option",
    [
        (["edit", "denoise"], ["--device", "cuda"]),
        (["edit", "project"], ["--device", "cuda:0"]),
        (["sample"], ["--device", "cuda"]),
        (["sample"], ["--accelerator", "gpu"]),
    ],
    ids=["edit", "edit_index", "sample", "sample_accelerator"],
)
def test_a_cuda_device_without_cuda_is_a_one_line_error(trained, tmp_path, monkeypatch, capsys, command, option):
    # `signs edit --device cuda` used to load the model, then end in torch's "Torch not compiled with CUDA enabled".
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA, whatever this one has
    checkpoint = str(trained / "checkpoints" / "last.ckpt")
    inputs = [str(tmp_path / "image.png")] if command[0] == "edit" else []
    argv = [*command, checkpoint, *inputs, "--output", str(tmp_path / "out"), *option]
    code, line, _ = signs(argv, capsys)
    assert code == 1
    assert line.startswith(f"signs {command[0]}: error: {option[0]} {option[1]}: no CUDA device is available here ")
    assert f"(torch.cuda.is_available() is False): use {option[0]} cpu (SIGNS_DEBUG=1" in line
    assert not (tmp_path / "out").exists()


def test_signs_help_lists_every_command_with_a_description(capsys) -> None:
    from signs_lightning.run.cli import COMMAND_HELP, COMMANDS

    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # help wraps lines to the terminal's width
    assert set(COMMAND_HELP) == {"fit", "validate", "test", "predict", *COMMANDS}
    for name, description in COMMAND_HELP.items():
        assert f" {name} {description}" in out, name


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_ckpt_path_help_says_what_last_means_here(capsys, subcommand) -> None:
    """Lightning's own text ("the last model checkpoint from the previous trainer.fit call") is not what we do."""
    with pytest.raises(SystemExit):
        main([subcommand, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "previous ``trainer.fit`` call" not in out
    assert ("hpc_ckpt_*.ckpt" in out) if subcommand == "fit" else ("--allow_untrained true" in out)


def test_an_unknown_command_names_every_command(capsys) -> None:
    from signs_lightning.run.cli import COMMAND_HELP

    with pytest.raises(SystemExit) as stop:
        main(["bogus"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown command 'bogus'" in err
    assert all(name in err for name in COMMAND_HELP)


def test_a_full_disk_during_a_checkpoint_save_is_one_line(trained, tmp_path, monkeypatch, capsys) -> None:
    # It used to end in a 65-line double traceback from torch.save ("enforce fail at inline_container.cc") naming
    # no path.
    def full_disk(checkpoint, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("signs_lightning.core.checkpoint_io.atomic_torch_save", full_disk)
    code, line, _ = signs(fit_args(trained, tmp_path / "run"), capsys)
    assert code == 1
    assert line.startswith(f"signs fit: error: could not save checkpoint {tmp_path / 'run' / 'checkpoints'}")
    assert ": no space left on device (the previous file there, if any, is unchanged): free space" in line
    assert "--trainer.default_root_dir" in line


def validate_with_teacher(trained: Path, root: Path, teacher: str, ckpt: Path | None = None) -> list[str]:
    """``signs validate`` of the fit's checkpoint with a config naming ``teacher`` (the README's command)."""
    settings = yaml.safe_load((trained / "fit.yaml").read_text())
    settings["model"]["init_args"]["teacher"] = teacher
    config = root / "validate.yaml"
    config.write_text(yaml.safe_dump(settings))
    ckpt = ckpt or trained / "checkpoints" / "last.ckpt"
    return ["validate", "--config", str(config), "--ckpt_path", str(ckpt), "--trainer.default_root_dir", str(root)]


def test_validate_takes_the_checkpoints_teacher_when_the_configs_does_not_exist(
    trained, tiny_teacher_dir, tmp_path, monkeypatch, capsys, caplog
) -> None:
    # configs/sign_mnist.yaml names teachers/mnist16; the demo's checkpoint was trained with runs/demo/teacher.
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("INFO"):
        code, _, out = signs(validate_with_teacher(trained, tmp_path, "teachers/mnist16"), capsys)
    assert code is None and "idem. error" in out
    assert (
        f"teacher teachers/mnist16 (model.init_args.teacher) does not exist: using {tiny_teacher_dir}, the teacher "
        f"checkpoint {trained / 'checkpoints' / 'last.ckpt'} was trained with (its fingerprint "
    ) in caplog.text


def test_the_checkpoints_teacher_is_refused_when_its_fingerprint_differs(trained, tmp_path, monkeypatch, capsys):
    # The fallback cannot pick another teacher silently: the recorded fingerprint is checked when the checkpoint loads.
    import torch

    monkeypatch.chdir(tmp_path)
    checkpoint = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=False)
    checkpoint["signs_teacher"]["fingerprint"] = "0123456789abcdef"
    torch.save(checkpoint, tmp_path / "other.ckpt")
    code, line, _ = signs(validate_with_teacher(trained, tmp_path, "teachers/mnist16", tmp_path / "other.ckpt"), capsys)
    assert code == 1
    assert "(fingerprint 0123456789abcdef), but the teacher loaded from" in line


def test_a_checkpoint_without_a_teacher_fingerprint_names_the_flag(trained, tiny_teacher_dir, tmp_path, capsys):
    import torch

    checkpoint = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=False)
    del checkpoint["signs_teacher"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    absent = str(tmp_path / "absent")
    code, line, _ = signs(validate_with_teacher(trained, tmp_path, absent, tmp_path / "old.ckpt"), capsys)
    assert code == 1
    assert line.startswith(f"signs validate: error: teacher {absent} (model.init_args.teacher) does not exist; ")
    assert f"if it is, add --model.init_args.teacher {tiny_teacher_dir} (SIGNS_DEBUG=1" in line
