"""Train one variant through the real CLI path (``signs fit``) for a fixed wall-clock budget."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Timer

from benchmarks.measure import peak_memory_mb, reset_peak_memory
from benchmarks.provenance import composed_config
from benchmarks.variants import SMOKE_KIND_OVERRIDES, SMOKE_OVERRIDES, Variant
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.run import runs
from signs_lightning.run.config_layers import config_files


def max_time(seconds: float) -> str:
    """``trainer.max_time`` in its "DD:HH:MM:SS" form, rounded up to whole seconds.

    >>> max_time(3725)
    '00:01:02:05'
    """
    rest = max(1, math.ceil(seconds))
    days, rest = divmod(rest, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"


# Every model is scored after training, the same way: an in-loop evaluator would only spend the training budget.
# Twelve fits' progress bars would bury the log.
BENCH_OVERRIDES = ["model.init_args.evaluator=null", "trainer.enable_progress_bar=false"]


def extra_overrides(variant: Variant, smoke: bool) -> list[str]:
    """What the benchmark adds to a variant's own overrides (``make bench`` and ``benchmarks.overhead`` alike)."""
    return BENCH_OVERRIDES + (SMOKE_OVERRIDES + SMOKE_KIND_OVERRIDES[variant["kind"]] if smoke else [])


def variant_overrides(variant: Variant, teacher_dir: Path, extra_overrides: list[str]) -> list[str]:
    """What a variant's fit sets beyond its config (the budget aside): its teacher and its overrides."""
    return [f"model.init_args.teacher={teacher_dir}", *variant["overrides"], *extra_overrides]


def variant_config(variant: Variant, teacher_dir: Path, extra_overrides: list[str]) -> str:
    """The composed config text of a variant's fit (its layers, then its overrides): what its results' provenance
    digests."""
    return composed_config(config_files(variant["config"]), variant_overrides(variant, teacher_dir, extra_overrides))


def train_variant(
    variant: Variant,
    teacher_dir: Path,
    budget_seconds: float,
    log_dir: Path,
    extra_overrides: list[str],
    device: torch.device,
) -> tuple[GeneratorModule, dict[str, Any]]:
    """Fit ``variant`` until ``budget_seconds`` of training have passed; the model and its training numbers.

    The budget is Lightning's ``max_time`` (the step limit is lifted), so it counts training batches and the
    periodic validation, not the set-up before the first batch (loading the teacher, making L_reg's cached pairs).
    """
    budget = ["model.init_args.max_generator_steps=null", f"trainer.max_time={max_time(budget_seconds)}"]
    reset_peak_memory(device)
    start = time.perf_counter()
    # The budget goes last so that no variant override can lift it.
    cli = runs.fit(
        config_files(variant["config"]), [*variant_overrides(variant, teacher_dir, extra_overrides), *budget], log_dir
    )
    fit_seconds = time.perf_counter() - start
    model: GeneratorModule = cli.model
    # The model as scored, under one name for every variant (lab.studies.renoise_levels reads it back).
    cli.trainer.save_checkpoint(log_dir / "final.ckpt")
    timer = next(callback for callback in cli.trainer.callbacks if isinstance(callback, Timer))
    train_seconds = timer.time_elapsed("train")
    batch_size = int(cli.datamodule.batch_size)
    return model, {
        "budget_seconds": float(budget_seconds),
        "train_seconds": train_seconds,
        "fit_seconds": fit_seconds,
        "generator_steps": model.generator_steps,
        "batches": model.global_batches,
        "batch_size": batch_size,
        "train_images_per_second": model.generator_steps * batch_size / train_seconds,
        "peak_memory_mb": peak_memory_mb(device),
    }
