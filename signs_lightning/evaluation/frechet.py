"""Feature statistics in float64 and the Fréchet distance between the Gaussians they define."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from signs_lightning.core.distributed import DistributedStrategy


@dataclass
class Gaussian:
    """Mean (d,) and covariance (d, d) of ``count`` feature vectors, float64 on the CPU."""

    mean: Tensor
    cov: Tensor
    count: int


class MomentAccumulator:
    """Running sum (d,), sum of outer products (d, d) and count of feature batches, in float64.

    Sums (rather than per-rank means) make the merge over ranks a plain all-reduce that does not depend on how the
    samples were split between ranks.
    """

    def __init__(self, num_features: int, device: torch.device) -> None:
        # MPS has no float64; elsewhere accumulating on the feature device avoids a host copy per batch.
        self.device = torch.device("cpu") if device.type == "mps" else device
        self.sum = torch.zeros(num_features, dtype=torch.float64, device=self.device)
        self.outer = torch.zeros(num_features, num_features, dtype=torch.float64, device=self.device)
        self.count = torch.zeros((), dtype=torch.float64, device=self.device)

    def update(self, features: Tensor) -> None:
        """Adds a batch of features (B, d)."""
        x = features.detach().to(self.device, torch.float64)
        self.sum += x.sum(0)
        self.outer += x.T @ x
        self.count += x.shape[0]

    def all_reduce(self, strategy: DistributedStrategy) -> None:
        """Sums the moments over all ranks (every rank must call it)."""
        for tensor in (self.sum, self.outer, self.count):
            tensor.copy_(strategy.reduce(tensor, reduce_op="sum"))

    def gaussian(self) -> Gaussian:
        """Mean and unbiased covariance (the ``numpy.cov`` convention, ddof 1)."""
        n = int(self.count.item())
        if n < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {n}")
        mean = (self.sum / n).cpu()
        cov = (self.outer.cpu() - n * torch.outer(mean, mean)) / (n - 1)
        return Gaussian(mean=mean, cov=(cov + cov.T) / 2, count=n)


def frechet_distance(a: Gaussian, b: Gaussian) -> float:
    """‖μa − μb‖² + tr Σa + tr Σb − 2 tr (Σa Σb)^½, in float64.

    tr (Σa Σb)^½ is computed as the sum of √eigenvalues of the symmetric PSD matrix Σa^½ Σb Σa^½ (same spectrum as
    Σa Σb): unlike ``scipy.linalg.sqrtm`` of the non-symmetric product, it stays real and finite when a covariance is
    singular (fewer samples than feature dimensions).

    >>> eye = torch.eye(2, dtype=torch.float64)
    >>> a, b = Gaussian(0 * eye[0], eye, 10), Gaussian(eye[0] + eye[1], 4 * eye, 10)
    >>> round(frechet_distance(a, b), 6)  # |μ|² = 2, traces 2 + 8, 2·tr(2·I) = 8
    4.0
    """
    mean_a, cov_a = a.mean.double().numpy(), a.cov.double().numpy()
    mean_b, cov_b = b.mean.double().numpy(), b.cov.double().numpy()
    eigval, eigvec = np.linalg.eigh(cov_a)
    sqrt_a = (eigvec * np.sqrt(np.clip(eigval, 0, None))) @ eigvec.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mean_a - mean_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)
