"""SIGNModule through real Lightning fits on the embedded MNIST at 8x8 with a tiny teacher."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import fit, snapshot, tiny_sign
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

from signs_lightning.core.errors import SignsError
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.diffusion import load_teacher, teacher_pairs
from signs_lightning.inference import sampling
from signs_lightning.losses import DistributionMatching, Flow, Regression, Step
from signs_lightning.modules import SIGNModule
from signs_lightning.run.callbacks import ModelCheckpoint

ALL_TERMS = dict(flow=True, dmd=True)


def test_fit_trains_student_and_fake_score_and_never_the_teacher(tiny_teacher_dir, tmp_path) -> None:
    L.seed_everything(0)
    model = tiny_sign(tiny_teacher_dir, **ALL_TERMS)
    teacher_before, student_before, fake_before = (
        snapshot(model.teacher),
        snapshot(model.student),
        snapshot(model.losses["dmd"].fake_score),
    )
    trainer = fit(model, tmp_path, steps=3, enable_checkpointing=False)
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), f"teacher weight {key} changed"
    assert any(not torch.equal(v, student_before[k]) for k, v in model.student.state_dict().items())
    assert any(not torch.equal(v, fake_before[k]) for k, v in model.losses["dmd"].fake_score.state_dict().items())
    assert model.generator_steps == 3
    # Lightning's global_step counts both optimizers' steps; the module's own counter counts generator steps.
    assert trainer.global_step == 6
    logged = set(trainer.callback_metrics)
    for key in [
        "train/loss_rec",
        "train/loss_idem",
        "train/loss_flow",
        "train/loss_dmd",
        "train/loss_reg",
        "train/loss_denoise",
        "diag/idempotence_error",
        "diag/reconstruction_error",
    ]:
        assert key in logged, key


def test_teacher_is_excluded_from_optimizers(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir, **ALL_TERMS)
    optimizers = [config["optimizer"] for config in model.configure_optimizers()]
    optimised = {id(p) for opt in optimizers for group in opt.param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in model.teacher.parameters()}
    assert optimised == {id(p) for p in model.student.parameters()} | {
        id(p) for p in model.losses["dmd"].fake_score.parameters()
    }


def test_zero_weight_skips_the_term_and_the_fake_score(tiny_teacher_dir, tmp_path, monkeypatch) -> None:
    import signs_lightning.losses.terms as terms

    def must_not_run(*args, **kwargs):
        raise AssertionError("a term with weight 0 was computed")

    for name in ["flow_pair", "dmd_loss", "denoising_loss"]:
        monkeypatch.setattr(terms, name, must_not_run)
    model = tiny_sign(tiny_teacher_dir, flow=Flow(weight=0.0), dmd=DistributionMatching(weight=0.0))
    assert set(model.losses) == {"rec", "idem", "reg"} and len(model.configure_optimizers()) == 1
    trainer = fit(model, tmp_path, steps=2, enable_checkpointing=False)
    assert trainer.global_step == 2 and "train/loss_dmd" not in trainer.callback_metrics


def test_gen_every_steps_generator_less_often(tiny_teacher_dir, tmp_path) -> None:
    model = tiny_sign(tiny_teacher_dir, dmd=True, gen_every=2)
    fit(model, tmp_path, steps=2, enable_checkpointing=False)
    # Generator steps at batches 0 and 2, the fake score at every batch 0..2.
    assert model.generator_steps == 2 and model.global_batches == 3


def test_checkpoint_holds_no_teacher_and_resume_continues(tiny_teacher_dir, tmp_path) -> None:
    L.seed_everything(0)
    model = tiny_sign(tiny_teacher_dir, **ALL_TERMS)
    fit(model, tmp_path / "a", steps=2)
    ckpt_path = next((tmp_path / "a").rglob("*.ckpt"))
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    assert not any(k.startswith("teacher.") for k in checkpoint["state_dict"])
    assert any(k.startswith("losses.dmd.fake_score.") for k in checkpoint["state_dict"])
    assert any(k.startswith("ema.") for k in checkpoint["state_dict"])
    assert len(checkpoint["optimizer_states"]) == 2
    assert checkpoint["signs_counters"] == {"generator_steps": 2, "global_batches": 2, "skipped_updates": 0, "seed": 0}
    assert checkpoint["signs_teacher"]["source"] == str(tiny_teacher_dir)

    resumed = tiny_sign(tiny_teacher_dir, **ALL_TERMS)
    trainer = fit(resumed, tmp_path / "b", steps=4, ckpt_path=str(ckpt_path), enable_checkpointing=False)
    assert resumed.generator_steps == 4 and trainer.global_step == 8
    assert int(resumed.ema.num_updates) == 4
    # The optimizers continued from their saved state (Adam's step count), not from scratch.
    assert [int(s["step"]) for s in trainer.optimizers[0].state.values()][0] == 4
    # And the teacher came back from its source, identical.
    for key, value in load_teacher(tiny_teacher_dir).state_dict().items():
        assert torch.equal(resumed.teacher.state_dict()[key], value)


@pytest.mark.parametrize("callback", [LightningModelCheckpoint, ModelCheckpoint])
def test_last_checkpoint_holds_the_final_model_when_the_fit_stops_between_saves(
    tiny_teacher_dir, tmp_path, callback
) -> None:
    model = tiny_sign(tiny_teacher_dir)
    root = tmp_path / callback.__module__
    fit(model, root, steps=3, callbacks=[callback(dirpath=root, save_last=True, every_n_train_steps=2)])
    saved = torch.load(root / "last.ckpt", map_location="cpu", weights_only=False)["signs_counters"]["generator_steps"]
    # Lightning's own callback leaves last.ckpt at step 2 (its on_train_end writes it only if none exists yet);
    # ours refreshes it, so resuming continues from the model the fit ended with.
    assert saved == (3 if callback is ModelCheckpoint else 2)


def test_resume_refuses_a_different_teacher(tiny_teacher_dir, tmp_path) -> None:
    from conftest import write_tiny_teacher

    model = tiny_sign(tiny_teacher_dir)
    fit(model, tmp_path / "a", steps=1)
    ckpt_path = next((tmp_path / "a").rglob("*.ckpt"))
    other = tiny_sign(write_tiny_teacher(tmp_path / "other", seed=5))
    with pytest.raises(ValueError, match="fingerprint"):
        fit(other, tmp_path / "b", steps=2, ckpt_path=str(ckpt_path), enable_checkpointing=False)


def test_data_and_teacher_geometry_mismatch_is_a_clear_error(tiny_teacher_dir, tmp_path) -> None:
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(
        ValueError, match=r"serves 1x16x16 images but the teacher .* expects 1x8x8: set data.init_args.image_size: 8"
    ):
        trainer.fit(tiny_sign(tiny_teacher_dir), EmbeddedMNISTDataModule(image_size=16, batch_size=8))


def test_teacher_pairs_are_generated_once_and_reused(tiny_teacher_dir, tmp_path, monkeypatch) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    pairs = teacher_pairs.load_or_generate_pairs(teacher, count=6, steps=2, seed=1, cache_dir=tmp_path)
    torch.testing.assert_close(pairs.y, teacher.ddim_sample(pairs.z, 2))
    assert pairs.trajectory is None
    with_path = teacher_pairs.load_or_generate_pairs(
        teacher, count=6, steps=3, seed=1, cache_dir=tmp_path, trajectory=True
    )
    # The two partly-noised states of each DDIM-3 path, in order, then its end point.
    assert with_path.trajectory.shape == (6, 2, 1, 8, 8)
    expected = list(teacher.ddim_trajectory(with_path.z, 3))
    torch.testing.assert_close(with_path.trajectory, torch.stack(expected[:-1], dim=1))
    torch.testing.assert_close(with_path.y, expected[-1])
    monkeypatch.setattr(teacher_pairs, "generate_pairs", lambda *a, **k: pytest.fail("pairs regenerated"))
    again = teacher_pairs.load_or_generate_pairs(teacher, count=6, steps=2, seed=1, cache_dir=tmp_path)
    assert torch.equal(pairs.z, again.z) and torch.equal(pairs.y, again.y)
    again = teacher_pairs.load_or_generate_pairs(teacher, count=6, steps=3, seed=1, cache_dir=tmp_path, trajectory=True)
    assert torch.equal(with_path.trajectory, again.trajectory)
    # Another setting is another file.
    assert teacher_pairs.pairs_path(teacher, 6, 3, 1, tmp_path) != teacher_pairs.pairs_path(teacher, 6, 2, 1, tmp_path)
    assert teacher_pairs.pairs_path(teacher, 6, 3, 1, tmp_path, trajectory=True) != teacher_pairs.pairs_path(
        teacher, 6, 3, 1, tmp_path
    )


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_trajectory_regression_feeds_path_states_with_their_endpoint(tiny_teacher_dir, tmp_path, fraction) -> None:
    model = tiny_sign(
        tiny_teacher_dir, pairs=16, sampler_steps=3, trajectory_fraction=fraction, cache_dir=str(tmp_path)
    )
    fit(model, tmp_path, steps=1, enable_checkpointing=False)
    term = model.losses["reg"]
    pairs = term.cached
    assert (pairs.trajectory is None) == (fraction == 0)
    torch.manual_seed(0)
    x = torch.zeros(256, 1, 8, 8)
    inputs, targets = term.inputs(Step(x=x, z=x))
    inputs = inputs["z_ref"]
    on_path = 0
    for x, y in zip(inputs, targets):
        # Every target is a pair's y; its input is that pair's z or one of the states of z's own DDIM path.
        (index,) = [i for i in range(16) if torch.equal(pairs.y[i], y)]
        candidates = [pairs.z[index]] + ([] if pairs.trajectory is None else list(pairs.trajectory[index]))
        (position,) = [k for k, c in enumerate(candidates) if torch.equal(c, x)]
        on_path += position > 0
    assert on_path == {0.0: 0, 1.0: 256}.get(fraction, on_path)
    if fraction == 0.5:
        assert 80 < on_path < 176


def test_samplers_shapes_and_idempotence_diagnostic(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir)
    z = torch.randn(5, 1, 8, 8)
    for nfe in (1, 2, 4):
        assert model.sample(z, nfe).shape == z.shape
    diag = model.diagnostics(torch.rand(5, 1, 8, 8) * 2 - 1)
    assert set(diag) == {"diag/idempotence_error", "diag/reconstruction_error"}
    assert model.sample_grid(count=4).shape[0] == 3


def test_multistep_sampler_renoises_to_the_configured_levels(tiny_teacher_dir, monkeypatch) -> None:
    model = tiny_sign(tiny_teacher_dir, renoise_max_level=0.5)
    seen: list[int] = []
    q_sample = model.schedule.q_sample

    def recording_q_sample(x, t, noise):
        seen.extend(set(t.tolist()))
        return q_sample(x, t, noise)

    monkeypatch.setattr(model.schedule, "q_sample", recording_q_sample)
    model.sample(torch.randn(3, 1, 8, 8), 3)
    # T = 1000 in the tiny teacher: evenly spaced from 0.5 * 999 down, in order, one per extra NFE.
    assert seen == [500, 250]
    with pytest.raises(ValueError, match="renoise_max_level"):
        tiny_sign(tiny_teacher_dir, renoise_max_level=0.0)


def test_deterministic_multistep_rules_reuse_the_starting_noise_or_the_implied_one(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir, renoise_max_level=0.5)
    f, schedule, z = model.sampling_network, model.schedule, torch.randn(3, 1, 8, 8)

    def at(t: int) -> tuple[torch.Tensor, torch.Tensor]:
        return schedule.alpha_sigma(torch.full((3,), t), z)

    with torch.no_grad():
        x1 = f(z)
        (a1, s1), (a2, s2) = at(500), at(250)
        x2 = f(a1 * x1 + s1 * z)
        initial = f(a2 * x2 + s2 * z)
        implied = (a1 * x1 + s1 * z - a1 * x2) / s1  # the noise the second input and its output imply
        path = f(a2 * x2 + s2 * implied)
        for noise, expected in (("initial", initial), ("path", path)):
            model.renoise_noise = noise
            torch.testing.assert_close(model.sample(z, 3, torch.Generator().manual_seed(0)), expected)
        # With one re-noising step both rules are the same; neither draws from the generator.
        generator = torch.Generator().manual_seed(0)
        torch.testing.assert_close(model.sample(z, 2, generator), f(a1 * x1 + s1 * z))
        assert torch.equal(generator.get_state(), torch.Generator().manual_seed(0).get_state())
    with pytest.raises(ValueError, match="renoise_noise"):
        tiny_sign(tiny_teacher_dir, renoise_noise="stale")


def test_eta_mixes_fresh_noise_into_the_path_rule_and_constant_spacing_repeats_the_top_level(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir, reg=False, renoise_noise="path", renoise_max_level=0.3)
    f, schedule, z = model.sampling_network, model.schedule, torch.randn(3, 1, 8, 8)
    assert model.renoise_timesteps(4) == [300, 200, 100]
    model.renoise_spacing = "constant"
    assert model.renoise_timesteps(4) == [300, 300, 300] == sampling.renoise_timesteps(schedule, 4, 0.3, "constant")
    assert model.renoise_timesteps(1) == []
    with pytest.raises(ValueError, match="spacing must be 'even' or 'constant', got 'log'"):
        sampling.renoise_timesteps(schedule, 3, 0.3, "log")
    with torch.no_grad():
        # Without eta, the path rule's second step at the same level puts f's input back where it was: a no-op.
        torch.testing.assert_close(model.sample(z, 3), model.sample(z, 2))
        model.renoise_eta = 0.4
        alpha, sigma = schedule.alpha_sigma(torch.full((3,), 300), z)
        generator = torch.Generator().manual_seed(5)
        fresh = torch.randn(z.shape, generator=generator)
        expected = f(alpha * f(z) + sigma * ((1 - 0.4**2) ** 0.5 * z + 0.4 * fresh))
        torch.testing.assert_close(model.sample(z, 2, torch.Generator().manual_seed(5)), expected)
        # Reproducible for one generator, different for another, and no longer a no-op at one level.
        three = model.sample(z, 3, torch.Generator().manual_seed(5))
        assert torch.equal(three, model.sample(z, 3, torch.Generator().manual_seed(5)))
        assert not torch.allclose(three, model.sample(z, 3, torch.Generator().manual_seed(6)))
        assert not torch.allclose(three, model.sample(z, 2, torch.Generator().manual_seed(5)))
        model.renoise_eta = 0.0
        assert not torch.allclose(three, model.sample(z, 3, torch.Generator().manual_seed(5)))


def test_sampler_inputs_mix_in_the_modules_eta(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir, reg=False, renoise_noise="path", renoise_eta=0.5, renoise_max_level=0.3)
    z = torch.randn(4, 1, 8, 8)
    alpha, sigma = model.schedule.alpha_sigma(torch.full((4,), 300), z)
    with torch.no_grad():
        torch.manual_seed(0)
        fresh = torch.randn_like(z)
        expected = alpha * model.student(z) + sigma * ((1 - 0.5**2) ** 0.5 * z + 0.5 * fresh)
        torch.manual_seed(0)
        torch.testing.assert_close(model.sampler_inputs(z), expected)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(renoise_noise="path", renoise_eta=1.5), "renoise_eta must be in [0, 1], got 1.5"),
        (dict(renoise_noise="path", renoise_eta=-0.1), "renoise_eta must be in [0, 1], got -0.1"),
        (dict(renoise_eta=0.4), "renoise_eta > 0 (got 0.4) needs renoise_noise 'initial' or 'path', got 'fresh'"),
        (dict(renoise_spacing="log"), "renoise_spacing must be 'even' or 'constant', got 'log'"),
    ],
    ids=["eta-above-1", "eta-negative", "eta-with-fresh-noise", "spacing"],
)
def test_bad_sampler_settings_are_one_line_errors(tiny_teacher_dir, settings, message) -> None:
    with pytest.raises(ValueError) as error:
        tiny_sign(tiny_teacher_dir, reg=False, **settings)
    assert str(error.value) == message


def test_a_checkpoint_keeps_the_sampler_settings_and_one_written_before_them_loads_with_the_defaults(
    tiny_teacher_dir, tmp_path
) -> None:
    from signs_lightning.commands.loading import load_generator

    settings = dict(renoise_noise="path", renoise_eta=0.4, renoise_spacing="constant", renoise_max_level=0.3)
    model = tiny_sign(tiny_teacher_dir, reg=False, **settings)
    trainer = fit(model, tmp_path, steps=1, enable_checkpointing=False)
    trainer.save_checkpoint(tmp_path / "new.ckpt")
    loaded = load_generator(str(tmp_path / "new.ckpt"))
    assert {key: getattr(loaded, key) for key in settings} == settings
    z = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(
        loaded.sample(z, 3, torch.Generator().manual_seed(0)),
        model.eval().sample(z, 3, torch.Generator().manual_seed(0)),
    )
    # A checkpoint written before the options: its hyperparameters lack the keys; it samples as it always did.
    saved = torch.load(tmp_path / "new.ckpt", map_location="cpu", weights_only=False)
    for key in ("renoise_noise", "renoise_eta", "renoise_spacing"):
        del saved["hyper_parameters"][key]
    torch.save(saved, tmp_path / "old.ckpt")
    old = load_generator(str(tmp_path / "old.ckpt"))
    assert (old.renoise_noise, old.renoise_eta, old.renoise_spacing) == ("fresh", 0.0, "even")
    assert old.renoise_timesteps(3) == [300, 150]


@pytest.mark.parametrize("output_head,t_bar", [("x0", None), ("prediction", 300)])
def test_generator_heads(tiny_teacher_dir, output_head, t_bar) -> None:
    model = tiny_sign(tiny_teacher_dir, output_head=output_head, conditioning_timestep=t_bar)
    assert model.student(torch.randn(2, 1, 8, 8)).shape == (2, 1, 8, 8)


def test_bad_settings_are_rejected(tiny_teacher_dir) -> None:
    with pytest.raises(ValueError, match="at least one term with weight > 0"):
        tiny_sign(tiny_teacher_dir, rec=None, idem=None, reg=False)
    with pytest.raises(ValueError, match="gen_every"):
        tiny_sign(tiny_teacher_dir, gen_every=0)
    with pytest.raises(ValueError, match="conditioning_timestep"):
        tiny_sign(tiny_teacher_dir, conditioning_timestep=1000)
    with pytest.raises(ValueError, match="trajectory_fraction must be in"):
        tiny_sign(tiny_teacher_dir, trajectory_fraction=1.5)
    with pytest.raises(ValueError, match="sampler_steps >= 2"):
        tiny_sign(tiny_teacher_dir, trajectory_fraction=0.5, sampler_steps=1)
    with pytest.raises(ValueError, match="expected a 'flow' term, got Regression"):
        tiny_sign(tiny_teacher_dir, flow=Regression())
    with pytest.raises(ValueError, match="needs the module's ema_decay"):
        tiny_sign(tiny_teacher_dir, flow=Flow(target="ema"), ema_decay=None)


def test_init_from_starts_a_new_run_from_a_checkpoints_student(tiny_teacher_dir, tmp_path) -> None:
    """DMD2's second stage: a regression-trained f, then distribution matching with a fresh fake score."""
    first = tiny_sign(tiny_teacher_dir)
    trainer = fit(first, tmp_path / "phase1", steps=3, enable_checkpointing=False)
    trainer.save_checkpoint(tmp_path / "phase1.ckpt")
    second = tiny_sign(tiny_teacher_dir, dmd=True, init_from=str(tmp_path / "phase1.ckpt"))
    for name in ("student", "ema"):
        ours, theirs = getattr(second, name).state_dict(), getattr(first, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), name
    assert second.generator_steps == 0
    teacher = second.teacher.state_dict()
    fake = second.losses["dmd"].fake_score.state_dict()
    assert all(torch.equal(fake[k], teacher[k]) for k in teacher)
    trainer = fit(second, tmp_path / "phase2", steps=2, enable_checkpointing=False)
    assert second.generator_steps == 2
    # A checkpoint of the second stage loads without the first stage's file.
    trainer.save_checkpoint(tmp_path / "phase2.ckpt")
    (tmp_path / "phase1.ckpt").unlink()
    restored = SIGNModule.load_from_checkpoint(tmp_path / "phase2.ckpt")
    assert (
        torch.equal(restored.student.unet.conv_in.weight, second.student.unet.conv_in.weight)
        and restored.generator_steps == 2
    )


def test_init_from_a_checkpoint_that_does_not_fit_is_a_one_line_error(tiny_teacher_dir, tmp_path) -> None:
    torch.save({"state_dict": {"student.unet.conv_in.weight": torch.zeros(1)}, "pytorch-lightning_version": "2"},
               tmp_path / "other.ckpt")  # fmt: skip
    with pytest.raises(SignsError, match="does not fit this teacher's network") as error:
        tiny_sign(tiny_teacher_dir, init_from=str(tmp_path / "other.ckpt"))
    assert "\n" not in str(error.value)
    torch.save({"state_dict": {"model.w": torch.zeros(1)}, "pytorch-lightning_version": "2"}, tmp_path / "t.ckpt")
    with pytest.raises(SignsError, match="no student weights"):
        tiny_sign(tiny_teacher_dir, init_from=str(tmp_path / "t.ckpt"))


def test_generator_warmup_trains_only_the_fake_score_first(tiny_teacher_dir, tmp_path) -> None:
    model = tiny_sign(tiny_teacher_dir, dmd=True, gen_every=2, generator_warmup=3)
    states: list[tuple[dict, dict]] = []

    class Snapshots(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            states.append((snapshot(module.student), snapshot(module.losses["dmd"].fake_score)))

    fit(model, tmp_path, steps=2, enable_checkpointing=False, callbacks=[Snapshots()])
    # Batches 0-2 warm the fake score up; then the generator steps at batches 3 and 5.
    assert model.generator_steps == 2 and model.global_batches == 6
    (student_0, fake_0), (student_3, fake_3), (student_4, _) = states[0], states[3], states[4]
    assert all(torch.equal(v, student_0[k]) for k, v in student_3.items())
    assert any(not torch.equal(v, fake_0[k]) for k, v in fake_3.items())
    assert any(not torch.equal(v, student_3[k]) for k, v in student_4.items())
    with pytest.raises(ValueError, match="generator_warmup"):
        tiny_sign(tiny_teacher_dir, generator_warmup=-1)


def test_sampler_inputs_are_the_multistep_samplers_own_later_inputs(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir, reg=False, renoise_noise="path", renoise_max_level=0.1, sample_nfe=[1, 2, 4])
    z = torch.randn(32, 1, 8, 8)
    with torch.no_grad():
        steps = sampling.multistep_steps(model.student, z, model.schedule, model.renoise_timesteps(4), noise="path")
        later = torch.stack([x_in for x_in, _ in steps][1:])
        two_nfe = [
            x_in
            for x_in, _ in sampling.multistep_steps(
                model.student, z, model.schedule, model.renoise_timesteps(2), noise="path"
            )
        ][1]
    torch.manual_seed(0)
    states = model.sampler_inputs(z)
    matches = [[k for k in range(3) if torch.allclose(states[i], later[k, i])] for i in range(32)]
    assert all(len(m) == 1 for m in matches) and {m[0] for m in matches} == {0, 1, 2}
    # The 2-NFE sampler's one re-noised input is the 4-NFE sampler's first.
    torch.testing.assert_close(two_nfe, later[0])


def test_dmd_on_renoised_samples_matches_the_multistep_samplers_inputs(tiny_teacher_dir, monkeypatch, tmp_path) -> None:
    model = tiny_sign(
        tiny_teacher_dir,
        dmd=DistributionMatching(renoised_fraction=0.5, renoised_fake=True),
        reg=False,
        renoise_max_level=0.1,
        renoise_noise="path",
    )
    dmd = model.losses["dmd"]
    levels: list[int] = []
    q_sample = model.teacher.q_sample

    def recording_q_sample(x, t, noise):
        levels.extend(t.tolist())
        return q_sample(x, t, noise)

    monkeypatch.setattr(model.teacher, "q_sample", recording_q_sample)
    x, z = torch.rand(8, 1, 8, 8) * 2 - 1, torch.randn(8, 1, 8, 8)
    losses, _ = model.generator_losses(x, z)
    # L_dmd's noise levels for the 8 samples f(z) and the 4 from the sampler's re-noised inputs.
    assert len(levels) == 12
    losses["dmd"].backward()
    assert all(p.grad is not None for p in model.student.parameters() if p.requires_grad)
    # The fake score learns from the same mix: a batch's 8 f(z) and 4 f(x_k); without renoised_fake, f(z) alone.
    for renoised_fake, size in ((True, 12), (False, 8)):
        fresh = tiny_sign(
            tiny_teacher_dir,
            dmd=DistributionMatching(renoised_fraction=0.5, renoised_fake=renoised_fake),
            reg=False,
            renoise_noise="path",
        )
        fake_score, seen = fresh.losses["dmd"].fake_score, []
        fake_q_sample = fake_score.q_sample
        monkeypatch.setattr(
            fake_score, "q_sample", lambda x0, t, noise, q=fake_q_sample: seen.append(len(x0)) or q(x0, t, noise)
        )
        fit(fresh, tmp_path / str(size), steps=1, enable_checkpointing=False)
        assert seen and set(seen) == {size}
    dmd.renoised_fraction = 0.0
    levels.clear()
    model.generator_losses(x, z)
    assert len(levels) == 8
    with pytest.raises(ValueError, match="renoised_fraction"):
        DistributionMatching(renoised_fraction=1.5)
