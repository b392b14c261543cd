"""The IGN baseline: IGN's gradient routing, its defaults, and short fits with both generator networks."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import Tensor, nn

from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.losses import distance_fn
from signs_lightning.modules import IGNModule, SIGNModule
from signs_lightning.networks import DCGANAutoencoder


def tiny_ign(network: str, teacher_dir: Path, **kwargs) -> IGNModule:
    """An 8x8 single-channel IGN: the tiny teacher's UNet, or an 8-wide DCGAN autoencoder."""
    if network == "teacher_unet":
        return IGNModule(teacher=str(teacher_dir), **kwargs)
    return IGNModule(network="dcgan", image_size=8, channels=1, dcgan_width=8, **kwargs)


def param_grads(loss: Tensor, module: nn.Module) -> list[Tensor]:
    """d loss / d θ for every parameter of ``module``, zeros where the loss does not depend on it."""
    params = list(module.parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def assert_grads_close(actual: list[Tensor], expected: list[Tensor]) -> None:
    assert any(g.abs().sum() > 0 for g in expected), "the reference gradient is zero: the check would be vacuous"
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-7)


def batch(seed: int = 0) -> tuple[Tensor, Tensor]:
    """Images x in [-1, 1] and noise z, both (4, 1, 8, 8)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(4, 1, 8, 8, generator=gen) * 2 - 1, torch.randn(4, 1, 8, 8, generator=gen)


@pytest.mark.parametrize("network", ["teacher_unet", "dcgan"])
def test_tightening_gradient_flows_through_the_outer_f_only(network: str, tiny_teacher_dir: Path) -> None:
    module = tiny_ign(network, tiny_teacher_dir)
    f, d = module.student, distance_fn("l1")
    x, z = batch()
    z.requires_grad_(True)
    losses, _ = module.generator_losses(x, z)

    # The reference: f(z) as a constant c, the clamp's scale as a constant; only f(c) carries θ.
    c = f(z).detach()
    scale = 1.5 * losses["rec"].detach()
    expected = torch.tanh(-d(f(c), c) / scale) * scale

    torch.testing.assert_close(losses["tight"], expected)
    assert_grads_close(param_grads(losses["tight"], f), param_grads(expected, f))
    # The inner f(z) is not on the graph at all: nothing reaches its input either.
    assert torch.autograd.grad(losses["tight"], z, allow_unused=True)[0] is None


@pytest.mark.parametrize("network", ["teacher_unet", "dcgan"])
def test_idempotence_gradient_flows_through_the_inner_f_only(network: str, tiny_teacher_dir: Path) -> None:
    module = tiny_ign(network, tiny_teacher_dir)
    f, d = module.student, distance_fn("l1")
    x, z = batch(1)
    losses, _ = module.generator_losses(x, z)

    # The reference: the outer application by a frozen copy of f, so only the inner f(z) carries θ.
    outer = copy.deepcopy(f).requires_grad_(False)
    f_z = f(z)
    expected = d(outer(f_z), f_z)

    torch.testing.assert_close(losses["idem"], expected)
    assert_grads_close(param_grads(losses["idem"], f), param_grads(expected, f))


def test_defaults_are_igns_published_ones(tiny_teacher_dir: Path) -> None:
    module = tiny_ign("teacher_unet", tiny_teacher_dir)
    assert {name: term.weight for name, term in module.losses.items()} == {"rec": 20.0, "idem": 20.0, "tight": 2.5}
    assert module.hparams.distance == "l1" and module.losses["tight"].clamp_ratio == 1.5
    (config,) = module.configure_optimizers()
    optimizer = config["optimizer"]
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["lr"] == 1e-4 and tuple(optimizer.defaults["betas"]) == (0.5, 0.999)


def test_network_arguments_are_checked(tiny_teacher_dir: Path) -> None:
    with pytest.raises(ValueError, match="needs a teacher"):
        IGNModule(network="teacher_unet")
    with pytest.raises(ValueError, match="needs image_size and channels"):
        IGNModule(network="dcgan", image_size=8)
    with pytest.raises(ValueError, match="contradict the teacher"):
        IGNModule(teacher=str(tiny_teacher_dir), image_size=16)


@pytest.mark.parametrize("image_size", [8, 16, 32, 64])
def test_dcgan_autoencoder_maps_images_to_images_in_the_tanh_range(image_size: int) -> None:
    f = DCGANAutoencoder(image_size, channels=3, width=4)
    y = f(torch.randn(2, 3, image_size, image_size) * 3)
    assert y.shape == (2, 3, image_size, image_size)
    assert y.abs().max() < 1
    assert f.encoder(torch.zeros(2, 3, image_size, image_size)).shape[-2:] == (1, 1)


def test_dcgan_autoencoder_rejects_sizes_it_cannot_halve_to_4() -> None:
    with pytest.raises(ValueError, match="power of two"):
        DCGANAutoencoder(28, channels=1)


def fit(module: IGNModule, steps: int) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        limit_val_batches=1,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=EmbeddedMNISTDataModule(image_size=8, batch_size=16))
    return trainer


def test_short_fit_trains_the_generator_and_leaves_the_teacher_alone(tiny_teacher_dir: Path) -> None:
    torch.manual_seed(0)
    module = tiny_ign("teacher_unet", tiny_teacher_dir)
    generator_before = copy.deepcopy(module.student.state_dict())
    teacher_before = copy.deepcopy(module.teacher.state_dict())

    trainer = fit(module, steps=3)

    assert module.generator_steps == 3
    assert any(not torch.equal(v, module.student.state_dict()[k]) for k, v in generator_before.items())
    assert all(torch.equal(v, module.teacher.state_dict()[k]) for k, v in teacher_before.items())
    assert {"train/loss_rec", "train/loss_idem", "train/loss_tight", "train/loss"} <= set(trainer.callback_metrics)
    # −d ≤ 0, and the clamp bounds its magnitude by a·L_rec.
    metrics = trainer.callback_metrics
    assert -1.5 * metrics["train/loss_rec"] <= metrics["train/loss_tight"] <= 0


def test_short_fit_with_the_dcgan_autoencoder(tiny_teacher_dir: Path) -> None:
    torch.manual_seed(0)
    module = tiny_ign("dcgan", tiny_teacher_dir)
    assert module.teacher is None and module.image_shape == (1, 8, 8)
    generator_before = copy.deepcopy(module.student.state_dict())

    trainer = fit(module, steps=2)

    assert module.generator_steps == 2
    assert any(not torch.equal(v, module.student.state_dict()[k]) for k, v in generator_before.items())
    assert "train/loss_tight" in trainer.callback_metrics
    assert module.sample(torch.randn(3, 1, 8, 8), nfe=2).shape == (3, 1, 8, 8)


def test_igns_f_takes_the_same_conditioning_as_signs(tiny_teacher_dir: Path) -> None:
    settings = dict(conditioning_timestep=300, output_head="prediction")
    ign = IGNModule(teacher=str(tiny_teacher_dir), **settings)
    sign = SIGNModule(teacher=str(tiny_teacher_dir), reg=None, **settings)
    z = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ign.student(z), sign.student(z))
        assert not torch.allclose(ign.student(z), IGNModule(teacher=str(tiny_teacher_dir)).student(z))
    with pytest.raises(ValueError, match="not with 'dcgan'"):
        IGNModule(network="dcgan", image_size=8, channels=1, conditioning_timestep=300)


def test_real_images_run_through_f_once_for_reconstruction_and_tightening(tiny_teacher_dir: Path) -> None:
    module = tiny_ign("dcgan", tiny_teacher_dir)
    x, z = batch(2)
    inputs: list[Tensor] = []
    module.student.register_forward_hook(lambda m, args, output: inputs.append(args[0]))
    module.generator_losses(x, z)
    # IGN's forwards stay apart (batch norm): z, then x once, then the outer f of L_idem and L_tight.
    assert [t.shape[0] for t in inputs] == [4, 4, 4, 4]
    assert sum(torch.equal(t, x) for t in inputs) == 1 and torch.equal(inputs[0], z)
