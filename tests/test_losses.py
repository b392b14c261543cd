"""Each SIGN loss sends gradients exactly where docs/method.md says, and nowhere else."""

from __future__ import annotations

import copy

import pytest
import torch

from signs_lightning.diffusion import load_teacher
from signs_lightning.losses import (
    denoising_loss,
    distance_fn,
    dmd_loss,
    flow_pair,
    idempotence_loss,
    reconstruction_loss,
)
from signs_lightning.networks import IdempotentGenerator

mse = distance_fn("mse")


@pytest.fixture()
def nets(tiny_teacher_dir):
    """(student f, teacher made trainable so a leak would show as a gradient, fake score)."""
    torch.manual_seed(0)
    frozen = load_teacher(tiny_teacher_dir)
    f = IdempotentGenerator(frozen)
    fake = frozen.trainable_copy()
    with torch.no_grad():  # move f and the fake score away from the teacher so that no term is trivially zero
        for p in [*f.parameters(), *fake.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    return f, frozen.trainable_copy(), fake


def grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def assert_no_grad(*modules: torch.nn.Module) -> None:
    for module in modules:
        assert all(g is None for g in grads(module)), f"{type(module).__name__} received a gradient"


def assert_has_grad(module: torch.nn.Module) -> None:
    assert any(g is not None and g.abs().sum() > 0 for g in grads(module))


def test_idempotence_gradient_only_through_inner_f(nets) -> None:
    f, _, _ = nets
    z = torch.randn(4, 1, 8, 8)
    idempotence_loss(f, f(z), mse).backward()
    ours = [g.clone() for g in grads(f)]
    # Reference: the outer f is a separate, frozen copy, so only the inner application can carry gradient.
    f.zero_grad(set_to_none=True)
    outer = copy.deepcopy(f).requires_grad_(False)
    f_z = f(z)
    mse(outer(f_z), f_z).backward()
    for a, b in zip(ours, grads(f)):
        torch.testing.assert_close(a, b)
    # And it differs from the full gradient (outer f trained too), so the detach really matters.
    f.zero_grad(set_to_none=True)
    f_z = f(z)
    mse(f(f_z), f_z).backward()
    assert any(not torch.allclose(a, b) for a, b in zip(ours, grads(f)))


def test_reconstruction_trains_f_only(nets) -> None:
    f, teacher, fake = nets
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    reconstruction_loss(f(x), x, mse).backward()
    assert_has_grad(f)
    assert_no_grad(teacher, fake)


@pytest.mark.parametrize("target_network", ["student", "copy"])
def test_flow_gradient_reaches_f_not_teacher_or_target(nets, target_network) -> None:
    f, teacher, _ = nets
    target_f = f if target_network == "student" else copy.deepcopy(f)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    y, flow_target = flow_pair(target_f, teacher, x, num_intervals=4)
    assert not flow_target.requires_grad
    mse(f(y), flow_target).backward()
    assert_has_grad(f)
    assert_no_grad(teacher)
    if target_network == "copy":
        assert_no_grad(target_f)


def test_dmd_gradient_is_the_score_difference(nets) -> None:
    """The defining property: for fixed t and noise, dL/dx_g = (fake x̂₀ − teacher x̂₀) / w / numel."""
    f, teacher, fake = nets
    x_g = f(torch.randn(4, 1, 8, 8))
    x_g.retain_grad()
    t, noise = torch.tensor([30, 300, 600, 900]), torch.randn(4, 1, 8, 8)
    dmd_loss(x_g, teacher, fake, t=t, noise=noise).backward()
    assert_has_grad(f)
    assert_no_grad(teacher, fake)
    with torch.no_grad():
        x_t = teacher.schedule.q_sample(x_g, t, noise)
        real, fake_x0 = teacher.predict_x0(x_t, t), fake.predict_x0(x_t, t)
        weight = (x_g - real).abs().mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(x_g.grad, (fake_x0 - real) / weight / x_g.numel())


def test_denoising_trains_fake_score_only(nets) -> None:
    f, teacher, fake = nets
    denoising_loss(fake, f(torch.randn(4, 1, 8, 8)).detach()).backward()
    assert_has_grad(fake)
    assert_no_grad(f, teacher)


@pytest.mark.parametrize("name", ["mse", "l1", "pseudo_huber"])
def test_distances_are_zero_on_equal_inputs_and_positive_otherwise(name) -> None:
    d = distance_fn(name)
    a = torch.randn(3, 1, 4, 4)
    assert float(d(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(d(a, a + 0.1)) > 0


def test_unknown_distance_is_rejected() -> None:
    with pytest.raises(ValueError, match="distance must be one of"):
        distance_fn("lpips2")
