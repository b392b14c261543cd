"""What the evaluation code needs from a Lightning strategy, and two stand-ins for use outside a ``Trainer``.

Every Lightning strategy (``trainer.strategy``) already provides this interface: ``global_rank``, ``world_size``,
``root_device``, ``barrier(name)``, ``broadcast(obj, src)``, ``reduce(tensor, reduce_op="sum")`` and
``all_gather(tensor)``. All collective
calls must be made by every rank in the same order.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

T = TypeVar("T")


class DistributedStrategy(Protocol):
    """The subset of ``lightning.pytorch.strategies.Strategy`` used by the evaluator."""

    @property
    def global_rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...

    @property
    def root_device(self) -> torch.device: ...

    def barrier(self, name: str | None = None) -> None: ...

    def broadcast(self, obj: T, src: int = 0) -> T: ...

    def reduce(self, tensor: Tensor, group: Any | None = None, reduce_op: str | None = "mean") -> Tensor: ...

    def all_gather(self, tensor: Tensor, group: Any | None = None, sync_grads: bool = False) -> Tensor: ...


class LocalStrategy:
    """One process, no collectives: for scripts, notebooks and tests."""

    global_rank = 0
    world_size = 1

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.root_device = torch.device(device)

    def barrier(self, name: str | None = None) -> None:
        pass

    def broadcast(self, obj: T, src: int = 0) -> T:
        return obj

    def reduce(self, tensor: Tensor, group: Any | None = None, reduce_op: str | None = "mean") -> Tensor:
        return tensor

    def all_gather(self, tensor: Tensor, group: Any | None = None, sync_grads: bool = False) -> Tensor:
        return tensor.unsqueeze(0)


class TorchDistributedStrategy:
    """The default ``torch.distributed`` process group (already initialised), for multi-process runs without Lightning.

    Only ``reduce_op="sum"`` is supported: that is all the evaluator uses.
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed.init_process_group() must run before TorchDistributedStrategy()")
        self.root_device = torch.device(device)
        self.global_rank = dist.get_rank()
        self.world_size = dist.get_world_size()

    def barrier(self, name: str | None = None) -> None:
        dist.barrier()

    def broadcast(self, obj: T, src: int = 0) -> T:
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def reduce(self, tensor: Tensor, group: Any | None = None, reduce_op: str | None = "mean") -> Tensor:
        if reduce_op != "sum":
            raise ValueError(f"TorchDistributedStrategy.reduce supports reduce_op='sum' only, got {reduce_op!r}")
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
        return tensor

    def all_gather(self, tensor: Tensor, group: Any | None = None, sync_grads: bool = False) -> Tensor:
        """(W, *tensor.shape): every rank's tensor, stacked in rank order."""
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        return torch.stack(parts)
