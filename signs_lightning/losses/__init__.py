"""Loss terms: the maths (``sign.py``, one function per equation of docs/method.md; ``ign.py``, IGN's tightening
loss), the terms as units (``terms.py``, ``ign.py: Tightening``) and the objective that runs them (``objective.py``)."""

from signs_lightning.losses.distances import Distance, distance_fn
from signs_lightning.losses.ign import Tightening, tightening_loss
from signs_lightning.losses.sign import (
    denoising_loss,
    dmd_loss,
    flow_pair,
    idempotence_loss,
    reconstruction_loss,
    with_detached_parameters,
)
from signs_lightning.losses.terms import (
    DataRegression,
    DistributionMatching,
    Flow,
    Idempotence,
    LossTerm,
    Reconstruction,
    Regression,
    Step,
    TermContext,
)

__all__ = [
    "DataRegression",
    "Distance",
    "DistributionMatching",
    "Flow",
    "Idempotence",
    "LossTerm",
    "Reconstruction",
    "Regression",
    "Step",
    "TermContext",
    "Tightening",
    "denoising_loss",
    "distance_fn",
    "dmd_loss",
    "flow_pair",
    "idempotence_loss",
    "reconstruction_loss",
    "tightening_loss",
    "with_detached_parameters",
]
