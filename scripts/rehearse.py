"""Rehearse a shipped GPU config end to end on small stand-ins: the config file itself, after the layers its
``# bases:`` line names (as a user runs it), with overrides only for the hardware (accelerator, devices,
precision), a tiny teacher of the same image shape in the diffusers layout, a synthetic dataset tree in the real
on-disk format, and tiny step and sample counts.

Run as a script (Lightning's DDP launcher re-executes ``sys.argv`` for the other ranks); the working directory is
where the config's relative ``runs/...`` folders go. Rank 0 ends with one line ``REHEARSAL {json}``.

    python scripts/rehearse.py CONFIG --teacher DIR --data-root DIR [--devices 2] [--accelerator cpu]
        [--precision 32-true] [--steps 2] [--resume] [-- extra LightningCLI overrides]

CIFAR-10's md5 tables are replaced by the tree's own (torchvision refuses files whose md5s differ from the
official archive's); everything else runs as a user's job would.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml
from torchvision.datasets import CIFAR10

from signs_lightning.data import CIFAR10DataModule
from signs_lightning.data.synthetic import described_cifar10
from signs_lightning.run.cli import cli_main
from signs_lightning.run.config_layers import config_files
from signs_lightning.run.process_group import close_process_group


def describe_cifar_tree(root: Path) -> None:
    """Point ``CIFAR10DataModule`` at md5 tables that describe the tree under ``root``."""
    if (root / CIFAR10.base_folder).is_dir():
        CIFAR10DataModule.dataset_class = described_cifar10(root)


def config_gen_every(config: str) -> int:
    """The composed config's ``model.init_args.gen_every`` (the module's default 1 where no file sets it)."""
    value = 1
    for path in config_files(config):
        model = (yaml.safe_load(path.read_text()) or {}).get("model") or {}
        value = (model.get("init_args") or {}).get("gen_every", value)
    return value


def overrides(args: argparse.Namespace, kind: str) -> list[str]:
    """Hardware, stand-ins and tiny counts: the only differences from the shipped config."""
    common = [
        "--trainer.accelerator",
        args.accelerator,
        "--trainer.devices",
        str(args.devices),
        "--trainer.precision",
        args.precision,
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.log_every_n_steps",
        "1",
        "--data.init_args.root",
        args.data_root,
        "--data.init_args.download",
        "false",
        "--data.init_args.batch_size",
        "4",
        "--data.init_args.val_size",
        "4",
        "--data.init_args.num_workers",
        "0",
        "--data.init_args.persistent_workers",
        "false",
        "--data.init_args.pin_memory",
        "false",
        "--model.init_args.evaluator.init_args.num_samples",
        str(args.fid_samples),
        "--model.init_args.evaluator.init_args.batch_size",
        str(args.fid_batch),
    ]
    if kind == "teacher":
        return common + [
            "--trainer.max_steps",
            str(args.steps),
            "--trainer.val_check_interval",
            str(args.steps),
            "--model.init_args.block_out_channels",
            "[16, 16]",
            "--model.init_args.layers_per_block",
            "1",
            "--model.init_args.output_dir",
            "teacher_out",
        ]
    return common + [
        "--model.init_args.teacher",
        args.teacher,
        "--model.init_args.max_generator_steps",
        str(args.steps),
        "--model.init_args.reg.init_args.pairs",
        "16",
        # Validate right after the last generator step (one every gen_every batches, the first at batch 0).
        "--trainer.val_check_interval",
        str((args.steps - 1) * args.gen_every + 1),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="an experiment in configs/ (its layers are given before it)")
    parser.add_argument("--teacher", default="")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--steps", type=int, default=2, help="generator steps (teacher: optimizer steps)")
    parser.add_argument(
        "--gen-every", type=int, default=None, help="gen_every, to place validation (default: the config's)"
    )
    parser.add_argument("--fid-samples", type=int, default=16)
    parser.add_argument("--fid-batch", type=int, default=8)
    parser.add_argument("--resume", action="store_true", help="--ckpt_path last")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.gen_every is None:
        args.gen_every = config_gen_every(args.config)
    torch.set_num_threads(1)
    describe_cifar_tree(Path(args.data_root))
    kind = "teacher" if "teacher_" in Path(args.config).name else "sign"
    layers = [item for path in config_files(args.config) for item in ("--config", str(path))]
    command = ["fit", *layers, *overrides(args, kind), *extra]
    if args.resume:
        command += ["--ckpt_path", "last"]
    start = time.perf_counter()
    cli = cli_main(command)
    seconds = time.perf_counter() - start
    if cli.trainer.is_global_zero:
        model = cli.model
        metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
        report = {
            "config": args.config,
            "world_size": cli.trainer.world_size,
            "seconds": round(seconds, 1),
            "generator_steps": getattr(model, "generator_steps", None),
            "global_step": cli.trainer.global_step,
            "metrics": metrics,
            "last_checkpoint": cli.trainer.checkpoint_callback.last_model_path,
            "device": str(cli.trainer.strategy.root_device),
        }
        sys.stdout.write("REHEARSAL " + json.dumps(report) + "\n")
        sys.stdout.flush()
    close_process_group()


if __name__ == "__main__":
    main()
