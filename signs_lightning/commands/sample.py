"""``signs sample``: N images from a checkpoint or an exported folder, through Lightning's prediction loop.

    signs sample MODEL --output DIR [--num-samples 64] [--nfe 1] [--repeat] [--seed 0] [--batch-size 64]
                 [--bf16] [--accelerator auto] [--devices 1 | --device DEVICE] [--teacher FOLDER]

Sample i starts from noise drawn from ``seeded_generator(seed, i)`` and re-noises with draws from
``seeded_generator(seed, i, 1)`` (``GeneratorModule.predict_step``), so the same seed gives the same images for any
batch size and any number of devices. ``SampleWriter`` writes ``DIR/000000.png``, …, ``DIR/samples.npz`` (``arr_0``:
(N, H, W, C) uint8, what EDM's and guided-diffusion's FID scripts read) and ``DIR/grid.png``. With ``--devices`` > 1,
Lightning starts one process per device (DDP) and each samples its share of the indices.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from signs_lightning.commands.devices import CUDA_ACCELERATORS, checked_device, require_cuda
from signs_lightning.commands.loading import load_generator
from signs_lightning.inference.prediction import SampleWriter, refuse_earlier_samples
from signs_lightning.modules.common import GeneratorModule


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="signs sample", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a checkpoint (.ckpt) written by `signs fit`, or a folder `signs export` wrote")
    parser.add_argument("--output", "-o", required=True, help="folder for the PNGs, samples.npz and grid.png")
    parser.add_argument("--num-samples", "-n", type=int, default=64, help="how many images (default 64)")
    parser.add_argument(
        "--nfe",
        type=int,
        default=1,
        help="network evaluations per image: 1 = f(z), K > 1 = f(z) re-noised and projected K-1 times (default 1)",
    )
    parser.add_argument("--repeat", action="store_true", help="f^NFE(z) instead: f applied NFE times, no re-noising")
    parser.add_argument("--seed", type=int, default=0, help="image i depends on (seed, i) only (default 0)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass and device (default 64)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (Lightning precision bf16-mixed)")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu, ... (default auto)")
    parser.add_argument("--devices", type=int, default=1, help="> 1: one DDP process per device (default 1)")
    parser.add_argument(
        "--device", help="one device, as `signs edit` takes it (cpu, cuda, cuda:1): instead of --accelerator/--devices"
    )
    parser.add_argument("--teacher", help="the teacher folder, if a checkpoint's recorded one has moved")
    args = parser.parse_args(argv)
    if min(args.num_samples, args.nfe, args.batch_size, args.devices) < 1:
        parser.error("--num-samples, --nfe, --batch-size and --devices must be >= 1")
    if args.device is not None and (args.accelerator != "auto" or args.devices != 1):
        parser.error("--device names one device: give it instead of --accelerator and --devices, not with them")
    # Checked before the model is loaded: Lightning would refuse a missing GPU only after, and at length.
    if args.device is not None:
        device = checked_device("--device", args.device)
        args.accelerator, args.devices = device.type, 1 if device.index is None else [device.index]
    elif args.accelerator in CUDA_ACCELERATORS:
        require_cuda("--accelerator", args.accelerator)
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    out = Path(args.output).expanduser()
    # Only the first process checks: the others start once it is sampling, into the folder it checked.
    if rank_zero_only.rank == 0:
        refuse_earlier_samples(out)
    model = load_generator(args.model, args.teacher)
    configure(model, args.num_samples, args.nfe, args.seed, args.batch_size, args.repeat)
    if rank_zero_only.rank == 0:
        sampler = describe(model, args.nfe, args.repeat)
        print(f"signs sample: {args.num_samples} images, {sampler}, seed {args.seed} → {out}")
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=args.devices,
        strategy="ddp" if processes(args.devices) > 1 else "auto",
        precision="bf16-mixed" if args.bf16 else "32-true",
        callbacks=[SampleWriter(str(out))],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(out),
    )
    trainer.predict(model, return_predictions=False)


def processes(devices: int | list[int]) -> int:
    """How many devices (one process each) Lightning's ``devices`` means: a count, or a list of device indices."""
    return devices if isinstance(devices, int) else len(devices)


def configure(model: GeneratorModule, count: int, nfe: int, seed: int, batch_size: int, repeat: bool) -> None:
    """What ``predict_step`` / ``predict_dataloader`` generate."""
    model.predict_samples, model.predict_nfe, model.seed = count, nfe, seed
    model.predict_batch_size, model.predict_repeat = batch_size, repeat


def describe(model: GeneratorModule, nfe: int, repeat: bool) -> str:
    """The sampler in words, e.g. ``2 NFE (re-noised at t = 50)``, or ``3 NFE (re-noised at t = 300, 300 with the
    path noise, eta 0.4)`` for a model that does not re-noise with fresh noise."""
    if repeat:
        return f"f^{nfe}(z) (no re-noising)"
    if nfe == 1:
        return "1 NFE, f(z)"
    rule = "" if model.renoise_noise == "fresh" else f" with the {model.renoise_noise} noise"
    if model.renoise_eta > 0:
        rule += f", eta {model.renoise_eta:g}"
    return f"{nfe} NFE (re-noised at t = {', '.join(map(str, model.renoise_timesteps(nfe)))}{rule})"
