"""``signs edit``: zero-shot editing of image files with a trained generator (``inference/editing.py``; docs/using.md).

    signs edit denoise  MODEL INPUT... --output DIR [--sigma 0.2 [--add-noise]]
    signs edit inpaint  MODEL INPUT... --output DIR (--mask FILE | --box X0,Y0,X1,Y1)
    signs edit colorize MODEL INPUT... --output DIR [--strength 0.5]
    signs edit project  MODEL INPUT... --output DIR [--strength 0.3]

MODEL is a checkpoint or an exported folder; INPUT image files or folders. ``denoise`` with ``--sigma`` is informed
(the noise's level is known: the refinement never re-noises above it); without, blind (f(y), then the model's own
re-noising levels). ``--nfe`` > 1 refines at the model's re-noising levels, always with fresh noise (an edit has no
starting noise z for the model's ``initial`` / ``path`` rule). Writes ``DIR/<name>.png`` per input and
``DIR/grid_000.png``, … (per 16 inputs: the input f was given on top, the result below). Image i's random draws come
from ``seeded_generator(seed, i)`` (its added noise, for ``denoise --add-noise``, from ``seeded_generator(seed, i,
1)``), so results do not depend on the batch size.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torchvision
from torch import Tensor

from signs_lightning.commands.devices import checked_device
from signs_lightning.commands.images import Geometry, box_mask, find_inputs, output_names, read_image, read_mask
from signs_lightning.commands.loading import load_generator
from signs_lightning.core.errors import SignsError
from signs_lightning.core.randomness import seeded_generator
from signs_lightning.evaluation.grid import sample_rows_grid
from signs_lightning.inference import editing, sampling
from signs_lightning.inference.prediction import refuse_earlier_outputs, to_uint8, write_png
from signs_lightning.modules.common import GeneratorModule

GRID_COLUMNS = 16


def parse_args(argv: list[str]) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("model", help="a checkpoint (.ckpt) written by `signs fit`, or a folder `signs export` wrote")
    common.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    common.add_argument("--output", "-o", required=True, help="folder for the results and grids")
    common.add_argument("--nfe", type=int, default=1, help="network evaluations: 1, or more to refine (default 1)")
    common.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    common.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    common.add_argument("--crop", action="store_true", help="centre-crop inputs whose aspect ratio is not the model's")
    common.add_argument("--teacher", help="the teacher folder, if a checkpoint's recorded one has moved")
    common.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu, cuda, cuda:1, ... (default: cuda when available, else cpu)",
    )
    parser = argparse.ArgumentParser(
        prog="signs edit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    denoise = tasks.add_parser(
        "denoise",
        parents=[common],
        help="remove Gaussian noise: informed with --sigma, blind without",
        description="Informed (--sigma S): the input is scaled to the noise level t of S, f applied, and the "
        "refinement re-noises to at most t. Blind (no --sigma, the level unknown): f(y), then the model's own "
        "re-noising levels (what `project --strength 0` does).",
    )
    denoise.add_argument(
        "--sigma",
        type=float,
        help="the noise's standard deviation, [-1, 1] scale (pixel std / 127.5), if known (informed); "
        "omit it when unknown (blind)",
    )
    denoise.add_argument(
        "--add-noise",
        action="store_true",
        help="add σ = --sigma noise first (to try it on clean images; needs --sigma)",
    )
    inpaint = tasks.add_parser("inpaint", parents=[common], help="fill a region; every other pixel is kept exactly")
    region = inpaint.add_mutually_exclusive_group(required=True)
    region.add_argument("--mask", help="mask image: white pixels are filled, black ones kept")
    region.add_argument("--box", help="X0,Y0,X1,Y1: the box to fill, in pixels of the model's size (X1, Y1 excluded)")
    colorize = tasks.add_parser("colorize", parents=[common], help="colour greyscale images (3-channel models)")
    colorize.add_argument("--strength", type=float, default=0.5, help="re-noising strength in [0, 1] (default 0.5)")
    project = tasks.add_parser("project", parents=[common], help="SDEdit: re-noise to a strength, then project with f")
    project.add_argument("--strength", type=float, default=0.3, help="in [0, 1]; 0 returns f(x) itself (default 0.3)")
    args = parser.parse_args(argv)
    if args.nfe < 1 or args.batch_size < 1:
        parser.error("--nfe and --batch-size must be >= 1")
    if args.task == "denoise" and args.add_noise and args.sigma is None:
        raise SignsError("denoise --add-noise needs --sigma: the standard deviation of the noise to add")
    args.device = checked_device("--device", args.device)  # before the model is loaded, to fail in one line
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    out = Path(args.output).expanduser()
    paths = find_inputs(args.inputs)
    names = output_names(paths)
    refuse_earlier_results(out, names)
    model = load_generator(args.model, args.teacher).to(args.device)
    channels, height, width = model.image_shape
    if height != width:
        raise SignsError(f"signs edit supports square models; this one makes {height}x{width} images")
    if args.task == "colorize" and channels != 3:
        raise SignsError(f"colorize needs a 3-channel model; this one makes {channels}-channel {height}x{width} images")
    geometry = Geometry(channels, height, args.crop)
    notices: list[str] = []
    images = torch.stack([read_image(path, geometry, notices, greyscale=args.task == "colorize") for path in paths])
    if args.task == "colorize":
        images = images.expand(-1, 3, -1, -1)
    fill = None
    if args.task == "inpaint":
        fill = read_mask(Path(args.mask), geometry, notices) if args.mask else box_mask(args.box, geometry)
    for notice in notices:
        print(f"signs edit: note: {notice}")

    before, after = [], []
    for start in range(0, len(paths), args.batch_size):
        indices = range(start, min(start + args.batch_size, len(paths)))
        given, result = edit_batch(model, args, images[indices.start : indices.stop], fill, indices)
        before.append(given)
        after.append(result)
    before, after = torch.cat(before), torch.cat(after)
    write_results(out, names, before, after)
    mode = ""
    if args.task == "denoise":
        mode = " (blind: level unknown)" if args.sigma is None else f" (informed: σ = {args.sigma:g})"
    print(
        f"signs edit: {args.task}{mode} of {len(paths)} image(s) at {args.nfe} NFE → {out} "
        f"({len(paths)} PNGs, {math.ceil(len(paths) / GRID_COLUMNS)} before/after grid(s))"
    )


@torch.no_grad()
def edit_batch(
    model: GeneratorModule, args: argparse.Namespace, images: Tensor, fill: Tensor | None, indices: range
) -> tuple[Tensor, Tensor]:
    """(what f was given, in image form; the result), both (B, C, H, W) in [-1, 1] on the CPU."""
    f, schedule = model.sampling_network, model.schedule
    y = images.to(model.device)
    generators = [seeded_generator(args.seed, i) for i in indices]
    levels = model.renoise_timesteps(args.nfe)
    if args.task == "denoise":
        if args.add_noise:
            y = y + args.sigma * sampling.randn_like(y, [seeded_generator(args.seed, i, 1) for i in indices])
        result = editing.denoise(f, y, schedule, args.sigma, levels, generators)
    elif args.task == "inpaint":
        fill = fill.to(y.device).expand_as(y)
        result = sampling.inpaint(f, y, fill, schedule, levels, generators)
        y = y * (1 - fill)  # the region to fill shown mid-grey
    elif args.task == "colorize":
        result = editing.colorize(f, y, schedule, args.strength, levels, generators)
    else:
        result = editing.project(f, y, schedule, args.strength, levels, generators)
    return y.cpu(), result.float().clamp(-1, 1).cpu()


def refuse_earlier_results(out: Path, names: list[str]) -> None:
    """As ``signs sample``: a folder holding an earlier edit's grids, or files this edit would overwrite, is refused
    (the earlier results and grids would stay beside the new ones, as if this run had made them)."""
    if not out.is_dir():
        return
    found = sorted(path.name for path in out.glob("grid_[0-9]*.png"))
    found += [f"{name}.png" for name in names if (out / f"{name}.png").exists()]
    refuse_earlier_outputs(out, found, "results", "--output folder")


def write_results(out: Path, names: list[str], before: Tensor, after: Tensor) -> None:
    """``out/<name>.png`` per result, and ``out/grid_<k>.png`` per ``GRID_COLUMNS`` inputs (before above after)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, to_uint8(after)):
        write_png(image, out / f"{name}.png")
    for k, start in enumerate(range(0, len(names), GRID_COLUMNS)):
        rows = [before[start : start + GRID_COLUMNS], after[start : start + GRID_COLUMNS]]
        torchvision.utils.save_image(sample_rows_grid(rows, per_row=GRID_COLUMNS), out / f"grid_{k:03d}.png")
