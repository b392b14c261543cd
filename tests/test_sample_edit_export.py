"""``signs sample``, ``signs edit``, ``signs export`` and ``SIGNPipeline`` on a tiny 1x8x8 SIGN (2 generator steps)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_tiny_teacher
from diffusers import DiffusionPipeline
from helpers import TINY
from huggingface_hub import ModelCard
from PIL import Image

from signs_lightning.commands.export import to_pipeline
from signs_lightning.commands.loading import load_generator
from signs_lightning.commands.sample import describe
from signs_lightning.core.randomness import seeded_generator
from signs_lightning.inference import editing, sampling
from signs_lightning.inference.pipeline import SIGNPipeline
from signs_lightning.inference.prediction import to_uint8
from signs_lightning.modules import SIGNModule
from signs_lightning.run.cli import cli_main, main

ROOT = Path(__file__).resolve().parents[1]
FIDS = {1: 40.2, 2: 36.7}


@pytest.fixture(scope="module")
def checkpoint(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fit")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIGNS_CACHE", str(root / "cache"))
        cli_main(
            [
                "fit",
                *TINY,
                "--model.init_args.teacher",
                str(tiny_teacher_dir),
                "--trainer.default_root_dir",
                str(root),
                "--model.init_args.max_generator_steps",
                "2",
                "--trainer.num_sanity_val_steps",
                "0",
            ]
        )
    (path,) = root.rglob("*.ckpt")
    return path


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> SIGNModule:
    return load_generator(str(checkpoint))


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "sign"
    fids = [arg for nfe, value in FIDS.items() for arg in ("--fid", f"{nfe}={value}")]
    main(["export", str(checkpoint), "--output", str(folder), *fids, "--fid-setting", "2,000 samples, LeNet features"])
    return folder


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    """Three 8x8 greyscale images, the model's own geometry: read without conversion."""
    folder = tmp_path / "digits"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"d{i}.png")
    return folder


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def unit(path: Path) -> torch.Tensor:
    """An image file as signs edit reads it: (1, C, H, W) in [-1, 1]."""
    array = torch.from_numpy(pixels(path).astype(np.float32) / 255.0)
    return (array[None, None] if array.ndim == 2 else array.permute(2, 0, 1)[None]).mul(2).sub(1)


def sample(model: str | Path, out: Path, *args: str) -> np.ndarray:
    main(["sample", str(model), "--output", str(out), "--num-samples", "5", *args])
    with np.load(out / "samples.npz") as data:
        return data["arr_0"]


# -- signs sample --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode", [["--nfe", "1"], ["--nfe", "3"], ["--nfe", "2", "--repeat"]], ids=["1nfe", "3nfe", "ffz"]
)
def test_sample_repeats_for_a_seed_whatever_the_batch_and_differs_across_seeds(checkpoint, tmp_path, mode) -> None:
    first = sample(checkpoint, tmp_path / "a", "--seed", "3", "--batch-size", "2", *mode)
    again = sample(checkpoint, tmp_path / "b", "--seed", "3", "--batch-size", "5", *mode)
    other = sample(checkpoint, tmp_path / "c", "--seed", "4", "--batch-size", "2", *mode)
    assert first.shape == (5, 8, 8, 1) and sorted(p.name for p in (tmp_path / "a").glob("0*.png"))[-1] == "000004.png"
    assert (tmp_path / "a" / "grid.png").is_file()
    assert np.array_equal(first, again)
    assert (first != other).any(axis=(1, 2, 3)).all()


def test_sample_grid_holds_the_first_64_samples_in_rows_of_8(checkpoint, tmp_path) -> None:
    main(["sample", str(checkpoint), "--output", str(tmp_path / "g"), "--num-samples", "70", "--batch-size", "35"])
    grid = pixels(tmp_path / "g" / "grid.png")
    with np.load(tmp_path / "g" / "samples.npz") as data:
        samples = data["arr_0"]
    # 8 x 8 images of 8 x 8 pixels, 1-pixel padding: the 64 first samples, not one row of 8.
    assert grid.shape[:2] == (8 * 9 + 1, 8 * 9 + 1)
    last = grid[7 * 9 + 1 : 8 * 9, 7 * 9 + 1 : 8 * 9]
    assert np.array_equal(last[..., 0] if last.ndim == 3 else last, samples[63, ..., 0])


def test_sample_i_is_the_module_sample_of_noise_seed_i(checkpoint, model, tmp_path) -> None:
    images = sample(checkpoint, tmp_path / "s", "--seed", "7", "--nfe", "2")
    z = torch.stack([torch.randn(model.image_shape, generator=seeded_generator(7, i)) for i in range(5)])
    expected = model.sample(z, 2, [seeded_generator(7, i, 1) for i in range(5)])
    assert np.array_equal(images, to_uint8(expected))


def test_an_exported_folder_samples_what_its_checkpoint_does(checkpoint, exported, tmp_path) -> None:
    assert np.array_equal(
        sample(exported, tmp_path / "e", "--nfe", "2"), sample(checkpoint, tmp_path / "c", "--nfe", "2")
    )


def test_bf16_sampling_stays_close_to_float32(exported, tmp_path) -> None:
    bf16 = sample(exported, tmp_path / "bf16", "--nfe", "2", "--bf16").astype(int)
    assert np.abs(bf16 - sample(exported, tmp_path / "fp32", "--nfe", "2")).max() <= 8


def test_sample_refuses_a_folder_with_earlier_samples(checkpoint, tmp_path, capsys) -> None:
    sample(checkpoint, tmp_path / "s")
    with pytest.raises(SystemExit) as exit_info:
        sample(checkpoint, tmp_path / "s")
    assert exit_info.value.code == 1 and "already holds samples" in capsys.readouterr().err


def test_sample_and_edit_refuse_a_teacher_folder(tiny_teacher_dir, digits, tmp_path, capsys) -> None:
    # A DDPMPipeline folder loads as a SIGNPipeline too: its noise predictions were written as 64 images.
    for command in (["sample", str(tiny_teacher_dir)], ["edit", "project", str(tiny_teacher_dir), str(digits)]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--output", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 1 and len(err.splitlines()) == 1, err
        assert f"{tiny_teacher_dir} holds a diffusers DDPMPipeline teacher, not a SIGN generator" in err
        assert "pass a checkpoint (.ckpt) written by `signs fit`, or a folder written by `signs export`" in err
        assert not (tmp_path / "out").exists()


def test_two_processes_sample_the_images_of_one(checkpoint, tmp_path) -> None:
    # Lightning's DDP launcher re-executes sys.argv for rank 1: the command runs as its own process.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "signs_lightning.run.cli",
        "sample",
        str(checkpoint),
        "--output",
        str(tmp_path / "ddp"),
        "--num-samples",
        "5",
        "--nfe",
        "2",
        "--batch-size",
        "2",
        "--devices",
        "2",
        "--accelerator",
        "cpu",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    with np.load(tmp_path / "ddp" / "samples.npz") as data:
        two = data["arr_0"]
    assert np.array_equal(two, sample(checkpoint, tmp_path / "one", "--nfe", "2", "--batch-size", "2"))


# -- signs edit ----------------------------------------------------------------------------------------------------
def edit(task: str, model: Path, inputs: Path, out: Path, *args: str) -> Path:
    main(["edit", task, str(model), str(inputs), "--output", str(out), *args])
    return out


@pytest.mark.parametrize("region", [["--box", "2,1,6,5"], ["--mask", "MASK"]], ids=["box", "mask"])
def test_inpaint_keeps_every_known_pixel_exactly(checkpoint, digits, tmp_path, region) -> None:
    fill = np.zeros((8, 8), dtype=bool)
    fill[1:5, 2:6] = True
    if region[0] == "--mask":
        Image.fromarray(fill.astype(np.uint8) * 255).save(tmp_path / "mask.png")
        region = ["--mask", str(tmp_path / "mask.png")]
    out = edit("inpaint", checkpoint, digits, tmp_path / "out", *region, "--nfe", "2")
    for path in sorted(digits.iterdir()):
        before, after = pixels(path), pixels(out / path.name)
        assert np.array_equal(after[~fill], before[~fill])
        assert not np.array_equal(after[fill], before[fill])
    assert (out / "grid_000.png").is_file()


def test_project_at_strength_zero_is_f_of_the_image(checkpoint, model, digits, tmp_path) -> None:
    out = edit("project", checkpoint, digits, tmp_path / "out", "--strength", "0")
    for path in sorted(digits.iterdir()):
        with torch.no_grad():
            expected = to_uint8(model.sampling_network(unit(path)))[0, ..., 0]
        assert np.array_equal(pixels(out / path.name), expected)


def test_denoise_without_sigma_is_blind_projection(checkpoint, digits, tmp_path, capsys) -> None:
    blind = edit("denoise", checkpoint, digits, tmp_path / "blind", "--nfe", "2")
    assert "denoise (blind: level unknown)" in capsys.readouterr().out
    projected = edit("project", checkpoint, digits, tmp_path / "projected", "--strength", "0", "--nfe", "2")
    for path in sorted(digits.iterdir()):
        assert np.array_equal(pixels(blind / path.name), pixels(projected / path.name))


def test_denoise_with_sigma_is_informed_and_never_renoises_above_it(
    checkpoint, model, digits, tmp_path, monkeypatch, capsys
) -> None:
    from signs_lightning.diffusion.schedule import NoiseSchedule

    levels: list[int] = []
    q_sample = NoiseSchedule.q_sample

    def recording(self, x0, t, noise):
        levels.extend(sorted(set(t.tolist())))
        return q_sample(self, x0, t, noise)

    monkeypatch.setattr(NoiseSchedule, "q_sample", recording)
    # σ = 0.1 sits at t = 26, below the model's own top level (50): the refinement is capped at 26.
    out = edit("denoise", checkpoint, digits, tmp_path / "out", "--sigma", "0.1", "--nfe", "3")
    assert "denoise (informed: σ = 0.1)" in capsys.readouterr().out
    t_sigma = editing.noise_level_timestep(model.schedule, 0.1)
    assert model.renoise_timesteps(3)[0] > t_sigma and levels == [t_sigma, round(t_sigma / 2)]
    images = torch.cat([unit(path) for path in sorted(digits.iterdir())])
    generators = [seeded_generator(0, i) for i in range(len(images))]
    with torch.no_grad():
        expected = editing.denoise(model.sampling_network, images, model.schedule, 0.1, model.renoise_timesteps(3),
                                   generators)  # fmt: skip
    for path, image in zip(sorted(digits.iterdir()), to_uint8(expected.clamp(-1, 1))):
        assert np.array_equal(pixels(out / path.name), image[..., 0])


@pytest.mark.parametrize(
    "task",
    [
        ["inpaint", "--box", "0,0,4,8"],
        ["denoise", "--sigma", "0.3", "--add-noise"],
        ["denoise"],
        ["project", "--strength", "0.5"],
    ],
    ids=["inpaint", "denoise-informed", "denoise-blind", "project"],
)
def test_edits_repeat_for_a_seed_and_differ_across_seeds(checkpoint, digits, tmp_path, task) -> None:
    def run(name: str, seed: str, batch: str) -> list[np.ndarray]:
        out = edit(
            task[0], checkpoint, digits, tmp_path / name, *task[1:], "--nfe", "2", "--seed", seed, "--batch-size", batch
        )
        return [pixels(out / path.name) for path in sorted(digits.iterdir())]

    first, again, other = run("a", "0", "1"), run("b", "0", "3"), run("c", "1", "1")
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert all(not np.array_equal(a, c) for a, c in zip(first, other))


def test_other_sizes_and_colour_are_converted_with_a_notice(checkpoint, tmp_path, capsys) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(np.full((16, 16, 3), (200, 30, 30), dtype=np.uint8)).save(inputs / "red16.png")
    Image.fromarray(np.zeros((8, 10), dtype=np.uint8)).save(inputs / "wide.png")
    edit("project", checkpoint, inputs, tmp_path / "out", "--crop")
    printed = capsys.readouterr().out
    assert "red16.png: RGB converted to greyscale; 16x16 resized to 8x8" in printed
    assert "wide.png: 10x8 resized and centre-cropped to 8x8" in printed
    assert (
        Image.open(tmp_path / "out" / "red16.png").size == (8, 8)
        and Image.open(tmp_path / "out" / "red16.png").mode == "L"
    )


def test_edit_refuses_a_folder_with_earlier_results(checkpoint, digits, tmp_path, capsys) -> None:
    out = edit("project", checkpoint, digits, tmp_path / "out")
    (out / "grid_001.png").write_bytes((out / "grid_000.png").read_bytes())  # a stale grid of a larger run
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        edit("denoise", checkpoint, digits, out)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and len(err.splitlines()) == 1, err
    assert f"{out} already holds results of an earlier run (grid_000.png, grid_001.png, d0.png and 2 more)" in err
    assert "choose a new --output folder, or empty that folder" in err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    # As for signs sample, files of other kinds do not make a folder an earlier run's.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert (edit("project", checkpoint, digits, tmp_path / "mine") / "grid_000.png").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["project", "WIDE"], "is 10x8 but the model takes 1-channel 8x8 images: crop it to a square, or pass --crop"),
        (["colorize", "DIGITS"], "colorize needs a 3-channel model; this one makes 1-channel 8x8 images"),
        (["inpaint", "DIGITS", "--box", "0,0,9,4"], "is not a non-empty box inside the model's 8x8 images"),
        (["inpaint", "DIGITS", "--mask", "BLACK"], "marks no pixel to fill"),
        (["project", "DIGITS", "--strength", "1.5"], "strength must be in [0, 1]"),
        (["project", "MISSING"], "does not exist: pass image files or folders"),
        (["denoise", "DIGITS", "--add-noise"], "denoise --add-noise needs --sigma"),
    ],
    ids=["aspect", "colorize-grey-model", "box", "empty-mask", "strength", "missing-input", "add-noise-no-sigma"],
)
def test_bad_inputs_are_refused_in_one_line(checkpoint, digits, tmp_path, capsys, args, message) -> None:
    Image.fromarray(np.zeros((8, 10), dtype=np.uint8)).save(tmp_path / "wide.png")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "black.png")
    paths = {
        "WIDE": tmp_path / "wide.png",
        "DIGITS": digits,
        "BLACK": tmp_path / "black.png",
        "MISSING": tmp_path / "nope",
    }
    args = [str(paths.get(arg, arg)) for arg in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["edit", args[0], str(checkpoint), *args[1:], "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and message in err and len(err.splitlines()) == 1, err


def test_a_missing_or_wrong_model_is_refused_in_one_line(tmp_path, tiny_teacher_dir, capsys) -> None:
    for model, message in [
        (tmp_path / "none.ckpt", "does not exist: pass a checkpoint"),
        (tiny_teacher_dir / "unet", "is a folder without model_index.json"),
    ]:
        with pytest.raises(SystemExit):
            main(["sample", str(model), "--output", str(tmp_path / "out")])
        assert message in capsys.readouterr().err


# -- signs export and SIGNPipeline ---------------------------------------------------------------------------------
def as_pipeline_output(images: torch.Tensor) -> torch.Tensor:
    return (images / 2 + 0.5).clamp(0, 1)


@pytest.mark.parametrize("nfe", [1, 2])
def test_exported_pipeline_samples_equal_the_module_s(model, exported, nfe) -> None:
    pipe = SIGNPipeline.from_pretrained(str(exported))
    generator = torch.Generator().manual_seed(0)
    expected = model.sample(torch.randn((3, 1, 8, 8), generator=generator), nfe, generator)
    images = pipe(
        batch_size=3, num_inference_steps=nfe, generator=torch.Generator().manual_seed(0), output_type="pt"
    ).images
    assert torch.equal(images, as_pipeline_output(expected))
    # One generator per image: an image does not depend on the batch it is in.
    per_image = pipe(
        batch_size=2, num_inference_steps=nfe, generator=[seeded_generator(0, i) for i in (5, 6)], output_type="pt"
    )
    alone = pipe(batch_size=1, num_inference_steps=nfe, generator=[seeded_generator(0, 6)], output_type="pt")
    torch.testing.assert_close(per_image.images[1:], alone.images, rtol=0, atol=1e-6)


def test_plain_diffusers_loads_the_folder_with_its_own_pipeline_file(model, exported, tmp_path, monkeypatch) -> None:
    import diffusers.utils.dynamic_modules_utils as dynamic_modules

    monkeypatch.setattr(dynamic_modules, "HF_MODULES_CACHE", str(tmp_path / "modules"))  # not the user's cache
    pipe = DiffusionPipeline.from_pretrained(str(exported), custom_pipeline="pipeline", trust_remote_code=True)
    assert type(pipe).__name__ == "SIGNPipeline" and type(pipe).__module__.startswith("diffusers_modules")
    generator = torch.Generator().manual_seed(1)
    expected = model.sample(torch.randn((2, 1, 8, 8), generator=generator), 2, generator)
    images = pipe(
        batch_size=2, num_inference_steps=2, generator=torch.Generator().manual_seed(1), output_type="np"
    ).images
    assert np.array_equal(images, as_pipeline_output(expected).permute(0, 2, 3, 1).numpy())
    assert pipe(num_inference_steps=1).images[0].size == (8, 8)


def test_the_model_card_states_teacher_config_fids_and_grid(exported, tiny_teacher_dir) -> None:
    card = ModelCard.load(exported / "README.md")
    assert card.data.library_name == "diffusers" and "sign" in card.data.tags
    for nfe, value in FIDS.items():
        assert f"| {nfe} | {value} |" in card.text
    assert "| 1 | 40.2 | given on the command line: 2,000 samples, LeNet features |" in card.text
    assert f"Teacher: `{tiny_teacher_dir.name}` (a local folder" in card.text and "max_generator_steps: 2" in card.text
    assert "![samples](samples.png)" in card.text and (exported / "samples.png").is_file()
    shipped = ROOT / "signs_lightning" / "inference" / "pipeline.py"
    assert (exported / "pipeline.py").read_text() == shipped.read_text()


def test_a_card_takes_the_checkpoints_validation_and_whole_config_and_names_no_local_path(
    checkpoint, tiny_teacher_dir, tmp_path, tmp_path_factory
) -> None:
    # The fit's run folder, with a recorded last validation (what GeneratorModule.on_save_checkpoint would write).
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copyfile(checkpoint.parents[1] / "config.yaml", run / "config.yaml")
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    metrics = {"val/fid1k_lenet16_nfe1": 47.123, "val/fid1k_lenet16_nfe2": 41.0, "val/teacher_fid1k_lenet16_nfe1": 9.0}
    saved["signs_validation"] = {"generator_step": 2, "metrics": metrics}
    torch.save(saved, run / "checkpoints" / "last.ckpt")
    assert saved["signs_teacher"]["source"] == str(tiny_teacher_dir) and tiny_teacher_dir.is_absolute()

    main(["export", str(run / "checkpoints" / "last.ckpt"), "--output", str(tmp_path / "out"), "--fid", "2=39.5"])
    text = (tmp_path / "out" / "README.md").read_text()
    where = "the checkpoint's last validation (generator step 2), 1,000 samples, lenet16 features"
    assert f"| 1 | 47.12 | {where} |" in text
    assert "| 2 | 39.5 | given on the command line |" in text and "41.00" not in text and "9.00" not in text
    # The whole training configuration: data, trainer, the generator's optimizer and the evaluator.
    assert "From the run's config.yaml" in text
    for line in ("class_path: signs_lightning.data.EmbeddedMNISTDataModule", "strategy: auto", "generator_optimizer:"):
        assert line in text
    assert "evaluator: null" in text and "seed_everything: 0" in text
    # No local path: the teacher by folder name and fingerprint, the usage by the folder's name.
    for local in (str(tiny_teacher_dir), str(tmp_path_factory.getbasetemp()), str(Path.home()) + "/"):
        assert local not in text
    assert saved["signs_teacher"]["fingerprint"] in text and f"`{tiny_teacher_dir.name}`" in text
    assert 'DiffusionPipeline.from_pretrained("out"' in text


def test_pipeline_edits_equal_signs_edit_s(model, exported) -> None:
    pipe = SIGNPipeline.from_pretrained(str(exported))
    f, schedule, levels = model.sampling_network, model.schedule, model.renoise_timesteps(2)
    y = torch.rand((2, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1
    fill = torch.zeros(2, 1, 8, 8)
    fill[..., 2:6, 1:5] = 1

    def generators():
        return [seeded_generator(9, i) for i in range(2)]

    cases = [
        (pipe.project(y, 0.4, 2, generators(), "pt"), editing.project(f, y, schedule, 0.4, levels, generators())),
        (pipe.denoise(y, 0.3, 2, generators(), "pt"), editing.denoise(f, y, schedule, 0.3, levels, generators())),
        # Informed with the cap binding (σ = 0.1 sits below the model's top level), and blind.
        (
            pipe.denoise(y, 0.1, 3, generators(), "pt"),
            editing.denoise(f, y, schedule, 0.1, model.renoise_timesteps(3), generators()),
        ),
        (pipe.denoise(y, None, 2, generators(), "pt"), editing.denoise(f, y, schedule, None, levels, generators())),
        (pipe.inpaint(y, fill, 2, generators(), "pt"), sampling.inpaint(f, y, fill, schedule, levels, generators())),
    ]
    for output, expected in cases:
        assert torch.equal(output.images, as_pipeline_output(expected))


def test_edits_take_the_models_constant_levels_and_fresh_noise_in_both(checkpoint) -> None:
    model = load_generator(str(checkpoint))
    model.renoise_noise, model.renoise_eta, model.renoise_spacing, model.renoise_max_level = (
        "path",
        0.4,
        "constant",
        0.3,
    )
    pipe = to_pipeline(model)
    f, schedule, levels = model.sampling_network, model.schedule, model.renoise_timesteps(3)
    # Capped below a corruption's level, constant levels stay constant.
    assert levels == [300, 300] and pipe.capped_timesteps(levels, 26) == sampling.capped_timesteps(levels, 26) == [
        26,
        26,
    ]
    y = torch.rand((2, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1
    fill = torch.zeros(2, 1, 8, 8)
    fill[..., 2:6, 1:5] = 1

    def generators():
        return [seeded_generator(9, i) for i in range(2)]

    cases = [
        (pipe.project(y, 0.4, 3, generators(), "pt"), editing.project(f, y, schedule, 0.4, levels, generators())),
        (pipe.denoise(y, 0.1, 3, generators(), "pt"), editing.denoise(f, y, schedule, 0.1, levels, generators())),
        (pipe.inpaint(y, fill, 3, generators(), "pt"), sampling.inpaint(f, y, fill, schedule, levels, generators())),
    ]
    for output, expected in cases:
        assert torch.equal(output.images, as_pipeline_output(expected))


def test_colorize_keeps_the_luma_and_matches_the_pipeline(tmp_path, capsys) -> None:
    module = SIGNModule(teacher=str(write_tiny_teacher(tmp_path / "rgb", channels=3))).eval()
    pipe = to_pipeline(module)
    grey = (torch.rand((2, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1).expand(-1, 3, -1, -1)
    levels = module.renoise_timesteps(2)
    with torch.no_grad():
        coloured = editing.colorize(
            module.sampling_network, grey, module.schedule, 0.5, levels, [seeded_generator(0, i) for i in range(2)]
        )
    torch.testing.assert_close(editing.luma(coloured), editing.luma(grey), rtol=0, atol=1e-6)
    output = pipe.colorize(grey, 0.5, 2, [seeded_generator(0, i) for i in range(2)], "pt")
    assert torch.equal(output.images, as_pipeline_output(coloured))
    # signs edit colorize, from an exported 3-channel folder: a colour input is read as its luma, with a notice.
    pipe.save_pretrained(tmp_path / "rgb_export")
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(np.full((8, 8), 90, dtype=np.uint8)).save(inputs / "grey.png")
    Image.fromarray(np.full((8, 8, 3), (200, 30, 30), dtype=np.uint8)).save(inputs / "red.png")
    edit("colorize", tmp_path / "rgb_export", inputs, tmp_path / "out", "--nfe", "2")
    assert "red.png: RGB converted to greyscale" in capsys.readouterr().out
    assert Image.open(tmp_path / "out" / "grey.png").mode == "RGB"


def test_export_refuses_a_used_folder_and_leaves_nothing_when_it_fails(
    checkpoint, tmp_path, capsys, monkeypatch
) -> None:
    import signs_lightning.commands.export as export

    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit):
        main(["export", str(checkpoint), "--output", str(tmp_path / "used")])
    assert "is not an empty folder" in capsys.readouterr().err

    def fails(model, folder):
        raise export.SignsError("does not reproduce")

    monkeypatch.setattr(export, "check_reproduces", fails)
    with pytest.raises(SystemExit):
        main(["export", str(checkpoint), "--output", str(tmp_path / "new")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]


def test_a_model_that_renoises_with_its_initial_noise_exports_and_samples_the_same(checkpoint, tmp_path) -> None:
    main(["export", str(checkpoint), "--output", str(tmp_path / "fresh")])
    model = load_generator(str(checkpoint))
    model.renoise_noise = "initial"
    z = torch.randn((3, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    f, (level,) = model.sampling_network, model.renoise_timesteps(2)
    with torch.no_grad():
        once = f(z)
        expected = f(model.schedule.q_sample(once, torch.full((3,), level), z))
    generator = torch.Generator().manual_seed(2)
    assert torch.equal(model.sample(z, 2, generator), expected)
    # No draw after z: the generator is untouched.
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(2).get_state())
    # Exported with the rule, the pipeline samples what the module does (the export checks it, then so do we).
    folder = tmp_path / "initial"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("signs_lightning.commands.export.load_generator", lambda *args, **kwargs: model)
        main(["export", str(checkpoint), "--output", str(folder)])
    pipe = SIGNPipeline.from_pretrained(str(folder))
    assert pipe.config.renoise_noise == "initial"
    images = pipe(latents=z, num_inference_steps=2, output_type="pt").images
    torch.testing.assert_close(images, as_pipeline_output(expected), rtol=0, atol=1e-6)
    assert SIGNPipeline.from_pretrained(str(tmp_path / "fresh")).config.renoise_noise == "fresh"


@pytest.mark.parametrize(
    "noise, eta, spacing",
    [("path", 0.0, "even"), ("path", 0.4, "constant"), ("initial", 0.3, "even")],
    ids=["path", "path-eta-constant", "initial-eta"],
)
def test_the_multistep_rules_export_and_sample_the_same_at_two_and_three_nfe(
    checkpoint, tmp_path, noise, eta, spacing
) -> None:
    model = load_generator(str(checkpoint))
    model.renoise_noise, model.renoise_max_level = noise, 0.3
    model.renoise_eta, model.renoise_spacing = eta, spacing
    z = torch.randn((3, 1, 8, 8), generator=torch.Generator().manual_seed(4))
    folder = tmp_path / "exported"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("signs_lightning.commands.export.load_generator", lambda *args, **kwargs: model)
        main(["export", str(checkpoint), "--output", str(folder)])
    pipe = SIGNPipeline.from_pretrained(str(folder))
    assert (pipe.config.renoise_noise, pipe.config.renoise_eta, pipe.config.renoise_spacing) == (noise, eta, spacing)
    assert (
        pipe.renoise_timesteps(3) == model.renoise_timesteps(3) == ([300, 300] if spacing == "constant" else [300, 150])
    )
    for nfe in (2, 3):
        # The same generator for both: with eta > 0 each re-noising step draws fresh noise from it.
        images = pipe(latents=z, num_inference_steps=nfe, generator=torch.Generator().manual_seed(7), output_type="pt")
        expected = model.sample(z, nfe, torch.Generator().manual_seed(7))
        torch.testing.assert_close(images.images, as_pipeline_output(expected), rtol=0, atol=1e-6)
        # One generator per image too (signs sample's way).
        images = pipe(latents=z, num_inference_steps=nfe, generator=[seeded_generator(0, i) for i in range(3)],
                      output_type="pt")  # fmt: skip
        expected = model.sample(z, nfe, [seeded_generator(0, i) for i in range(3)])
        torch.testing.assert_close(images.images, as_pipeline_output(expected), rtol=0, atol=1e-6)
    # signs sample / signs edit load the folder with the same settings, and the card states them.
    loaded = load_generator(str(folder))
    assert (loaded.renoise_noise, loaded.renoise_eta, loaded.renoise_spacing) == (noise, eta, spacing)
    card = ModelCard.load(folder / "README.md").text
    assert ("levels all at 0.3" if spacing == "constant" else "levels evenly spaced from 0.3") in card
    assert (f"η = {eta} of fresh noise mixed in" in card) == (eta > 0)


def test_a_folder_exported_before_the_sampler_settings_loads_with_the_defaults(exported, tmp_path) -> None:
    folder = tmp_path / "old"
    shutil.copytree(exported, folder)
    index = json.loads((folder / "model_index.json").read_text())
    for key in ("renoise_noise", "renoise_eta", "renoise_spacing"):
        del index[key]
    (folder / "model_index.json").write_text(json.dumps(index))
    loaded = load_generator(str(folder))
    assert (loaded.renoise_noise, loaded.renoise_eta, loaded.renoise_spacing) == ("fresh", 0.0, "even")
    pipe = SIGNPipeline.from_pretrained(str(folder))
    assert pipe.renoise_timesteps(3) == loaded.renoise_timesteps(3) == [50, 25]


def test_signs_sample_names_the_multistep_rule(checkpoint) -> None:
    model = load_generator(str(checkpoint))
    assert describe(model, 3, False) == "3 NFE (re-noised at t = 50, 25)"
    model.renoise_noise, model.renoise_eta, model.renoise_spacing, model.renoise_max_level = (
        "path",
        0.4,
        "constant",
        0.3,
    )
    assert describe(model, 3, False) == "3 NFE (re-noised at t = 300, 300 with the path noise, eta 0.4)"
