"""``FIDEvaluator``: FIDs of generated samples against cached reference statistics, DDP-aware.

The one FID engine is torchmetrics' ``FrechetInceptionDistance`` (``fid_metric.py``): the reference statistics are
its real-feature states after the reference images were fed to it (cached on disk as those states), and every score
is its ``compute()`` with those states loaded and the generated images added as fake ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from signs_lightning.core.cache import atomic_torch_save, atomic_write_text, default_cache_dir, slug
from signs_lightning.core.distributed import DistributedStrategy
from signs_lightning.core.randomness import FID_STREAM, seeded_generator
from signs_lightning.evaluation.extractors import FeatureExtractor, InceptionV3Features
from signs_lightning.evaluation.fid_metric import fid_metric, reference_states
from signs_lightning.evaluation.frechet import Gaussian, RealStates, check_real_states, gaussian_of, real_states_of
from signs_lightning.evaluation.keys import CLASS_COVERAGE, count_tag, fid_name, metric_key, nfe_sampler

# sample_fn(noise, nfe, generator) -> images: a generator's sampler; its re-noising draws come from ``generator``.
SampleFn = Callable[[Tensor, int, torch.Generator], Tensor]
# teacher_sample_fn(noise, nfe) -> images: a deterministic sampler (the teacher's DDIM).
DeterministicSampleFn = Callable[[Tensor, int], Tensor]
# sampler(noise, generator) -> images: one sampler, scored under its name (``score_samplers``); any further
# randomness it needs comes from ``generator`` (a CPU generator seeded per chunk), never from the global RNG.
Sampler = Callable[[Tensor, torch.Generator], Tensor]

log = logging.getLogger(__name__)


def nfe_samplers(sample_fn: SampleFn, nfe: Iterable[int]) -> dict[str, Sampler]:
    """``sample_fn`` at each of ``nfe``, named ``nfe_sampler(k)`` (``nfe1``, ``nfe2``...; keys ``..._nfe<k>``)."""
    return {nfe_sampler(k): (lambda noise, generator, k=k: sample_fn(noise, k, generator)) for k in nfe}


def chunk_generator(seed: int, chunk: int) -> torch.Generator:
    """The CPU generator of chunk ``chunk``: its noise, then its re-noising draws, depend on (seed, chunk) only, so
    the same samples come out whatever the device or the number of ranks."""
    return seeded_generator(FID_STREAM, seed, chunk)


def load_reference_npz(path: Path) -> Gaussian:
    """Reference statistics from a ``.npz`` holding ``mu`` (d,) and ``sigma`` (d, d) (EDM's and clean-fid's format).

    The sample count is not stored in those files; it does not enter the distance (50,000 is recorded).
    """
    try:
        with np.load(path) as data:
            mu, sigma = data["mu"], data["sigma"]
    except (KeyError, ValueError, OSError) as error:
        raise ValueError(f"{path}: not a reference-statistics .npz with arrays 'mu' and 'sigma' ({error})") from error
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{path}: 'mu' must be (d,) and 'sigma' (d, d), got {mu.shape} and {sigma.shape}")
    return Gaussian(torch.from_numpy(mu).double(), torch.from_numpy(sigma).double(), 50_000)


def read_cached_states(path: Path, num_features: int) -> RealStates | None:
    """The real-feature states cached at ``path``, or None when there is none or the file holds anything else.

    Anything else includes this cache's earlier format (``mean``, ``cov``, ``count``): it is recomputed from the
    reference set and overwritten, so that every reference comes from the one engine; a file is never half-trusted.
    """
    if not path.is_file():
        return None
    try:
        return check_real_states(torch.load(path, map_location="cpu", weights_only=True), num_features)
    except (ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        reason = str(error).partition("\n")[0] or type(error).__name__  # torch's load errors run to many lines
        log.warning("%s does not hold the FID metric's real-feature states (%s): recomputing them", path, reason)
        return None


def file_digest(path: Path) -> str:
    """12 hex digits of a SHA-1 of the file's bytes."""
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


class FIDEvaluator(nn.Module):
    """Fréchet distance of generated samples in an extractor's feature space, against a dataset's reference set.

    Call ``prepare(datamodule, strategy)`` on every rank (e.g. in ``setup`` or ``on_validation_start``), then
    ``evaluate(...)`` / ``evaluate_teacher(...)`` on every rank; the results are the same on every rank.

    The FID is torchmetrics' ``FrechetInceptionDistance`` (see ``fid_metric``), for the reference as for the samples.
    The reference statistics are its real-feature states (float64 feature sum and sum of outer products, and the
    count) after the reference set was fed to it as real images, once per (reference set, extractor weights) by
    global rank 0; they are written atomically, as those states, to
    ``{cache_dir}/fid_ref_{reference_key}_{extractor.name}_{fingerprint}.pt`` and broadcast; later runs, resumes and
    new evaluator objects load them. Or they are derived from a published ``.npz`` (``mu``, ``sigma``: the files EDM
    and clean-fid provide), so a paper-comparable FID needs no recomputation of the reference set.

    Generated samples come in chunks of ``batch_size`` whose noise and re-noising draws depend only on (seed, chunk
    index); rank r takes chunks r, r + W, ..., so the union over ranks is the same set of ``num_samples`` samples for
    any world size W, at every NFE. The metric's float64 states are all-reduced over ranks, with the reference loaded
    on rank 0 only so that it counts once.

    The extractor is kept out of ``state_dict()``, ``parameters()``, ``.to()`` and ``.half()``: it is not trained,
    must stay float32 and must not bloat checkpoints, DDP buckets or EMA copies. ``prepare`` moves it to
    ``strategy.root_device``. The evaluator itself has no state-dict entries.

    Args:
        extractor: the feature space (``InceptionV3Features`` for standard FID, ``MNISTClassifierFeatures`` for
            the CPU-scale MNIST metric).
        num_samples: generated samples per FID (part of the metric name: ``fid2k``, ``fid50k``).
        nfe: sampler settings evaluated by ``evaluate``; ``sample_fn(noise, k)`` is called with each.
        teacher_nfe: teacher sampler settings evaluated (once per teacher) by ``evaluate_teacher``.
        batch_size: images per generation/extraction call, per rank.
        cache_dir: default ``$SIGNS_CACHE/fid`` or ``~/.cache/signs_lightning/fid``.
        seed: noise seed; the same noise is used for every ``nfe`` and for the teacher, so results are paired.
        coverage_share: a class counts as covered when it gets at least ``coverage_share / num_classes`` of the
            argmax predictions (0.1 with 10 classes: 1% of the samples).
        reference_npz: a ``.npz`` with the reference ``mu`` (d,) and ``sigma`` (d, d) in the extractor's features
            (e.g. EDM's ``cifar10-32x32.npz`` for Inception); replaces the reference set of the datamodule.
    """

    extractor: FeatureExtractor

    def __init__(
        self,
        extractor: FeatureExtractor,
        num_samples: int = 2000,
        nfe: Sequence[int] = (1, 2),
        teacher_nfe: Sequence[int] = (),
        batch_size: int = 250,
        cache_dir: str | None = None,
        seed: int = 0,
        coverage_share: float = 0.1,
        reference_npz: str | None = None,
    ) -> None:
        super().__init__()
        if num_samples < 2:
            raise ValueError(f"num_samples must be at least 2, got {num_samples}")
        # Plain attribute, not a registered submodule: see the class docstring.
        object.__setattr__(self, "extractor", extractor)
        self.num_samples = int(num_samples)
        self.nfe = [int(k) for k in nfe]
        self.teacher_nfe = [int(k) for k in teacher_nfe]
        self.batch_size = int(batch_size)
        self.cache_root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir() / "fid"
        self.seed = int(seed)
        self.coverage_share = float(coverage_share)
        self.reference_npz = Path(reference_npz).expanduser().resolve() if reference_npz else None
        if self.reference_npz is not None and not self.reference_npz.is_file():
            raise FileNotFoundError(
                f"reference_npz {self.reference_npz} does not exist: give a .npz with 'mu' and 'sigma' (EDM's or "
                "clean-fid's reference statistics) or leave it unset to compute the reference from the dataset"
            )
        self._reference: RealStates | None = None
        self._extractor_id: str | None = None
        self._reference_id: str | None = None
        self._teacher_results: dict[tuple[str | None, str], dict[int, dict[str, float]]] = {}

    @classmethod
    def paper(
        cls,
        nfe: Sequence[int] = (1, 2),
        teacher_nfe: Sequence[int] = (),
        batch_size: int = 250,
        cache_dir: str | None = None,
        seed: int = 0,
        allow_download: bool = True,
    ) -> FIDEvaluator:
        """Paper-comparable FID: 50 000 samples, TF-Inception pool3 features, against the training split.

        The reference set is ``datamodule.reference_dataloader()``: the full training split without flips (CIFAR-10:
        the 50 000 training images, as in EDM/DMD). Keys read ``val/fid50k_inception_nfe1``. The LightningCLI
        equivalent::

            evaluator:
              class_path: signs_lightning.evaluation.FIDEvaluator
              init_args:
                extractor: {class_path: signs_lightning.evaluation.InceptionV3Features}
                num_samples: 50000

        At ~144 ms per image on a 2-core CPU this is a GPU job (a few minutes on one GPU).
        """
        return cls(InceptionV3Features(allow_download), 50_000, nfe, teacher_nfe, batch_size, cache_dir, seed)

    @property
    def count_tag(self) -> str:
        return count_tag(self.num_samples)

    @property
    def fid_name(self) -> str:
        """The FID's name in metric keys: sample count and feature space, e.g. ``fid2k_lenet16``."""
        return fid_name(self.num_samples, self.extractor.name)

    def extra_repr(self) -> str:
        return f"extractor={self.extractor.name}, num_samples={self.num_samples}, nfe={self.nfe}, seed={self.seed}"

    # ---------------------------------------------------------------- reference
    def prepare(self, datamodule: Any, strategy: DistributedStrategy) -> None:
        """Readies the extractor on ``strategy.root_device`` and the reference statistics (every rank must call it).

        ``datamodule`` needs ``reference_key() -> str`` and ``reference_dataloader()`` yielding (images (B, C, H, W)
        in [-1, 1], labels); ``setup`` must have run (it has, in ``LightningModule.setup`` and later hooks).
        Rank 0 loads the cached statistics or computes and writes them; the others receive them by broadcast, so
        the cache folder need not be shared between nodes.
        """
        self.extractor.prepare(strategy)
        if self._extractor_id is None:  # hashing Inception's weights takes a while: once per evaluator
            self._extractor_id = f"{self.extractor.name}_{self.extractor.fingerprint()}"
        self.extractor.eval().to(strategy.root_device)
        if self.reference_npz is not None:
            reference_id = f"npz-{slug(self.reference_npz.stem)}-{file_digest(self.reference_npz)}"
        else:
            reference_id = f"{slug(datamodule.reference_key())}_{self._extractor_id}"
        if self._reference_id == reference_id:
            return
        reference = None
        if strategy.global_rank == 0:
            if self.reference_npz is not None:
                reference = self._npz_states(self.reference_npz)
            else:
                reference = self._cached_or_computed_states(datamodule, strategy.root_device, reference_id)
        self._reference = strategy.broadcast(reference, src=0)
        self._reference_id = reference_id

    def _npz_states(self, path: Path) -> RealStates:
        reference = load_reference_npz(path)
        if len(reference.mean) != self.extractor.num_features:
            raise ValueError(
                f"{path}: reference statistics of {len(reference.mean)} features, the extractor "
                f"{self.extractor.name!r} gives {self.extractor.num_features}: use reference statistics made with the "
                "same extractor"
            )
        return real_states_of(reference)

    def _cached_or_computed_states(self, datamodule: Any, device: torch.device, reference_id: str) -> RealStates:
        path = self.cache_root / f"fid_ref_{reference_id}.pt"
        states = read_cached_states(path, self.extractor.num_features)
        if states is None:
            loader = datamodule.reference_dataloader()
            progress = tqdm(loader, desc=f"FID reference statistics ({self.extractor.name})", leave=False)
            states = reference_states(self.extractor, (images for images, _ in progress), device)
            atomic_torch_save(states, path)
        return states

    def _reference_states(self) -> RealStates:
        if self._reference is None:
            raise RuntimeError("FIDEvaluator.prepare(datamodule, strategy) must run before it is asked for scores")
        return self._reference

    def reference_statistics(self) -> Gaussian:
        """The reference set's feature mean and covariance (float64), once ``prepare`` has run; the same on every
        rank. They are the mean and covariance the metric derives from the cached real-feature states."""
        return gaussian_of(self._reference_states())

    # ---------------------------------------------------------------- generated samples
    def _classes(self, images: Tensor) -> Tensor:
        """Argmax classes (B,) of the extractor's classifier; float32, no autocast, samples clamped to [-1, 1]."""
        images = images.float().clamp(-1, 1)
        with torch.autocast(images.device.type, enabled=False):
            return self.extractor.classify(images).argmax(1)

    def _my_chunks(self, strategy: DistributedStrategy) -> Iterator[tuple[int, int]]:
        """(chunk index, chunk size) of this rank's share of the ``num_samples`` samples."""
        num_chunks = math.ceil(self.num_samples / self.batch_size)
        for chunk in range(strategy.global_rank, num_chunks, strategy.world_size):
            yield chunk, min(self.batch_size, self.num_samples - chunk * self.batch_size)

    def _sample_chunks(
        self, sample: Sampler, image_shape: Sequence[int], strategy: DistributedStrategy
    ) -> Iterator[Tensor]:
        """This rank's chunks of ``sample``'s ``num_samples`` samples, each from its own seeded noise."""
        device = strategy.root_device
        chunks = list(self._my_chunks(strategy))
        for chunk, size in tqdm(
            chunks,
            desc=f"FID {self.count_tag} samples",
            leave=False,
            disable=strategy.global_rank != 0 or len(chunks) < 2,
        ):
            generator = chunk_generator(self.seed, chunk)
            noise = torch.randn((size, *image_shape), generator=generator).to(device)
            yield sample(noise, generator)

    @torch.no_grad()
    def score_images(self, batches: Iterable[Tensor], strategy: DistributedStrategy) -> dict[str, float]:
        """{"fid": ..., "class_coverage": ...} of the images in ``batches`` ((B, C, H, W) each, in [-1, 1]; clamped),
        against the reference statistics. Every rank calls it with its own share; the result is over the union of
        the shares, the same on every rank. ``class_coverage`` only when the extractor classifies."""
        reference = self._reference_states()
        device = strategy.root_device
        self.extractor.to(device)
        metric = fid_metric(self.extractor, strategy, reference)
        class_counts = torch.zeros(max(self.extractor.num_classes, 1), dtype=torch.float64, device=device)
        for images in batches:
            images = images.to(device)
            metric.update(images, real=False)
            if self.extractor.num_classes:
                classes = self._classes(images)
                class_counts += torch.bincount(classes, minlength=len(class_counts)).to(class_counts)
        result = {"fid": float(metric.compute())}
        if self.extractor.num_classes:
            class_counts = strategy.reduce(class_counts, reduce_op="sum")
            shares = class_counts / class_counts.sum()
            result[CLASS_COVERAGE] = (shares >= self.coverage_share / len(shares)).double().mean().item()
        return result

    def _keys(self, prefix: str, sampler: str, results: dict[str, float], teacher: bool) -> dict[str, float]:
        metrics = {metric_key(prefix, self.fid_name, teacher=teacher, sampler=sampler): results["fid"]}
        if CLASS_COVERAGE in results:
            metrics[metric_key(prefix, CLASS_COVERAGE, teacher=teacher, sampler=sampler)] = results[CLASS_COVERAGE]
        return metrics

    @torch.no_grad()
    def score_samplers(
        self,
        samplers: Mapping[str, Sampler],
        image_shape: Sequence[int],
        strategy: DistributedStrategy,
        prefix: str = "val",
    ) -> dict[str, float]:
        """FID (and class coverage) of each sampler, by name; every rank must call it, every rank gets the same values.

        Every sampler gets the same noise: chunk c of ``batch_size`` samples draws its noise, then whatever the
        sampler draws, from ``chunk_generator(seed, c)``. Keys (``keys.metric_key``): ``{prefix}/{fid_name}_nfe<k>``
        for a sampler named ``nfe_sampler(k)``, ``{prefix}/{fid_name}_of_<name>`` for any other name (``ffz``), with
        ``class_coverage`` beside them when the extractor classifies.
        """
        metrics: dict[str, float] = {}
        for name, sample in samplers.items():
            measured = self.score_images(self._sample_chunks(sample, image_shape, strategy), strategy)
            metrics.update(self._keys(prefix, name, measured, False))
        return metrics

    def evaluate(
        self, sample_fn: SampleFn, image_shape: Sequence[int], strategy: DistributedStrategy, prefix: str = "val"
    ) -> dict[str, float]:
        """FID (and class coverage) of ``sample_fn`` at each of ``self.nfe``; every rank must call it.

        Args:
            sample_fn: ``sample_fn(noise (B, C, H, W) on strategy.root_device, nfe, generator) -> images (B, C, H,
                W)`` in [-1, 1]; called under ``torch.no_grad``, in whatever train/eval mode and autocast the caller
                set. For world-size-independent results it must draw any further randomness from ``generator``
                (a CPU ``torch.Generator`` seeded per chunk), not from the global RNG.
            image_shape: (C, H, W).
            prefix: metric-name prefix.

        Returns:
            ``{f"{prefix}/fid{count}_{extractor}_nfe{k}": fid, f"{prefix}/class_coverage_nfe{k}": fraction}``, e.g.
            ``val/fid2k_lenet16_nfe1``; the same on every rank.
        """
        return self.score_samplers(nfe_samplers(sample_fn, self.nfe), image_shape, strategy, prefix)

    # ---------------------------------------------------------------- teacher
    def _teacher_cache_path(self, teacher_key: str) -> Path:
        # The noise of a chunk depends on the chunk's size: another batch size is another set of samples.
        name = (
            f"teacher_fid_{slug(teacher_key)}_{self._reference_id}_n{self.num_samples}_b{self.batch_size}"
            f"_seed{self.seed}.json"
        )
        return self.cache_root / name

    def evaluate_teacher(
        self,
        teacher_sample_fn: DeterministicSampleFn,
        image_shape: Sequence[int],
        strategy: DistributedStrategy,
        prefix: str = "val",
        teacher_key: str | None = None,
    ) -> dict[str, float]:
        """The teacher's FID at each of ``self.teacher_nfe``, computed once per teacher and then reused.

        Results are kept in memory per ``teacher_key`` and, when ``teacher_key`` is given, on disk in a JSON file
        named by it, the reference set, the extractor, ``num_samples``, ``batch_size`` and ``seed``. The key must
        name everything that changes the samples (weights fingerprint, sampler, eta...), e.g.
        ``"ddpm-cifar10-32_ddim_eta0"``.
        Same noise as ``evaluate``, so the teacher row is paired with the student's. Keys
        ``f"{prefix}/teacher_fid{count}_{extractor}_nfe{k}"`` (and ``teacher_class_coverage_nfe{k}``).
        """
        if not self.teacher_nfe:
            return {}
        self._reference_states()  # prepared?
        results = self._teacher_results.setdefault((teacher_key, self._reference_id), {})
        if teacher_key is not None and not results:
            stored = None
            if strategy.global_rank == 0 and self._teacher_cache_path(teacher_key).is_file():
                stored = json.loads(self._teacher_cache_path(teacher_key).read_text())
            results.update({int(nfe): values for nfe, values in (strategy.broadcast(stored, src=0) or {}).items()})
        missing = [nfe for nfe in self.teacher_nfe if nfe not in results]
        for nfe in missing:
            chunks = self._sample_chunks(lambda noise, g: teacher_sample_fn(noise, nfe), image_shape, strategy)
            results[nfe] = self.score_images(chunks, strategy)
        if missing and teacher_key is not None and strategy.global_rank == 0:
            stored = {str(nfe): values for nfe, values in sorted(results.items())}
            atomic_write_text(json.dumps(stored, indent=1), self._teacher_cache_path(teacher_key))
        metrics: dict[str, float] = {}
        for nfe in self.teacher_nfe:
            metrics.update(self._keys(prefix, nfe_sampler(nfe), results[nfe], True))
        return metrics
