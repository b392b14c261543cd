"""One way to score a sampler: validation, ``signs demo`` and the benchmark give the same numbers for the same model
and seed; the teacher module validates through the same path."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from test_sign_module import tiny_sign

from benchmarks.measure import Scorer
from signs_lightning.commands import demo
from signs_lightning.core.distributed import LocalStrategy
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.evaluation import FIDEvaluator, MNISTClassifierFeatures, RandomConvFeatures
from signs_lightning.evaluation.scoring import ddim_sampler, score_sampler
from signs_lightning.modules import TeacherModule

SAMPLES = 64


def validate(module: L.LightningModule, image_size: int) -> dict[str, float]:
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
    )
    trainer.validate(module, datamodule=EmbeddedMNISTDataModule(image_size, batch_size=100))
    return {key: float(value) for key, value in trainer.callback_metrics.items()}


def test_validation_demo_and_benchmark_give_the_same_numbers(tiny_teacher_dir) -> None:
    evaluator = FIDEvaluator(MNISTClassifierFeatures(8), num_samples=SAMPLES, nfe=[1, 2], teacher_nfe=[1])
    model = tiny_sign(tiny_teacher_dir, evaluator=evaluator)
    logged = validate(model, 8)

    datamodule = EmbeddedMNISTDataModule(image_size=8, batch_size=500)
    datamodule.setup("validate")
    shown = demo.evaluate(model, datamodule, SAMPLES, sign_nfe=[1, 2], teacher_nfe=[1])
    scorer = Scorer(8, SAMPLES, 0, SAMPLES, sample_batch=8, sample_repeats=1, device=torch.device("cpu"))
    benchmark = scorer.score(model.sample, model.image_shape, [1, 2], [])
    teacher = scorer.score_teacher(model.teacher, [1], [])

    for k in (1, 2):
        assert shown[f"sign/fid64_lenet8_nfe{k}"] == pytest.approx(logged[f"val/fid64_lenet8_nfe{k}"], rel=1e-5)
        assert benchmark[k]["fid_lenet"] == pytest.approx(logged[f"val/fid64_lenet8_nfe{k}"], rel=1e-5)
        assert benchmark[k]["class_coverage"] == pytest.approx(logged[f"val/class_coverage_nfe{k}"])
    assert shown["teacher/teacher_fid64_lenet8_nfe1"] == pytest.approx(logged["val/teacher_fid64_lenet8_nfe1"])
    assert teacher[1]["fid_lenet"] == pytest.approx(logged["val/teacher_fid64_lenet8_nfe1"], rel=1e-5)
    ffz = scorer.score(model.sample_repeated, model.image_shape, [2], [])
    assert ffz[2]["fid_lenet"] == pytest.approx(shown["sign_ffz/fid64_lenet8_nfe2"], rel=1e-6)
    # The demo's and the benchmark's diagnostics: the whole held-out split, the same seeded noise.
    diagnostics = scorer.diagnostics(model)
    assert set(diagnostics) == {"idempotence_error", "reconstruction_error"}
    for name, value in diagnostics.items():
        assert shown[f"sign/{name}"] == value
    # Validation's are per batch, under their own seeds.
    assert {"val/idempotence_error", "val/reconstruction_error"} <= set(logged)


def test_teacher_module_validates_through_the_same_scoring(tmp_path) -> None:
    def evaluator() -> FIDEvaluator:
        return FIDEvaluator(RandomConvFeatures(), num_samples=SAMPLES, nfe=[2], cache_dir=str(tmp_path))

    torch.manual_seed(0)
    module = TeacherModule(image_size=8, block_out_channels=[8, 8], sample_nfe=[2], evaluator=evaluator())
    logged = validate(module, 8)
    assert logged["val/loss_denoise"] > 0
    datamodule = EmbeddedMNISTDataModule(image_size=8, batch_size=500)
    datamodule.setup("validate")
    direct = evaluator()
    direct.prepare(datamodule, LocalStrategy())
    expected = score_sampler(direct, ddim_sampler(module.ema.module), (1, 8, 8), LocalStrategy())
    assert expected.keys() == {"val/fid64_randconv_nfe2"}
    assert logged["val/fid64_randconv_nfe2"] == pytest.approx(expected["val/fid64_randconv_nfe2"], rel=1e-5)
    assert module.sample_grid().shape[0] == 3
