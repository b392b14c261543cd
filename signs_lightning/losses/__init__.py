"""Loss terms: the maths (``sign.py``, one function per equation of docs/method.md, and IGN's tightening loss) and
SIGN's terms as units (``terms.py``)."""

from signs_lightning.losses.distances import Distance, distance_fn
from signs_lightning.losses.ign import tightening_loss
from signs_lightning.losses.sign import (
    denoising_loss,
    dmd_loss,
    flow_pair,
    idempotence_loss,
    reconstruction_loss,
    with_detached_parameters,
)
from signs_lightning.losses.terms import (
    DistributionMatching,
    Flow,
    Idempotence,
    LossTerm,
    Reconstruction,
    Regression,
    Step,
)

__all__ = [
    "Distance",
    "DistributionMatching",
    "Flow",
    "Idempotence",
    "LossTerm",
    "Reconstruction",
    "Regression",
    "Step",
    "denoising_loss",
    "distance_fn",
    "dmd_loss",
    "flow_pair",
    "idempotence_loss",
    "reconstruction_loss",
    "tightening_loss",
    "with_detached_parameters",
]
