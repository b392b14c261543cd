"""What the framework costs: a SIGN training step through Lightning vs a bare PyTorch loop, and ``model.sample``
vs a bare forward pass of the UNet."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.measure import median_seconds, synchronize, training_autocast
from benchmarks.provenance import write_results
from benchmarks.training import extra_overrides, variant_config, variant_overrides
from benchmarks.variants import HEADLINE, Variant, by_name
from signs_lightning.modules.common import GeneratorModule, bare_step_tools
from signs_lightning.networks.generator import IdempotentGenerator
from signs_lightning.run import runs
from signs_lightning.run.cli import cli_main
from signs_lightning.run.config_layers import config_files


class StepClock(L.Callback):
    """Time stamps at the start of every training batch: consecutive differences are whole steps, data included."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stamps: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        # Callback hooks run before the module's, so the call that ends training (budget reached) stamps the end of
        # the last step.
        synchronize(self.device)
        self.stamps.append(time.perf_counter())


def step_times(stamps: list[float]) -> list[float]:
    """Per-step durations from start stamps."""
    return [b - a for a, b in zip(stamps, stamps[1:])]


def fixed_batch_loader(x: Tensor, steps: int) -> DataLoader:
    """The same real batch ``steps`` times, so both loops see identical data already in memory."""
    batch_size = x.shape[0]
    images = x.repeat(steps, 1, 1, 1)
    return DataLoader(TensorDataset(images, torch.zeros(len(images), dtype=torch.long)), batch_size=batch_size)


def real_batch(cli: Any) -> Tensor:
    """The first training batch of the config's datamodule."""
    cli.datamodule.setup("fit")
    return next(iter(cli.datamodule.train_dataloader()))[0]


@dataclass
class TimedLoops:
    """What ``timed_loops`` measured: each loop's per-batch durations, one list per round with the warm-up batches
    included (allocator, lazy initialisation, compilation); the config's ``gen_every``; and the model the last bare
    loop trained (its networks as they ran)."""

    seconds: dict[str, list[list[float]]]
    gen_every: int
    bare_model: GeneratorModule


def timed_loops(
    configs: Sequence[Path],
    overrides: Sequence[str],
    log_dir: Path,
    generator_steps: int,
    rounds: int,
    device: torch.device,
    batch: Callable[[Any], Tensor] = real_batch,
    first: str = "bare",
) -> TimedLoops:
    """``generator_steps`` generator steps of the config's training through ``Trainer.fit`` and through a plain
    loop over the same step function, ``rounds`` times, on one fixed batch (``batch(cli)``).

    Each round builds both from the config (``signs fit``'s parser, same seed, so the same initial weights,
    optimizers and trainer settings) and runs them one after the other, ``first`` first in the first round; rounds
    alternate the order so that slow drifts of a shared machine hit both alike.
    """
    seconds: dict[str, list[list[float]]] = {name: [] for name in LOOPS}
    for round_index in range(rounds):
        for name in sorted(LOOPS, reverse=(round_index % 2 == 1) != (first == "lightning")):
            # A folder per fit: each is a new run, and a fit refuses a folder holding an earlier run's checkpoints.
            limit = [*overrides, f"model.init_args.max_generator_steps={generator_steps}"]
            cli = cli_main(runs.cli_args(configs, limit, log_dir / f"{name}{round_index}"), run=False)
            # One batch more than the step limit needs: the limit, not the end of the epoch, stops both loops.
            loader = fixed_batch_loader(batch(cli), generator_steps * cli.model.gen_every + 1)
            seconds[name].append(step_times(LOOPS[name](cli, loader, device)))
            if name == "bare":
                bare_model = cli.model
    return TimedLoops(seconds, cli.model.gen_every, bare_model)


def lightning_vs_bare(
    variant: Variant,
    teacher_dir: Path,
    log_dir: Path,
    extra_overrides: list[str],
    steps: int,
    warmup: int,
    rounds: int,
    device: torch.device,
) -> dict[str, Any]:
    """Median step time of ``variant``'s SIGN training through ``Trainer.fit`` and through a plain loop over the
    same step function (``timed_loops`` on the datamodule's first batch), without each loop's first ``warmup``
    batches."""
    overrides = variant_overrides(variant, teacher_dir, extra_overrides)
    timed = timed_loops(config_files(variant["config"]), overrides, log_dir, warmup + steps, rounds, device)
    times = {name: [t for run in runs for t in run[warmup:]] for name, runs in timed.seconds.items()}
    lightning_step, bare_step_seconds = statistics.median(times["lightning"]), statistics.median(times["bare"])
    return {
        "variant": variant["name"],
        "steps_timed": len(times["lightning"]),
        "lightning_step_seconds": lightning_step,
        "bare_step_seconds": bare_step_seconds,
        # Throughput ratio: 1.0 means no overhead; the target is >= 0.9.
        "lightning_throughput_ratio": bare_step_seconds / lightning_step,
    }


def run_lightning(cli: Any, loader: DataLoader, device: torch.device) -> list[float]:
    """Batch start stamps of ``Trainer.fit`` on ``loader`` (the trainer and model the config built)."""
    clock = StepClock(device)
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, train_dataloaders=loader)
    return clock.stamps


def bare_training(model: GeneratorModule, device: torch.device) -> dict[str, Any]:
    """``model`` on ``device``, prepared as a fit prepares it (without a strategy), with plain PyTorch backward and
    clipping (``bare_step_tools``) injected in place of Lightning's; returns its optimizers by name."""
    model.to(device).train()
    model.prepare_training(None)
    configs = model.configure_optimizers()
    model.step_tools = bare_step_tools(model)
    return {name: config["optimizer"] for name, config in zip(model.optimizer_names, configs)}


def run_bare(cli: Any, loader: DataLoader, device: torch.device) -> list[float]:
    """Batch start stamps of the module's own ``seeded_train_batch`` in a plain loop over ``loader``, with the
    config's model and optimizers (``bare_training``), under the autocast of the config's precision."""
    model: GeneratorModule = cli.model
    optimizers = bare_training(model, device)
    stamps = []
    with training_autocast(str(cli.trainer.precision), device):
        for x, _ in loader:
            synchronize(device)
            stamps.append(time.perf_counter())
            # The module's own stopping rule (``on_train_batch_start``), so both loops stamp the same batches.
            if model.generator_steps >= model.max_generator_steps:
                break
            model.seeded_train_batch(x.to(device), optimizers)
    return stamps


LOOPS: dict[str, Callable[[Any, DataLoader, torch.device], list[float]]] = {
    "lightning": run_lightning,
    "bare": run_bare,
}


@torch.no_grad()
def sample_vs_forward(
    model: GeneratorModule, shape: tuple[int, ...], batch: int, repeats: int, device: torch.device
) -> dict[str, float] | None:
    """``model.sample(z, 1)`` against the bare ``unet(z, t).sample`` it wraps (same weights, same batch); None when
    the generator is not a UNet (IGN's DCGAN)."""
    network = model.sampling_network
    if not isinstance(network, IdempotentGenerator):
        return None
    z = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(0)).to(device)
    t = torch.full((batch,), network.conditioning_timestep, device=device, dtype=torch.long)
    sample_seconds = median_seconds(lambda: model.sample(z, 1), repeats, device)
    forward_seconds = median_seconds(lambda: network.unet(z, t).sample, repeats, device)
    return {
        "sample_seconds": sample_seconds,
        "forward_seconds": forward_seconds,
        # > 1: model.sample costs more than the forward pass it wraps.
        "sampling_overhead_ratio": sample_seconds / forward_seconds,
    }


def main(argv: list[str] | None = None) -> None:
    """The Lightning-vs-bare measurement alone (``make bench`` runs it after its variants)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=main.__doc__)
    parser.add_argument("--teacher", required=True, help="diffusers teacher folder")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per loop and round (default: 40)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps of each loop (default: 5)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both loops (default: 2)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/overhead"))
    parser.add_argument("--output", type=Path, required=True, help="JSON file for the result")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    headline = by_name(HEADLINE)
    overrides = extra_overrides(headline, False)
    result = lightning_vs_bare(
        headline, Path(args.teacher), args.workdir, overrides, args.steps, args.warmup, args.rounds, device
    )
    config = variant_config(headline, Path(args.teacher), overrides)
    print(json.dumps(write_results(args.output, result, config), indent=1))


if __name__ == "__main__":
    main()
