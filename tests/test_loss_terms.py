"""Loss terms as units: what adding a term touches (one class, one YAML entry, this test), and how terms are
configured, switched off and recorded in checkpoints."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
import torch
import yaml
from helpers import built_sign_cli, fit, snapshot, tiny_sign
from torch import Tensor

from signs_lightning.diffusion import load_teacher
from signs_lightning.losses import DataRegression, LossTerm, Regression, Step, TermContext, Tightening
from signs_lightning.modules import SIGNModule
from signs_lightning.run.cli import cli_main


class MeanMatching(LossTerm):
    """An example research term: the mean brightness of f(z) should match the data's, d(mean f(z), mean x)."""

    name = "mean"

    def loss(self, step: Step, outputs: dict[str, Tensor], targets: Any) -> Tensor:
        return (step.f_z.mean() - step.x.mean()).pow(2)


def test_a_new_term_is_one_class_and_one_entry(tiny_teacher_dir, tmp_path) -> None:
    model = tiny_sign(tiny_teacher_dir, extra_losses=[MeanMatching(weight=0.5)])
    trainer = fit(model, tmp_path, steps=2, enable_checkpointing=False)
    assert "train/loss_mean" in trainer.callback_metrics
    # Its gradient reaches f through the shared f(z): with only this term, f still trains.
    alone = tiny_sign(tiny_teacher_dir, rec=None, idem=None, reg=False, extra_losses=[MeanMatching()])
    before = [p.detach().clone() for p in alone.student.parameters()]
    fit(alone, tmp_path / "alone", steps=1, enable_checkpointing=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, alone.student.parameters()))


def test_the_same_term_from_yaml(tiny_teacher_dir, tmp_path) -> None:
    config = tmp_path / "extra.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "init_args": {
                        "extra_losses": [{"class_path": "test_loss_terms.MeanMatching", "init_args": {"weight": 0.5}}]
                    }
                }
            }
        )
    )
    cli = built_sign_cli(
        tiny_teacher_dir,
        *("--config", str(config), "--model.init_args.reg.init_args.pairs", "16", "--model.init_args.flow", "null"),
        *("--trainer.default_root_dir", str(tmp_path)),
    )
    assert set(cli.model.losses) == {"rec", "idem", "reg", "mean"}
    assert cli.model.losses["mean"].weight == 0.5 and cli.model.losses["reg"].pairs == 16


def test_terms_are_recorded_as_configs_and_rebuilt_from_checkpoints(tiny_teacher_dir, tmp_path) -> None:
    model = tiny_sign(tiny_teacher_dir, pairs=16, extra_losses=[MeanMatching(weight=0.5)])
    assert model.hparams.reg == {
        "class_path": "signs_lightning.losses.terms.Regression",
        "init_args": {
            "weight": 1.0,
            "pairs": 16,
            "sampler_steps": 2,
            "seed": 0,
            "batch_size": None,
            "trajectory_fraction": 0.0,
            "cache_dir": None,
            "solver": "ddim",
        },
    }
    fit(model, tmp_path, steps=1)
    (checkpoint,) = tmp_path.rglob("*.ckpt")
    restored = SIGNModule.load_from_checkpoint(checkpoint)
    assert isinstance(restored.losses["reg"], Regression) and restored.losses["reg"].pairs == 16
    assert restored.losses["mean"].weight == 0.5


def test_print_config_lists_every_term_slot() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        cli_main(
            [
                "fit",
                "--model",
                "signs_lightning.modules.SIGNModule",
                "--model.init_args.teacher",
                "t",
                "--data",
                "signs_lightning.data.EmbeddedMNISTDataModule",
                "--print_config",
            ]
        )
    init_args = yaml.safe_load(out.getvalue())["model"]["init_args"]
    assert init_args["rec"]["class_path"] == "signs_lightning.losses.Reconstruction"
    assert init_args["flow"] is None and init_args["dmd"] is None
    assert init_args["reg"]["init_args"]["pairs"] == 4000


class Anchored(LossTerm):
    """f of a fixed anchor batch should land on a target: a term with inputs and targets of its own."""

    name = "anchor"

    def inputs(self, step: Step) -> tuple[dict[str, Tensor], Tensor]:
        anchor = torch.zeros_like(step.x[:2])
        return {"anchor": anchor}, anchor + 0.5

    def loss(self, step: Step, outputs: dict[str, Tensor], targets: Tensor) -> Tensor:
        self.seen = outputs["anchor"].detach().clone(), targets
        return (outputs["anchor"] - targets).pow(2).mean()


def test_a_terms_inputs_come_back_through_f_with_its_targets_in_one_forward(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir, reg=False, extra_losses=[Anchored()])
    x, z = torch.rand(4, 1, 8, 8) * 2 - 1, torch.randn(4, 1, 8, 8)
    batches: list[int] = []
    model.student.register_forward_hook(lambda module, args, output: batches.append(args[0].shape[0]))
    losses, f_z = model.generator_losses(x, z)
    # z, L_rec's x and the anchor ran as one batch; L_idem's outer f is the only other call.
    assert batches == [4 + 4 + 2, 4]
    output, target = model.losses["anchor"].seen
    with torch.no_grad():
        torch.testing.assert_close(output, model.student(torch.zeros(2, 1, 8, 8)))
        torch.testing.assert_close(f_z, model.student(z))
    assert torch.equal(target, torch.full((2, 1, 8, 8), 0.5))
    assert set(losses) == {"rec", "idem", "anchor"}


def test_a_term_sees_its_module_through_the_context(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir, extra_losses=[MeanMatching()])
    context = model.losses["mean"].context
    assert isinstance(context, TermContext)
    assert context.student is model.student and context.teacher is model.teacher
    assert context.ema is model.ema.module and context.schedule is model.schedule
    assert context.sampler_inputs == model.sampler_inputs


def test_igns_tightening_is_a_term_a_sign_can_take_too(tiny_teacher_dir, tmp_path) -> None:
    model = tiny_sign(tiny_teacher_dir, reg=False, extra_losses=[Tightening(weight=0.5, clamp_ratio=2.0)])
    trainer = fit(model, tmp_path, steps=2, enable_checkpointing=False)
    metrics = trainer.callback_metrics
    assert -2.0 * metrics["train/loss_rec"] <= metrics["train/loss_tight"] <= 0


def test_data_regression_trains_f_on_noised_real_images_towards_the_teachers_ddim(tiny_teacher_dir) -> None:
    model = tiny_sign(tiny_teacher_dir, reg=False, extra_losses=[DataRegression(sampler_steps=3, fraction=0.5)])
    term = model.losses["data_reg"]
    x, z = torch.rand(8, 1, 8, 8) * 2 - 1, torch.randn(8, 1, 8, 8)
    torch.manual_seed(0)
    inputs, target = term.inputs(Step(x, z))
    # Half the batch, noised to levels in [0.02, 0.6]·T; the target is the teacher's 3-step DDIM from there.
    torch.manual_seed(0)
    t = torch.randint(round(0.02 * 999), round(0.6 * 999) + 1, (4,))
    x_t = model.teacher.q_sample(x[:4], t, torch.randn(4, 1, 8, 8))
    torch.testing.assert_close(inputs["noised_data"], x_t)
    torch.testing.assert_close(target, model.teacher.ddim_from(x_t, t, 3))
    teacher_before = snapshot(model.teacher)
    losses, _ = model.generator_losses(x, z)
    losses["data_reg"].backward()
    assert all(p.grad is not None for p in model.student.parameters() if p.requires_grad)
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(torch.equal(v, teacher_before[k]) for k, v in snapshot(model.teacher).items())
    with pytest.raises(ValueError, match="t_min"):
        DataRegression(t_min=0.7, t_max=0.6)


def test_ddim_from_level_zero_is_the_teachers_clean_estimate(tiny_teacher_dir) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    x_t, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 400])
    one_step = teacher.ddim_from(x_t, t, 1)
    torch.testing.assert_close(one_step, teacher.predict_x0(x_t, t))
