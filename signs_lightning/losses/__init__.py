"""Loss terms, one function per equation of docs/method.md (and IGN's tightening loss)."""

from signs_lightning.losses.distances import Distance, distance_fn
from signs_lightning.losses.ign import tightening_loss
from signs_lightning.losses.sign import (
    denoising_loss,
    dmd_loss,
    flow_loss,
    flow_pair,
    idempotence_loss,
    reconstruction_loss,
    regression_loss,
    with_detached_parameters,
)

__all__ = [
    "Distance",
    "distance_fn",
    "reconstruction_loss",
    "idempotence_loss",
    "flow_loss",
    "flow_pair",
    "dmd_loss",
    "regression_loss",
    "denoising_loss",
    "tightening_loss",
    "with_detached_parameters",
]
