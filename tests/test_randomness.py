"""Where randomness comes from: samplers take it as an argument, training streams are seeded per (rank, batch), and
validating never moves them."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import fit, snapshot, tiny_sign

from signs_lightning.core.randomness import seeded_generator
from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.inference import sampling

SCHEDULE = NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000})


def f(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(0.9 * x)


def test_samplers_draw_only_from_the_generator_they_are_given() -> None:
    z = torch.randn(4, 1, 8, 8, generator=seeded_generator(1))
    torch.manual_seed(123)
    a = sampling.multistep(f, z, SCHEDULE, [50, 25], seeded_generator(7))
    torch.manual_seed(456)  # the global RNG does not matter
    b = sampling.multistep(f, z, SCHEDULE, [50, 25], seeded_generator(7))
    c = sampling.multistep(f, z, SCHEDULE, [50, 25], seeded_generator(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    mask = (torch.rand(4, 1, 8, 8) > 0.5).float()
    edits = [sampling.edit(f, z, SCHEDULE, 30, seeded_generator(3)) for _ in range(2)]
    paints = [sampling.inpaint(f, z, 1 - mask, SCHEDULE, [40, 20], seeded_generator(3)) for _ in range(2)]
    assert torch.equal(*edits) and torch.equal(*paints)


def test_one_generator_per_sample_makes_a_sample_independent_of_its_batch() -> None:
    z = torch.randn(3, 1, 8, 8, generator=seeded_generator(2))
    whole = sampling.multistep(f, z, SCHEDULE, [50], [seeded_generator(0, i) for i in range(3)])
    alone = sampling.multistep(f, z[2:], SCHEDULE, [50], [seeded_generator(0, 2)])
    assert torch.equal(whole[2:], alone)
    with pytest.raises(ValueError, match="3 generators for a batch of 2"):
        sampling.randn_like(z[:2], [seeded_generator(0, i) for i in range(3)])


def test_module_sample_is_reproducible_at_every_nfe(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir)
    z = torch.randn(2, 1, 8, 8, generator=seeded_generator(0))
    for nfe in (1, 2, 4):
        assert torch.equal(model.sample(z, nfe, seeded_generator(5)), model.sample(z, nfe, seeded_generator(5)))
    assert not torch.equal(model.sample(z, 2, seeded_generator(5)), model.sample(z, 2, seeded_generator(6)))


def test_validating_does_not_change_the_training_trajectory(tiny_teacher_dir, tmp_path) -> None:
    """Same seed, one run validating after every batch and one never: the trained weights are identical."""
    runs = {}
    for name, val_every in (("validating", 1), ("not_validating", 1000)):
        L.seed_everything(0)
        model = tiny_sign(tiny_teacher_dir, dmd=True, flow=True)
        fit(model, tmp_path / name, steps=4, val_check_interval=val_every, check_val_every_n_epoch=None)
        runs[name] = snapshot(model.student)
    assert all(torch.equal(v, runs["not_validating"][k]) for k, v in runs["validating"].items())
