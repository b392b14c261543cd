"""The editing benchmark (``benchmarks/editing.py``): the teacher's editors, and the whole run on tiny checkpoints
with ``--smoke`` (numbers are not asserted there: only the outputs' shape)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import TINY, tiny_sign
from torch import Tensor, nn

from benchmarks import editing as bench
from signs_lightning.core.errors import SignsError
from signs_lightning.core.randomness import seeded_generator
from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.diffusion.score_model import ScoreModel, load_teacher
from signs_lightning.inference import editing, sampling
from signs_lightning.run.cli import cli_main

# The data and trainer arguments of the tiny SIGN fit, shared with the IGN fit.
DATA_AND_TRAINER = TINY[TINY.index("--data.class_path") :]


def fit(root: Path, teacher: Path, *model_args: str) -> Path:
    cli_main(["fit", *model_args, *DATA_AND_TRAINER, "--model.init_args.teacher", str(teacher),
              "--model.init_args.max_generator_steps", "2", "--trainer.default_root_dir", str(root),
              "--trainer.num_sanity_val_steps", "0"])  # fmt: skip
    (path,) = root.rglob("*.ckpt")
    return path


@pytest.fixture(scope="module")
def checkpoints(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(SIGN, IGN) checkpoints of 2-generator-step fits through the CLI, as tests/test_module_commands.py makes."""
    root = tmp_path_factory.mktemp("fits")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIGNS_CACHE", str(root / "cache"))
        sign = fit(root / "sign", tiny_teacher_dir, *TINY[: TINY.index("--data.class_path")])
        ign = fit(root / "ign", tiny_teacher_dir, "--model.class_path", "signs_lightning.modules.IGNModule")
    return sign, ign


def generators(seed: int, count: int) -> list[torch.Generator]:
    return [seeded_generator(seed, i) for i in range(count)]


class PointMass(nn.Module):
    """The exact ε-prediction of a data distribution that is the single image ``point``: any DDIM path lands on it."""

    def __init__(self, point: Tensor, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.point, self.schedule = point, schedule

    def forward(self, x_t: Tensor, t: Tensor) -> SimpleNamespace:
        alpha, sigma = self.schedule.alpha_sigma(t, x_t)
        return SimpleNamespace(sample=(x_t - alpha * self.point) / sigma)


@pytest.mark.parametrize("nfe", [1, 4, 10])
def test_an_exact_teacher_repairs_every_corruption_exactly_informed_or_blind(nfe) -> None:
    schedule = NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000})
    point = torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1
    teacher = ScoreModel(PointMass(point, schedule), schedule)
    x, keys = point.expand(3, -1, -1, -1), torch.arange(3)
    editors = [
        bench.Method("teacher", nfe, bench.teacher_editor(teacher, nfe)),
        bench.Method("teacher_fixed", nfe, bench.fixed_level_editor(teacher, 300, nfe), blind=True, level=300),
        bench.Method("teacher_estimated", nfe, bench.estimated_level_editor(teacher, nfe), blind=True),
    ]
    for corruption in bench.CORRUPTIONS:
        y, fill = bench.corrupt(corruption, x, keys, seed=0)
        for method in editors:
            result = bench.apply(method, corruption, y, fill, keys, seed=0, batch_size=2)
            torch.testing.assert_close(result, x, atol=1e-4, rtol=0, msg=f"{corruption.key} {method.label}")


def test_blind_methods_are_given_the_corrupted_image_alone() -> None:
    seen = []

    def editor(corruption, y, fill, generators):
        seen.append((corruption, fill))
        return y

    x, keys = torch.zeros(3, 1, 8, 8), torch.arange(3)
    for corruption in bench.CORRUPTIONS:
        y, fill = bench.corrupt(corruption, x, keys, seed=0)
        bench.apply(bench.Method("sign", 1, editor, blind=True), corruption, y, fill, keys, seed=0, batch_size=2)
        bench.apply(bench.Method("sign", 1, editor), corruption, y, fill, keys, seed=0, batch_size=2)
    blind, informed = seen[0::4] + seen[1::4], seen[2::4] + seen[3::4]
    assert all(told is None and mask is None for told, mask in blind)
    assert all(told is not None and (mask is None) == told.is_noise for told, mask in informed)


def test_teacher_denoising_takes_one_noise_level_per_image(tiny_teacher_dir) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    y = torch.rand((3, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1
    sigmas = torch.tensor([0.2, 0.0, 1.0])  # σ = 0: the lowest level that fits the steps
    with torch.no_grad():
        together = bench.teacher_denoise(teacher, y, sigmas, 4)
        alone = [bench.teacher_denoise(teacher, y[i : i + 1], float(s), 4) for i, s in enumerate(sigmas)]
    torch.testing.assert_close(together, torch.cat(alone))
    assert bench.start_level(teacher, 0.0, 4) == 4 and bench.start_level(teacher, 1.0, 4) == 258


def test_teacher_inpainting_keeps_known_pixels_and_is_ddim_where_nothing_is_known(tiny_teacher_dir) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    y = torch.rand((3, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1
    fill = bench.fill_mask(bench.CORRUPTIONS[-1], 8, generators(1, 3))
    with torch.no_grad():
        result = bench.teacher_inpaint(teacher, y, fill, 4, generators(0, 3))
        again = bench.teacher_inpaint(teacher, y, fill, 4, generators(0, 3))
        # Everything to fill: the teacher's own DDIM sampler from the same noise.
        free = bench.teacher_inpaint(teacher, y, torch.ones_like(fill), 4, generators(0, 3))
    assert torch.equal(result[fill == 0], y[fill == 0]) and torch.equal(result, again)
    torch.testing.assert_close(free, teacher.ddim_sample(sampling.randn_like(y, generators(0, 3)), 4))


def test_masks_and_noise_are_seeded_per_image_and_fill_their_share() -> None:
    by_key = {c.key: c for c in bench.CORRUPTIONS}
    masks = bench.fill_mask(by_key["pixels_80"], 10, generators(0, 2))
    assert masks.sum(dim=(1, 2, 3)).tolist() == [80, 80] and not torch.equal(masks[0], masks[1])
    assert bench.fill_mask(by_key["box_half"], 8, [None])[0, 0, 4:].all()
    x = torch.zeros(3, 1, 8, 8)
    noisy, fill = bench.corrupt(by_key["noise_0.5"], x, torch.tensor([4, 7, 9]), seed=0)
    alone, _ = bench.corrupt(by_key["noise_0.5"], x[:1], torch.tensor([7]), seed=0)
    assert fill is None and torch.equal(noisy[1], alone[0])


def test_teacher_denoising_starts_at_the_noise_level(tiny_teacher_dir) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    y = torch.rand((2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    t = editing.noise_level_timestep(teacher.schedule, 0.5)
    alpha, _ = teacher.schedule.alpha_sigma(torch.full((2,), t), y)
    with torch.no_grad():
        one_step = bench.teacher_denoise(teacher, y, 0.5, 1)
    torch.testing.assert_close(one_step, teacher.predict_x0(alpha * y, torch.full((2,), t)))


@pytest.mark.slow
def test_smoke_editing_benchmark_writes_every_output(checkpoints, tmp_path) -> None:
    sign, ign = checkpoints
    out = bench.main(["--sign", str(sign), "--ign", str(ign), "--output", str(tmp_path / "editing"), "--smoke"])
    figures = ["editing_metrics.png", "editing_examples_informed.png", "editing_examples_blind.png"]
    for name in ["editing.json", "editing.md", *figures]:
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "editing.json").read_text())
    shared = {("corrupted", 0), ("ign", 1)} | {("sign", k) for k in (1, 2, 4)}
    teachers = {"informed": ["teacher"], "blind": ["teacher_fixed", "teacher_estimated"]}
    for setting in ("informed", "blind"):
        methods = shared | {(name, k) for name in teachers[setting] for k in (1, 4, 10)}
        rows = summary[setting]["rows"]
        assert len(rows) == len(bench.CORRUPTIONS) * len(methods), setting
        for corruption in bench.CORRUPTIONS:
            found = {(row["method"], row["nfe"]) for row in rows if row["corruption"] == corruption.key}
            assert found == methods, (setting, corruption.key)
        assert all(math.isfinite(row[key]) for row in rows for key in ("psnr", "accuracy", "fd"))
        assert set(summary[setting]["tables"]) == {"psnr", "accuracy", "fd"}
        assert summary[setting]["tables"]["fd"]["sign @ 2"].keys() == {c.key for c in bench.CORRUPTIONS}
    levels = summary["blind"]["teacher_levels"]
    assert set(levels) == {"1", "4", "10"} and all(str(v["level"]) in v["scores"] for v in levels.values())
    assert all(row["level"] == levels[str(row["nfe"])]["level"]
               for row in summary["blind"]["rows"] if row["method"] == "teacher_fixed")  # fmt: skip
    assert summary["settings"]["num_images"] == 16 and summary["settings"]["tune_images"] == 8
    assert set(summary["clean"]) == {"accuracy", "fd"} and set(summary["provenance"]) == {"git_commit", "config_sha256"}
    targets = summary["targets"]
    assert len(targets) == 2 * (len(bench.CORRUPTIONS) + 1)
    assert all(set(t) == {"target", "met", "detail"} and t["met"] in (True, False) for t in targets)
    assert [t["target"].split(",")[0] for t in targets] == ["informed"] * 8 + ["blind"] * 8
    text = (out / "editing.md").read_text()
    assert "## Informed" in text and "## Blind" in text and "## Targets" in text
    assert "| sign @ 2 |" in text and "| teacher @ 10 |" in text and "| teacher, fixed t* @ 4 |" in text


def test_tuning_and_scored_digits_are_disjoint() -> None:
    datamodule = bench.held_out_module(8)
    _, _, scored = bench.pick_digits(datamodule, 400, seed=0)
    _, labels, tuning = bench.pick_digits(datamodule, 100, seed=0, last=True)
    assert not set(scored.tolist()) & set(tuning.tolist()) and len(set(labels.tolist())) == 10


def test_sampler_options_override_the_checkpoints_and_are_checked(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir, reg=False)
    argv = ["--sign", "ckpt", "--renoise-noise", "path", "--renoise-spacing", "constant", "--renoise-eta", "0.4"]
    settings = bench.sampler_settings(model, bench.parse_args(argv))
    assert settings == {"renoise_noise": "path", "renoise_max_level": model.renoise_max_level,
                        "renoise_spacing": "constant", "renoise_eta": 0.4}  # fmt: skip
    assert (model.renoise_noise, model.renoise_spacing, model.renoise_eta) == ("path", "constant", 0.4)
    assert model.renoise_timesteps(3) == [model.renoise_timesteps(2)[0]] * 2
    with pytest.raises(SignsError, match="renoise_eta > 0"):
        bench.sampler_settings(
            tiny_sign(tiny_teacher_dir, reg=False), bench.parse_args(["--sign", "c", "--renoise-eta", "0.4"])
        )
