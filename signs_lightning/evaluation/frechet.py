"""The two forms of the FID reference statistics: torchmetrics' real-feature states and the Gaussian they define.

The project has one FID engine, torchmetrics' ``FrechetInceptionDistance`` (``fid_metric.py``). The reference
statistics are that metric's own real-feature states (``REAL_STATES``: the float64 sum of the features, the float64
sum of their outer products and the sample count), made by feeding it the reference images and cached exactly as
they are. ``Gaussian`` is their mean/covariance view: what a published ``.npz`` (EDM, clean-fid) holds and what
``FIDEvaluator.reference_statistics()`` reports. ``gaussian_of`` follows the metric's ``compute()`` and
``real_states_of`` inverts it, up to float64 rounding. No distance is computed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# The metric's real-feature state names; a cached reference file holds exactly these keys.
REAL_STATES = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")
RealStates = dict[str, Tensor]


@dataclass
class Gaussian:
    """Mean (d,) and covariance (d, d) of ``count`` feature vectors, float64 on the CPU."""

    mean: Tensor
    cov: Tensor
    count: int


def check_real_states(states: object, num_features: int) -> RealStates:
    """``states`` if it is a complete set of real-feature states of ``num_features`` features; else ValueError.

    Guards what is read from disk: a file of another format or another feature space must not be loaded into the
    metric (a wrong shape would otherwise only fail, or broadcast silently, at ``compute()``).
    """
    if not isinstance(states, dict) or set(states) != set(REAL_STATES):
        keys = sorted(states) if isinstance(states, dict) else type(states).__name__
        raise ValueError(f"expected exactly the states {list(REAL_STATES)}, got {keys}")
    expected = {
        "real_features_sum": ((num_features,), torch.float64),
        "real_features_cov_sum": ((num_features, num_features), torch.float64),
        "real_features_num_samples": ((), torch.long),
    }
    for name, (shape, dtype) in expected.items():
        tensor = states[name]
        if not isinstance(tensor, Tensor) or tuple(tensor.shape) != shape or tensor.dtype != dtype:
            found = (tuple(tensor.shape), tensor.dtype) if isinstance(tensor, Tensor) else type(tensor).__name__
            raise ValueError(f"{name} must be a {dtype} tensor of shape {shape}, got {found}")
    count = int(states["real_features_num_samples"])
    if count < 2:
        raise ValueError(f"need at least 2 reference samples for a covariance, got {count}")
    return states


def gaussian_of(states: RealStates) -> Gaussian:
    """The mean and (ddof 1) covariance that the metric's ``compute()`` derives from ``states``."""
    count = int(states["real_features_num_samples"])
    mean = states["real_features_sum"].double().cpu() / count
    cov = (states["real_features_cov_sum"].double().cpu() - count * torch.outer(mean, mean)) / (count - 1)
    return Gaussian(mean=mean, cov=cov, count=count)


def real_states_of(gaussian: Gaussian) -> RealStates:
    """The states from which the metric's ``compute()`` gives back ``gaussian``'s mean and covariance."""
    count = gaussian.count
    mean = gaussian.mean.double().cpu()
    return {
        "real_features_sum": count * mean,
        "real_features_cov_sum": (count - 1) * gaussian.cov.double().cpu() + count * torch.outer(mean, mean),
        "real_features_num_samples": torch.tensor(count, dtype=torch.long),
    }
