"""One way to score a model (``score_model``): validation, ``signs demo`` and the benchmark give the same numbers for
the same model and seed; samplers are scored by name, f(f(z)) under its own; the teacher module validates through the
same path; the evaluator scores given images through its public methods."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import tiny_sign

from benchmarks.measure import Scorer
from signs_lightning.core.distributed import LocalStrategy
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.evaluation import FIDEvaluator, MNISTClassifierFeatures, RandomConvFeatures
from signs_lightning.evaluation.keys import FFZ, parse_key
from signs_lightning.evaluation.scoring import (
    by_sampler,
    ddim_sampler,
    ffz_sampler,
    generator_samplers,
    nfe_samplers,
    score_classifier_features,
    score_model,
)
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
    shown = score_classifier_features(model, datamodule, SAMPLES, nfe=[1, 2], teacher_nfe=[1])
    scorer = Scorer(8, SAMPLES, 0, SAMPLES, sample_batch=8, sample_repeats=1, device=torch.device("cpu"))
    benchmark = scorer.score(generator_samplers(model, [1, 2]), model.image_shape)
    teacher = scorer.score_teacher(model.teacher, [1], [])

    for k in (1, 2):
        assert shown[f"sign/fid64_lenet8_nfe{k}"] == pytest.approx(logged[f"val/fid64_lenet8_nfe{k}"], rel=1e-5)
        assert benchmark[f"nfe{k}"]["fid_lenet"] == pytest.approx(logged[f"val/fid64_lenet8_nfe{k}"], rel=1e-5)
        assert benchmark[f"nfe{k}"]["class_coverage"] == pytest.approx(logged[f"val/class_coverage_nfe{k}"])
    assert shown["teacher/teacher_fid64_lenet8_nfe1"] == pytest.approx(logged["val/teacher_fid64_lenet8_nfe1"])
    assert teacher["nfe1"]["fid_lenet"] == pytest.approx(logged["val/teacher_fid64_lenet8_nfe1"], rel=1e-5)
    assert benchmark[FFZ]["fid_lenet"] == pytest.approx(shown["sign/fid64_lenet8_of_ffz"], rel=1e-6)
    # The demo's and the benchmark's diagnostics: the whole held-out split, the same seeded noise.
    diagnostics = scorer.diagnostics(model)
    assert set(diagnostics) == {"idempotence_error", "reconstruction_error"}
    for name, value in diagnostics.items():
        assert shown[f"sign/{name}"] == value
    # Validation's are per batch, under their own seeds.
    assert {"val/idempotence_error", "val/reconstruction_error"} <= set(logged)
    # A checkpoint keeps the last validation's scores (the model card of an export made from it reads them).
    saved = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(saved)
    assert saved["signs_validation"]["generator_step"] == 0
    for k in (1, 2):
        key = f"val/fid64_lenet8_nfe{k}"
        assert saved["signs_validation"]["metrics"][key] == pytest.approx(logged[key])


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
    samplers = nfe_samplers(ddim_sampler(module.ema.module), direct.nfe)
    expected = score_model(direct, samplers, (1, 8, 8), LocalStrategy())
    assert expected.keys() == {"val/fid64_randconv_nfe2"}
    assert logged["val/fid64_randconv_nfe2"] == pytest.approx(expected["val/fid64_randconv_nfe2"], rel=1e-5)
    assert module.sample_grid().shape[0] == 3


def test_named_samplers_get_their_own_keys_and_the_same_noise(tiny_teacher_dir, tmp_path) -> None:
    """f(f(z)) is a sampler named ``ffz`` (not "NFE 2"): its own key, beside the NFE samplers', scored on the same
    noise; the same seed gives identical metrics."""
    model = tiny_sign(tiny_teacher_dir)
    datamodule = EmbeddedMNISTDataModule(image_size=8, batch_size=500)
    datamodule.setup("validate")

    def score(samplers: dict) -> dict[str, float]:
        evaluator = FIDEvaluator(RandomConvFeatures(), num_samples=SAMPLES, batch_size=24, cache_dir=str(tmp_path))
        evaluator.prepare(datamodule, LocalStrategy())
        return score_model(evaluator, samplers, model.image_shape, LocalStrategy(), prefix="sign")

    metrics = score(generator_samplers(model, [1, 2]))
    assert set(metrics) == {"sign/fid64_randconv_nfe1", "sign/fid64_randconv_nfe2", "sign/fid64_randconv_of_ffz"}
    assert parse_key("sign/fid64_randconv_of_ffz").sampler == FFZ
    assert score(generator_samplers(model, [1, 2])) == metrics
    # A sampler's value does not depend on which others are scored with it, nor on its name.
    alone = score({"twice": ffz_sampler(model)})
    assert alone == {"sign/fid64_randconv_of_twice": metrics["sign/fid64_randconv_of_ffz"]}
    # f(f(z)) is not the 2-NFE multi-step sampler (that one re-noises between the two steps).
    assert metrics["sign/fid64_randconv_of_ffz"] != metrics["sign/fid64_randconv_nfe2"]


def test_evaluator_scores_given_images_through_its_public_methods(tmp_path) -> None:
    """``score_images`` scores a fixed set of images against ``reference_statistics()``: the reference set itself
    comes out at distance ~0, and the images a sampler made score as that sampler did."""
    datamodule = EmbeddedMNISTDataModule(image_size=8, batch_size=500)
    datamodule.setup("validate")
    evaluator = FIDEvaluator(RandomConvFeatures(), num_samples=SAMPLES, batch_size=16, cache_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match="prepare"):
        evaluator.reference_statistics()
    evaluator.prepare(datamodule, LocalStrategy())
    reference = evaluator.reference_statistics()
    assert reference.mean.dtype == torch.float64 and reference.cov.shape == (len(reference.mean),) * 2

    digits = torch.cat([images for images, _ in datamodule.reference_dataloader()])
    assert evaluator.score_images(digits.split(100), LocalStrategy())["fid"] == pytest.approx(0, abs=1e-3)

    kept: list[torch.Tensor] = []

    def made(noise: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        kept.append(torch.tanh(noise))
        return kept[-1]

    metrics = score_model(evaluator, {"tanh": made}, (1, 8, 8), LocalStrategy(), prefix="x")
    assert metrics.keys() == {"x/fid64_randconv_of_tanh"}
    again = evaluator.score_images(kept, LocalStrategy())
    assert by_sampler(metrics, evaluator, ["tanh"], prefix="x") == {"tanh": again}
