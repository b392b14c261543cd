"""The generator's objective: the active loss terms, their inputs run through f, and their weighted sum."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from signs_lightning.core.distributed import DistributedStrategy
from signs_lightning.losses.terms import LossTerm, Step, TermContext


class Objective(nn.ModuleDict):
    """The terms with weight > 0, by name (weight 0 keeps a term's settings in the config but skips its compute).

    Args:
        terms: the loss terms (``losses.terms.build_terms``).
        batched: run every input f must see this step (z and each term's) as one forward (SIGN: batching changes
            nothing but speed with f's group norms); ``False`` runs one forward per input (IGN: its DCGAN's batch
            norm must see real and generated batches apart, as in IGN's training).
    """

    def __init__(self, terms: Iterable[LossTerm], batched: bool = True) -> None:
        super().__init__({term.name: term for term in terms if term.weight > 0})
        self.batched = batched
        self.context: TermContext | None = None

    def bind(self, context: TermContext) -> None:
        self.context = context
        for term in self.values():
            term.bind(context)

    def setup(self, strategy: DistributedStrategy | None) -> None:
        for term in self.values():
            term.setup(strategy)

    def losses(self, x: Tensor, z: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Each term's unweighted loss for real batch x and noise z, and f(z) (graph attached).

        An input tensor that several terms ask for (the real batch x of L_rec and L_tight) runs through f once.
        """
        f = self.context.student
        step = Step(x=x, z=z)
        requests = {name: term.inputs(step) for name, term in self.items()}
        unique: dict[int, Tensor] = {id(z): z}
        for inputs, _ in requests.values():
            unique.update({id(value): value for value in inputs.values() if id(value) not in unique})
        tensors = list(unique.values())
        if self.batched:
            outputs = f(torch.cat(tensors)).split([t.shape[0] for t in tensors])
        else:
            outputs = [f(t) for t in tensors]
        by_input = dict(zip(unique, outputs))
        step = Step(x=x, z=z, f_z=by_input[id(z)])
        losses = {}
        for name, term in self.items():
            inputs, targets = requests[name]
            losses[name] = term.loss(step, {key: by_input[id(value)] for key, value in inputs.items()}, targets)
        return losses, step.f_z

    def total(self, losses: dict[str, Tensor]) -> Tensor:
        """Σ weight · loss."""
        return sum(self[name].weight * value for name, value in losses.items())

    def optimizers(self) -> list[tuple[str, Iterable[nn.Parameter], OptimizerCallable, LRSchedulerCallable | None]]:
        return [entry for term in self.values() for entry in term.optimizers()]

    def auxiliary_updates(self, z: Tensor, f_z: Tensor | None, optimizers: dict[str, Any]) -> dict[str, Tensor]:
        logs: dict[str, Tensor] = {}
        for term in self.values():
            logs.update(term.auxiliary_update(z, f_z, optimizers))
        return logs
