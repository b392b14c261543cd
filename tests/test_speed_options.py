"""The speed switches (issue 20): each changes how fast a step runs, not what it computes, nor the checkpoints; and
the option bookkeeping of ``benchmarks.speed``."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from helpers import built_sign_cli, fit, snapshot, tiny_sign
from torch import nn

from benchmarks import speed
from benchmarks.speed import OPTIONS, cycle_seconds, default_options, option_effects, option_sets, options_key
from signs_lightning.losses import DataRegression
from signs_lightning.modules.common import NonFiniteUpdates, bare_step_tools
from signs_lightning.modules.ema import EMA


def small_network() -> nn.Module:
    """Convolution, group norm and a batch norm (whose running statistics are buffers the EMA copies)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4), nn.BatchNorm2d(4), nn.SiLU())


@pytest.mark.parametrize("decay", [0.999, 0.5])
def test_foreach_ema_gives_the_loops_numbers(decay: float) -> None:
    # 0.999: every update is in the warm-up, d_n = (1+n)/(10+n); 0.5: the warm-up ends at n = 8, within the run.
    live = small_network()
    loop, fused = EMA(live, decay), EMA(live, decay, foreach=True)
    for step in range(15):
        with torch.no_grad():
            for parameter in live.parameters():
                parameter.add_(torch.randn_like(parameter))
        live(torch.randn(2, 1, 6, 6))  # moves the batch norm's running statistics
        loop.update(live)
        fused.update(live)
        for (name, expected), actual in zip(loop.state_dict().items(), fused.state_dict().values()):
            torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6, msg=f"{name} at update {step}")
    assert int(fused.num_updates) == 15


def test_foreach_ema_loads_a_loop_emas_state_and_goes_on_alike() -> None:
    live = small_network()
    saved = EMA(live, 0.9)
    for _ in range(3):
        saved.update(live)
    resumed = EMA(small_network(), 0.9, foreach=True)
    resumed.load_state_dict(saved.state_dict())  # the same keys and buffers: old checkpoints load
    with torch.no_grad():
        live[0].weight.mul_(2)
    saved.update(live)
    resumed.update(live)
    assert int(resumed.num_updates) == int(saved.num_updates) == 4
    torch.testing.assert_close(resumed.state_dict(), saved.state_dict(), rtol=1e-6, atol=1e-6)


def one_update(model, scale: float) -> tuple[bool, dict[str, torch.Tensor]]:
    """One bare update of f on a loss scaled by ``scale``, with SGD: (applied, f's weights after it)."""
    model.step_tools = bare_step_tools(model)
    optimizer = torch.optim.SGD(model.student.parameters(), lr=0.1)
    loss = model.student(torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))).pow(2).mean() * scale
    applied = model.update(loss, optimizer, "generator", model.student.parameters)
    return applied, snapshot(model.student)


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_one_pass_gradients_clip_as_two_passes(tiny_teacher_dir, scale: float) -> None:
    # Scale 1e4: the gradient norm far above the clip norm, so clipping scales it.
    two_passes = tiny_sign(tiny_teacher_dir, gradient_clip_norm=0.5)
    one_pass = copy.deepcopy(two_passes)
    one_pass.one_pass_gradients = True
    (applied, expected), (applied_once, actual) = one_update(two_passes, scale), one_update(one_pass, scale)
    assert applied and applied_once
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-7)


def test_one_pass_gradients_skip_a_non_finite_update(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir, one_pass_gradients=True)
    before = snapshot(model.student)
    applied, after = one_update(model, float("nan"))
    assert not applied and model.skipped_updates == 1 and model.consecutive_skips == 1
    assert all(torch.equal(value, before[key]) for key, value in after.items())


def test_one_pass_gradients_skip_then_stop_a_lightning_fit(tiny_teacher_dir, tmp_path) -> None:
    model = tiny_sign(tiny_teacher_dir, max_consecutive_skips=2, one_pass_gradients=True)
    student, ema = snapshot(model.student), snapshot(model.ema)
    next(model.student.parameters()).register_hook(lambda grad: grad * float("inf"))  # every f update non-finite
    with pytest.raises(NonFiniteUpdates, match="2 updates in a row had a non-finite gradient"):
        fit(model, tmp_path, steps=10)
    assert model.skipped_updates == 2 and model.generator_steps == 0
    assert all(torch.equal(v, student[k]) for k, v in model.student.state_dict().items())
    assert all(torch.equal(v, ema[k]) for k, v in model.ema.state_dict().items())


def test_compile_keeps_the_checkpoint_keys(tiny_teacher_dir, tmp_path, monkeypatch) -> None:
    # Inductor takes minutes to compile on a CPU; dynamo with the eager backend wraps and traces the same way.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    model = tiny_sign(tiny_teacher_dir, dmd=True, compile=True)
    keys = list(model.state_dict())
    fit(model, tmp_path, steps=2)
    fake_score = model.losses["dmd"].fake_score
    assert all(network._compiled_call_impl is not None for network in (model.student, model.teacher, fake_score))
    assert list(model.state_dict()) == keys
    checkpoint = torch.load(next(tmp_path.rglob("*.ckpt")), map_location="cpu", weights_only=False)
    assert set(checkpoint["state_dict"]) == {key for key in keys if not key.startswith("teacher.")}
    plain = tiny_sign(tiny_teacher_dir, dmd=True)
    plain.load_state_dict({**plain.state_dict(), **checkpoint["state_dict"]})


def test_channels_last_trains_and_its_checkpoint_loads_into_a_plain_model(tiny_teacher_dir, tmp_path) -> None:
    model = tiny_sign(tiny_teacher_dir, dmd=True, channels_last=True)
    fit(model, tmp_path, steps=2)
    weights = [
        m.weight
        for network in (model.student, model.ema.module, model.teacher, model.losses["dmd"].fake_score)
        for m in network.modules()
        if isinstance(m, nn.Conv2d)
    ]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    checkpoint = torch.load(next(tmp_path.rglob("*.ckpt")), map_location="cpu", weights_only=False)
    plain = tiny_sign(tiny_teacher_dir, dmd=True)
    plain.load_state_dict({**plain.state_dict(), **checkpoint["state_dict"]})
    torch.testing.assert_close(plain.student.state_dict(), model.student.state_dict())


def test_teacher_inference_mode_trains_the_same_weights(tiny_teacher_dir, tmp_path) -> None:
    # Every term that calls the teacher for a target: L_flow, L_dmd (and the fake score's), L_data.
    def trained(inference: bool) -> dict[str, torch.Tensor]:
        terms = dict(flow=True, dmd=True, extra_losses=[DataRegression(sampler_steps=2)])
        model = tiny_sign(tiny_teacher_dir, **terms, teacher_inference_mode=inference)
        torch.manual_seed(0)
        fit(model, tmp_path / str(inference), steps=2, enable_checkpointing=False)
        assert model.teacher.inference_targets is inference
        return {**snapshot(model.student), **snapshot(model.losses["dmd"].fake_score)}

    expected, actual = trained(False), trained(True)
    assert expected.keys() == actual.keys() and all(torch.equal(actual[key], expected[key]) for key in expected)


def test_fused_and_foreach_adamw_come_from_the_config(tiny_teacher_dir) -> None:
    def adamw(**extra) -> str:
        return str({"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.001, **extra}})

    cli = built_sign_cli(
        tiny_teacher_dir,
        "--model.init_args.reg.init_args.pairs=16",
        "--model.init_args.generator_optimizer",
        adamw(fused=True),
        "--model.init_args.dmd",
        str({"class_path": "signs_lightning.losses.DistributionMatching"}),
        "--model.init_args.dmd.init_args.optimizer",
        adamw(foreach=True),
    )
    generator, fake_score = (config["optimizer"] for config in cli.model.configure_optimizers())
    assert generator.defaults["fused"] is True and fake_score.defaults["foreach"] is True


def test_option_sets_vary_each_option_from_all_off_and_from_the_defaults() -> None:
    sets = option_sets(["foreach_ema", "foreach_adamw", "fused_adamw"], grid=False)
    keys = [options_key(options) for options in sets]
    assert len(keys) == len(set(keys)) and () in keys and options_key(default_options()) in keys
    assert ("foreach_ema",) in keys and ("foreach_adamw",) in keys
    # AdamW takes foreach or fused, not both.
    assert not any({"foreach_adamw", "fused_adamw"} <= set(key) for key in keys)
    grid = option_sets(["foreach_ema", "one_pass_gradients"], grid=True)
    assert len(grid) == len({options_key(options) for options in grid}) >= 4


def test_option_effects_are_speedups_against_all_off_and_within_the_defaults(monkeypatch) -> None:
    off = dict.fromkeys(OPTIONS, False)
    defaults = {**off, "one_pass_gradients": True}
    monkeypatch.setattr(speed, "default_options", lambda: defaults)
    results = [
        {"options": off, "step_seconds": 2.0},
        {"options": {**off, "foreach_ema": True}, "step_seconds": 1.0},
        {"options": {**defaults, "foreach_ema": True}, "step_seconds": 1.0},
        {"options": defaults, "step_seconds": 1.5},
    ]
    effects = option_effects(results, ["foreach_ema", "compile"])
    assert effects["foreach_ema"]["speedup_over_all_off"] == 2.0
    assert effects["foreach_ema"]["speedup_within_defaults"] == 1.5
    assert effects["compile"]["speedup_over_all_off"] is None


def test_cycle_seconds_is_per_batch_over_whole_generator_cycles() -> None:
    # gen_every 2, one warm-up cycle: cycles (3 + 1) and (5 + 1) after it, median 5, per batch 2.5.
    assert cycle_seconds([[9.0, 9.0, 3.0, 1.0, 5.0, 1.0]], gen_every=2, warmup=1) == 2.5
