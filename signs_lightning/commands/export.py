"""``signs export``: a checkpoint's EMA generator as a self-contained diffusers folder, with a model card.

    signs export CHECKPOINT --output DIR [--fid NFE=VALUE ...] [--fid-setting TEXT] [--seed 0]
                 [--teacher FOLDER] [--push-to-hub REPO_ID [--private]]

DIR holds ``model_index.json`` (``SIGNPipeline`` with f's conditioning timestep, output head and re-noising levels),
``unet/`` (the EMA weights), ``scheduler/`` (the teacher's schedule, which re-noises), ``pipeline.py`` (the
pipeline's code, so that plain diffusers loads the folder), ``samples.png`` and ``README.md`` (the model card).
Before writing the card, the folder is loaded back and must reproduce the checkpoint's own samples at 1 and 2 NFE.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
from pathlib import Path

import torch
import torchvision
from diffusers import DDPMScheduler

from signs_lightning.commands.loading import load_generator
from signs_lightning.core.errors import SignsError
from signs_lightning.core.randomness import seeded_generator
from signs_lightning.inference import pipeline as pipeline_module
from signs_lightning.inference.model_card import CardFacts, model_card
from signs_lightning.inference.pipeline import SIGNPipeline
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.networks.generator import IdempotentGenerator

GRID_SAMPLES = 16


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="signs export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="a SIGN (or IGN, network teacher_unet) checkpoint written by `signs fit`")
    parser.add_argument("--output", "-o", required=True, help="a new or empty folder")
    parser.add_argument("--fid", action="append", default=[], metavar="NFE=VALUE", help="an FID for the card (repeat)")
    parser.add_argument("--fid-setting", default="", help="how the FIDs were measured (samples, features, reference)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the card's sample grid (default 0)")
    parser.add_argument("--teacher", help="the teacher folder, if the checkpoint's recorded one has moved")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="then upload the folder to this Hugging Face repo")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    args = parser.parse_args(argv)
    try:
        args.fid = {int(nfe): float(value) for nfe, _, value in (item.partition("=") for item in args.fid)}
    except ValueError:
        parser.error(f"--fid takes NFE=VALUE, e.g. --fid 1=40.2; got {args.fid}")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    out = Path(args.output).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SignsError(f"{out} exists and is not an empty folder: export into a new or empty folder")
    if Path(args.checkpoint).expanduser().is_dir():
        raise SignsError(f"{args.checkpoint} is a folder: signs export takes a checkpoint (.ckpt) from `signs fit`")
    model = load_generator(args.checkpoint, args.teacher)
    # Written beside the destination and renamed once complete: a failed export leaves no half-written folder.
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    staging.mkdir(parents=True)
    try:
        write_folder(model, args, staging, out)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(
        f"signs export: {out} (diffusers folder with pipeline.py, samples.png, README.md); it reproduces the "
        "checkpoint's samples at 1 and 2 NFE"
    )
    if args.push_to_hub:
        push(out, args.push_to_hub, args.private)


def write_folder(model: GeneratorModule, args: argparse.Namespace, folder: Path, destination: Path) -> None:
    """The pipeline folder, checked, with its sample grid and model card (which names ``destination``)."""
    to_pipeline(model).save_pretrained(folder)
    shutil.copyfile(pipeline_module.__file__, folder / "pipeline.py")
    check_reproduces(model, folder)
    torchvision.utils.save_image(model.sample_grid(GRID_SAMPLES, args.seed), folder / "samples.png")
    model_card(card_facts(model, args, destination)).save(folder / "README.md")


def to_pipeline(model: GeneratorModule) -> SIGNPipeline:
    """A ``SIGNPipeline`` of a copy of ``model``'s sampling network and its teacher's scheduler."""
    network = model.sampling_network
    if not isinstance(network, IdempotentGenerator) or model.teacher is None:
        raise SignsError(
            f"only UNet generators export to diffusers; this {type(model).__name__} samples with "
            f"{type(network).__name__} (IGN with network=dcgan): use its checkpoint with signs sample / signs edit"
        )
    config = DDPMScheduler.load_config(model.teacher.source, subfolder="scheduler")
    scheduler = DDPMScheduler.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    if not torch.equal(scheduler.alphas_cumprod.double(), model.schedule.alphas_cumprod.cpu()):
        raise SignsError(f"the scheduler of {model.teacher.source} differs from the schedule the model re-noises with")
    return SIGNPipeline(
        unet=copy.deepcopy(network.unet).eval(),
        scheduler=scheduler,
        conditioning_timestep=network.conditioning_timestep,
        output_head=network.output_head,
        renoise_max_level=model.renoise_max_level,
        renoise_noise=model.renoise_noise,
        renoise_eta=model.renoise_eta,
        renoise_spacing=model.renoise_spacing,
    )


@torch.no_grad()
def check_reproduces(model: GeneratorModule, folder: Path) -> None:
    """Raise unless ``SIGNPipeline.from_pretrained(folder)`` gives ``model.sample``'s images for the same noise."""
    loaded = SIGNPipeline.from_pretrained(str(folder))
    loaded.set_progress_bar_config(disable=True)
    # 3 NFE too: its second level is where the spacings differ and where the path rule uses its implied noise.
    for nfe in (1, 2, 3):
        z = torch.randn((2, *model.image_shape), generator=seeded_generator(0, nfe))
        expected = (model.sample(z, nfe, seeded_generator(0, nfe, 1)) / 2 + 0.5).clamp(0, 1)
        images = loaded(
            latents=z, num_inference_steps=nfe, generator=seeded_generator(0, nfe, 1), output_type="pt"
        ).images
        error = float((images - expected).abs().max())
        # Not bitwise: another device or BLAS kernel may differ in the last bits, far below one uint8 level.
        if not error <= 1e-5:
            raise SignsError(
                f"the exported folder {folder} does not reproduce the checkpoint's {nfe}-NFE samples (max "
                f"difference {error:.2g} on the [0, 1] scale)"
            )


def card_facts(model: GeneratorModule, args: argparse.Namespace, folder: Path) -> CardFacts:
    network, teacher = model.sampling_network, model.teacher
    channels, height, width = model.image_shape
    is_local = Path(teacher.source).exists()
    rows = ", ".join(str(k) for k in model.sample_nfe)
    return CardFacts(
        teacher=teacher.source,
        fingerprint=teacher.fingerprint(),
        module=type(model).__name__,
        shape=f"{channels}x{height}x{width}",
        conditioning_timestep=network.conditioning_timestep,
        output_head=network.output_head,
        renoise_max_level=model.renoise_max_level,
        renoise_noise=model.renoise_noise,
        renoise_eta=model.renoise_eta,
        renoise_spacing=model.renoise_spacing,
        generator_steps=model.generator_steps,
        config=dict(model.hparams),
        fid=args.fid,
        fid_setting=args.fid_setting,
        grid="samples.png",
        grid_caption=f"Rows: f(z) at {rows} NFE, then f(f(z)); the same {GRID_SAMPLES} noises z in every row "
        f"(seed {args.seed}).",
        location=args.push_to_hub or str(folder.resolve()),
        base_model=None if is_local else teacher.source,
    )


def push(folder: Path, repo_id: str, private: bool) -> None:
    """Upload the whole folder (weights, pipeline.py, card, grid) to the Hugging Face hub."""
    from huggingface_hub import create_repo, upload_folder

    repo = create_repo(repo_id, exist_ok=True, private=private).repo_id
    upload_folder(repo_id=repo, folder_path=str(folder), commit_message="signs export")
    print(f"signs export: uploaded to https://huggingface.co/{repo}")
