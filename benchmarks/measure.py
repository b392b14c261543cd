"""What is measured on every model: Fréchet distances, class coverage, error diagnostics, throughput, peak memory."""

from __future__ import annotations

import contextlib
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from signs_lightning.core.distributed import LocalStrategy
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.diffusion.score_model import ScoreModel
from signs_lightning.evaluation import FeatureExtractor, FIDEvaluator, InceptionV3Features, MNISTClassifierFeatures
from signs_lightning.evaluation.keys import CLASS_COVERAGE, fid_name, nfe_sampler, sampler_nfe
from signs_lightning.evaluation.scoring import (
    Sampler,
    by_sampler,
    ddim_sampler,
    heldout_diagnostics,
    nfe_samplers,
    score_model,
)
from signs_lightning.modules.common import GeneratorModule


def training_autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast Lightning's precision plugin runs a training step under, for a loop without Lightning:
    ``bf16-mixed``'s (without the weight-cast cache, as ``MixedPrecision`` does: a compiled network would otherwise
    compile a second graph for the bare loop), or none for full precision (fp16 also needs a GradScaler, which a
    bare loop does not have)."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    if precision in ("32-true", "32"):
        return contextlib.nullcontext()
    raise ValueError(f"a bare training loop supports precision 32-true or bf16-mixed, not {precision!r}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU with its torch thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} torch threads"


def median_seconds(fn: Callable[[], Any], repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones (allocator, kernels)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reset_peak_memory(device: torch.device) -> None:
    """Starts a new peak-memory window: CUDA's allocator peak, or the process's RSS high-water mark."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        # Linux >= 4.0: writing 5 resets VmHWM, which getrusage's ru_maxrss reports. Where it is not available the
        # CPU figure is the peak since the process started (an upper bound, documented in benchmarks/README.md).
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float:
    """MiB: CUDA memory allocated by tensors, or the process's peak resident set (ru_maxrss is in KiB on Linux)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ReferenceSubset:
    """The datamodule seen by ``FIDEvaluator.prepare``, with a reference set of ``count`` training images.

    Inception's reference statistics over all 4 500 training digits take ~11 minutes on a 2-core CPU; a seeded
    random subset keeps every class (the training split is sorted by label, so its first images would not).
    """

    def __init__(self, datamodule: EmbeddedMNISTDataModule, count: int, seed: int = 0) -> None:
        self.datamodule = datamodule
        self.count = count
        self.seed = seed

    def reference_key(self) -> str:
        return f"{self.datamodule.reference_key()}-random{self.count}-seed{self.seed}"

    def reference_dataloader(self) -> DataLoader:
        reference = self.datamodule.reference_set
        order = torch.randperm(len(reference), generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(Subset(reference, order[: self.count].tolist()), batch_size=self.datamodule.batch_size)


class Scorer:
    """Scores samplers by name (``evaluation.scoring.score_model``) the same way, with the same noise, for every model.

    Fréchet distances use the MNIST LeNet's features (``num_samples`` samples) and, when ``inception_samples`` > 0,
    the TF-Inception features (fewer samples, against ``inception_reference`` training images). The reference
    statistics are cached on disk by ``FIDEvaluator``; the teacher's DDIM results too, keyed by its fingerprint.

    Args:
        image_size: side of the MNIST images.
        num_samples: samples per LeNet Fréchet distance.
        inception_samples: samples per Inception Fréchet distance (0: none).
        inception_reference: training images in Inception's reference set (at most all of them).
        sample_batch, sample_repeats: throughput is ``sample_batch`` images per call, median over the repeats.
        device: where models sample and features are extracted.
    """

    def __init__(
        self,
        image_size: int,
        num_samples: int,
        inception_samples: int,
        inception_reference: int,
        sample_batch: int,
        sample_repeats: int,
        device: torch.device,
    ) -> None:
        self.device = device
        self.strategy = LocalStrategy(device)
        self.datamodule = EmbeddedMNISTDataModule(image_size=image_size, batch_size=500)
        self.datamodule.setup("validate")
        self.num_samples = num_samples
        self.inception_samples = inception_samples
        self.lenet = MNISTClassifierFeatures(image_size)
        self.inception = InceptionV3Features(allow_download=False) if inception_samples > 0 else None
        self.inception_data = (
            self.datamodule
            if inception_reference >= len(self.datamodule.reference_set)
            else ReferenceSubset(self.datamodule, inception_reference)
        )
        self.sample_batch = sample_batch
        self.sample_repeats = sample_repeats
        self._evaluators: dict[tuple[str, tuple[int, ...]], FIDEvaluator] = {}

    @property
    def metric_names(self) -> dict[str, str]:
        """The metric names of the two FID columns (the sample count is part of an FID's name)."""
        names = {"fid_lenet": fid_name(self.num_samples, self.lenet.name)}
        if self.inception is not None:
            names["fid_inception"] = fid_name(self.inception_samples, self.inception.name)
        return names

    def _evaluator(self, extractor: FeatureExtractor, teacher_nfe: tuple[int, ...]) -> FIDEvaluator:
        """One evaluator per feature space (and teacher NFE settings: they are the teacher's cache entries)."""
        key = (extractor.name, teacher_nfe)
        if key not in self._evaluators:
            inception = extractor is self.inception
            evaluator = FIDEvaluator(
                extractor,
                num_samples=self.inception_samples if inception else self.num_samples,
                nfe=[],
                teacher_nfe=teacher_nfe,
            )
            evaluator.prepare(self.inception_data if inception else self.datamodule, self.strategy)
            self._evaluators[key] = evaluator
        return self._evaluators[key]

    def _fid(
        self,
        extractor: FeatureExtractor,
        samplers: Mapping[str, Sampler],
        shape: tuple[int, ...],
        teacher: ScoreModel | None,
    ) -> dict[str, dict[str, float]]:
        """{sampler: {"fid", "class_coverage"}}; with a ``teacher``, ``samplers`` are its DDIM's ``nfe<k>``."""
        if teacher is None:
            evaluator = self._evaluator(extractor, ())
            metrics = score_model(evaluator, samplers, shape, self.strategy)
        else:
            evaluator = self._evaluator(extractor, tuple(sampler_nfe(name) for name in samplers))
            metrics = score_model(evaluator, {}, shape, self.strategy, teacher=teacher)
        return by_sampler(metrics, evaluator, samplers, teacher=teacher is not None)

    def score(
        self, samplers: Mapping[str, Sampler], shape: tuple[int, ...], inception: Iterable[str] = ()
    ) -> dict[str, dict[str, float | None]]:
        """{sampler: fid_lenet, class_coverage, fid_inception (None if not scored), sample_images_per_second}, the
        samplers by name (``evaluation.scoring.generator_samplers``); ``inception`` names those also scored in
        Inception's features."""
        return self._rows(samplers, shape, inception, None)

    def score_teacher(
        self, teacher: ScoreModel, nfe: Iterable[int], inception_nfe: Iterable[int]
    ) -> dict[str, dict[str, float | None]]:
        """``score`` of the teacher's DDIM at each of ``nfe`` (named ``nfe<k>``), whose FIDs are computed once per
        teacher fingerprint and cached."""
        samplers = nfe_samplers(ddim_sampler(teacher), nfe)
        return self._rows(samplers, teacher.image_shape, [nfe_sampler(k) for k in inception_nfe], teacher)

    def _rows(
        self,
        samplers: Mapping[str, Sampler],
        shape: tuple[int, ...],
        inception: Iterable[str],
        teacher: ScoreModel | None,
    ) -> dict[str, dict[str, float | None]]:
        lenet = self._fid(self.lenet, samplers, shape, teacher)
        inception_samplers = {name: samplers[name] for name in inception if name in samplers}
        inception_rows = {}
        if self.inception is not None and inception_samplers:
            inception_rows = self._fid(self.inception, inception_samplers, shape, teacher)
        z = torch.randn((self.sample_batch, *shape), generator=torch.Generator().manual_seed(0)).to(self.device)
        rows: dict[str, dict[str, float | None]] = {}
        for name, sample in samplers.items():
            with torch.no_grad():
                seconds = median_seconds(lambda: sample(z, None), self.sample_repeats, self.device)
            rows[name] = {
                "fid_lenet": lenet[name]["fid"],
                "class_coverage": lenet[name].get(CLASS_COVERAGE),
                "fid_inception": inception_rows.get(name, {}).get("fid"),
                "sample_images_per_second": self.sample_batch / seconds,
            }
        return rows

    def diagnostics(self, model: GeneratorModule) -> dict[str, float]:
        """Idempotence error (on noise) and reconstruction error on the held-out digits, as in ``signs demo``."""
        return heldout_diagnostics(model, self.datamodule)
