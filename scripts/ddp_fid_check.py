"""Runs ``FIDEvaluator`` on fixed samples in W gloo CPU processes and prints the metrics as one JSON line.

    python scripts/ddp_fid_check.py --world-size 2 --cache-dir /tmp/fid-check

Prints ``{"world_size": W, "metrics": {...}, "identical_across_ranks": true}``. With ``--world-size 1`` it runs in
this process without ``torch.distributed``. ``tests/test_evaluation.py`` compares W = 2 with the one-process result:
the union of the ranks' samples is the same set, so the FIDs must agree up to float64 summation order. Uses the cheap
``RandomConvFeatures`` extractor, so it takes seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from signs_lightning.core.distributed import DistributedStrategy, LocalStrategy, TorchDistributedStrategy
from signs_lightning.evaluation import FIDEvaluator, RandomConvFeatures
from signs_lightning.inference.sampling import randn_like

IMAGE_SHAPE = (1, 8, 8)


class FixedReference:
    """A datamodule stand-in: 400 fixed random images (1, 8, 8) as the reference set."""

    def reference_key(self) -> str:
        return "ddp-check-1x8"

    def reference_dataloader(self) -> DataLoader:
        images = torch.tanh(torch.randn((400, *IMAGE_SHAPE), generator=torch.Generator().manual_seed(123)))
        return DataLoader(TensorDataset(images, torch.zeros(400, dtype=torch.long)), batch_size=100)


def student(noise: Tensor, nfe: int, generator: torch.Generator) -> Tensor:
    """A stand-in generator: images (B, 1, 8, 8) in [-1, 1] from noise (B, 1, 8, 8); above one NFE it draws fresh
    noise from ``generator``, as the multi-step sampler's re-noising does."""
    images = torch.tanh(0.8 * noise) * (1 - 0.1 * nfe)
    for _ in range(nfe - 1):
        images = torch.tanh(images + 0.3 * randn_like(images, generator))
    return images


def teacher(noise: Tensor, nfe: int) -> Tensor:
    return torch.tanh(noise + 0.05 * nfe)


def run(strategy: DistributedStrategy, cache_dir: str, num_samples: int, batch_size: int) -> dict[str, float]:
    """Student and teacher metrics of the fixed generators (every rank calls it)."""
    evaluator = FIDEvaluator(
        RandomConvFeatures(in_channels=1, num_features=16),
        num_samples=num_samples,
        nfe=[1, 2],
        teacher_nfe=[1],
        batch_size=batch_size,
        cache_dir=cache_dir,
    )
    evaluator.prepare(FixedReference(), strategy)
    metrics = evaluator.evaluate(student, IMAGE_SHAPE, strategy)
    metrics.update(evaluator.evaluate_teacher(teacher, IMAGE_SHAPE, strategy, teacher_key="ddp-check-teacher"))
    return metrics


def _worker(rank: int, world_size: int, port: int, cache_dir: str, num_samples: int, batch_size: int) -> None:
    torch.set_num_threads(1)  # W processes share the cores
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        metrics = run(TorchDistributedStrategy(), cache_dir, num_samples, batch_size)
        every_rank: list[dict[str, float] | None] = [None] * world_size
        dist.all_gather_object(every_rank, metrics)
        if rank == 0:
            identical = all(other == metrics for other in every_rank)
            print(json.dumps({"world_size": world_size, "metrics": metrics, "identical_across_ranks": identical}))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--num-samples", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.world_size == 1:
        metrics = run(LocalStrategy(), args.cache_dir, args.num_samples, args.batch_size)
        print(json.dumps({"world_size": 1, "metrics": metrics, "identical_across_ranks": True}))
        return
    mp.spawn(
        _worker,
        args=(args.world_size, _free_port(), args.cache_dir, args.num_samples, args.batch_size),
        nprocs=args.world_size,
    )


if __name__ == "__main__":
    main()
