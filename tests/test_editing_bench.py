"""The editing benchmark (``benchmarks/editing.py``): the teacher's editors, and the whole run on tiny checkpoints
with ``--smoke`` (numbers are not asserted there: only the outputs' shape)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import TINY
from torch import Tensor, nn

from benchmarks import editing as bench
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
def test_an_exact_teacher_repairs_every_corruption_exactly(nfe) -> None:
    schedule = NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000})
    point = torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1
    teacher = ScoreModel(PointMass(point, schedule), schedule)
    x, keys = point.expand(3, -1, -1, -1), torch.arange(3)
    for corruption in bench.CORRUPTIONS:
        y, fill = bench.corrupt(corruption, x, keys, seed=0)
        result = bench.apply(bench.Method("teacher", nfe, bench.teacher_editor(teacher, nfe)), corruption, y, fill,
                             keys, seed=0, batch_size=2)  # fmt: skip
        torch.testing.assert_close(result, x, atol=1e-4, rtol=0, msg=corruption.key)


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
    for name in ["editing.json", "editing.md", "editing_metrics.png", "editing_examples.png"]:
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "editing.json").read_text())
    methods = {("corrupted", 0), ("ign", 1)} | {("sign", k) for k in (1, 2, 4)} | {("teacher", k) for k in (1, 4, 10)}
    assert len(summary["rows"]) == len(bench.CORRUPTIONS) * len(methods)
    for corruption in bench.CORRUPTIONS:
        rows = [row for row in summary["rows"] if row["corruption"] == corruption.key]
        assert {(row["method"], row["nfe"]) for row in rows} == methods, corruption.key
        assert all(math.isfinite(row[key]) for row in rows for key in ("psnr", "accuracy", "fd"))
    assert summary["settings"]["num_images"] == 16 and set(summary["clean"]) == {"accuracy", "fd"}
    assert set(summary["provenance"]) == {"git_commit", "config_sha256"}
    assert summary["target"]["met"] in (True, False) and "noise_0.5" in summary["target"]["detail"]
    text = (out / "editing.md").read_text()
    assert "## Target" in text and "| sign @ 2 |" in text and "| teacher @ 10 |" in text
