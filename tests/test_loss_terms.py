"""Loss terms as units: what adding a term touches (one class, one YAML entry, this test), and how terms are
configured, switched off and recorded in checkpoints."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
import yaml
from cli_helpers import built_sign_cli
from test_sign_module import fit, tiny_sign
from torch import Tensor

from signs_lightning.losses import LossTerm, Regression, Step
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
