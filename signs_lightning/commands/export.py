"""``signs export``: a checkpoint's EMA generator as a self-contained diffusers folder, with a model card.

    signs export CHECKPOINT --output DIR [--fid NFE=VALUE ...] [--fid-setting TEXT] [--seed 0]
                 [--teacher FOLDER] [--push-to-hub REPO_ID [--private]]

DIR holds ``model_index.json`` (``SIGNPipeline`` with f's conditioning timestep, output head and re-noising levels),
``unet/`` (the EMA weights), ``scheduler/`` (the teacher's schedule, which re-noises), ``pipeline.py`` (the
pipeline's code, so that plain diffusers loads the folder), ``samples.png`` and ``README.md`` (the model card).
The card's FIDs are those typed with ``--fid``, else the checkpoint's last validation; its configuration is the run's
config.yaml, else the checkpoint's hyperparameters; it names no local path (``inference/model_card.py``).
Before writing the card, the folder is loaded back and must reproduce the checkpoint's own samples at 1, 2 and 3
NFE.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torchvision
import yaml
from diffusers import DDPMScheduler

from signs_lightning.commands.loading import load_generator
from signs_lightning.core.checkpoint_io import read_checkpoint
from signs_lightning.core.errors import SignsError
from signs_lightning.core.randomness import seeded_generator
from signs_lightning.inference import pipeline as pipeline_module
from signs_lightning.inference.model_card import CardFacts, fid_rows, model_card, public_config, public_teacher
from signs_lightning.inference.pipeline import SIGNPipeline
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.networks.generator import IdempotentGenerator
from signs_lightning.run.checkpoint_args import CLASS_KEY

GRID_SAMPLES = 16
# The checkpoint entry the card reads the last validation from: {"generator_step": N, "metrics": {name: value}}
# (written by the module's on_save_checkpoint; checkpoints without it fall back on the run's CURVE_FILE).
VALIDATION_KEY = "signs_validation"
CURVE_FILE = "curve.jsonl"  # TrainingCurve's default file, in the run folder
CONFIG_SECTIONS = ("seed_everything", "model", "data", "optimizer", "lr_scheduler")
TRAINER_KEYS = (
    "accelerator",
    "strategy",
    "devices",
    "num_nodes",
    "precision",
    "accumulate_grad_batches",
    "gradient_clip_val",
    "max_steps",
    "max_epochs",
    "max_time",
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="signs export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="a SIGN (or IGN, network teacher_unet) checkpoint written by `signs fit`")
    parser.add_argument("--output", "-o", required=True, help="a new or empty folder")
    parser.add_argument(
        "--fid",
        action="append",
        default=[],
        metavar="NFE=VALUE",
        help="an FID for the card (repeat); replaces the checkpoint's validation FID at that NFE",
    )
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
        "checkpoint's samples at 1, 2 and 3 NFE"
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
    """What the card states, from the loaded model, the checkpoint file and the run folder it sits in. Nothing local
    reaches it: the teacher by folder name (or hub id) and fingerprint, the config with its paths cut."""
    network, teacher = model.sampling_network, model.teacher
    channels, height, width = model.image_shape
    path = Path(args.checkpoint).expanduser()
    checkpoint = read_checkpoint(path, weights_only=True, mmap=True)
    teacher_name, teacher_kind = public_teacher(teacher.source)
    config, config_source = training_config(checkpoint, path)
    validated, validated_where = last_validation(checkpoint, path)
    rows = ", ".join(str(k) for k in model.sample_nfe)
    return CardFacts(
        teacher=teacher_name,
        teacher_kind=teacher_kind,
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
        config=public_config(with_teacher(config, teacher_name)),
        config_source=config_source,
        fid=fid_rows(args.fid, args.fid_setting, validated, validated_where),
        grid="samples.png",
        grid_caption=f"Rows: f(z) at {rows} NFE, then f(f(z)); the same {GRID_SAMPLES} noises z in every row "
        f"(seed {args.seed}).",
        location=args.push_to_hub or card_location(folder),
        base_model=None if teacher_kind == "a local folder" else teacher_name,
    )


def card_location(folder: Path) -> str:
    """The folder as the card's usage names it: as typed when relative (``runs/export/sign-mnist``), else by its
    name alone (an absolute path is this machine's, and the card may be published)."""
    return folder.name if folder.is_absolute() else folder.as_posix()


# -- the training configuration: the run's config.yaml, else the checkpoint's hyperparameters -----------------------
def training_config(checkpoint: dict[str, Any], path: Path) -> tuple[dict[str, Any], str]:
    """(config, where it came from). The module's hyperparameters leave out its optimizer and evaluator (not
    picklable), and the checkpoint holds neither the trainer's settings nor, usually, the data's: LightningCLI's
    config.yaml of the run holds them all."""
    hparams = checkpoint.get("hyper_parameters") or {}
    saved = run_config(path, hparams.get(CLASS_KEY))
    if saved is not None:
        return config_sections(saved), "the run's config.yaml (saved by LightningCLI beside the checkpoint)"
    model = {"init_args": {k: v for k, v in hparams.items() if not k.startswith("_")}}
    if CLASS_KEY in hparams:
        model = {"class_path": hparams[CLASS_KEY], **model}
    config: dict[str, Any] = {"model": model}
    if checkpoint.get("datamodule_hyper_parameters"):
        config["data"] = {"init_args": dict(checkpoint["datamodule_hyper_parameters"])}
    return config, (
        "the checkpoint's hyperparameters (no config.yaml of the run beside the checkpoint: the optimizer, "
        "evaluator, trainer and data settings are not recorded)"
    )


def run_config(checkpoint: Path, class_path: str | None) -> dict[str, Any] | None:
    """The newest config.yaml LightningCLI saved for the run of ``checkpoint`` (one of ``class_path``'s): in the run
    folder (``<root>/checkpoints/x.ckpt`` beside ``<root>/config.yaml`` without a logger) or in a logger's version
    folders (``<root>/lightning_logs/version_<n>/config.yaml``); None when there is none."""
    roots = dict.fromkeys([checkpoint.parent, checkpoint.parent.parent])
    candidates = [file for root in roots for file in (root / "config.yaml", *root.glob("*/version_*/config.yaml"))]
    # Newest first: a resumed run saves its (possibly changed) config again, into a new version folder.
    for file in sorted((f for f in candidates if f.is_file()), key=lambda f: f.stat().st_mtime, reverse=True):
        try:
            config = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError):
            continue
        model = config.get("model") if isinstance(config, dict) else None
        if isinstance(model, dict) and (class_path is None or model.get("class_path") == class_path):
            return config
    return None


def config_sections(saved: dict[str, Any]) -> dict[str, Any]:
    """What of a saved config trained the model: model (with its optimizer and evaluator), data, optimizer and
    seed, and the trainer settings that change the result (not its logging or progress bars)."""
    sections = {key: saved[key] for key in CONFIG_SECTIONS if saved.get(key) is not None}
    trainer = saved.get("trainer") or {}
    sections["trainer"] = {key: trainer[key] for key in TRAINER_KEYS if trainer.get(key) is not None}
    return sections


def with_teacher(config: dict[str, Any], teacher: str) -> dict[str, Any]:
    """``config`` naming the teacher as the card does: the recorded one is a local path (or relative to where the
    fit ran)."""
    init_args = (config.get("model") or {}).get("init_args")
    if isinstance(init_args, dict) and "teacher" in init_args:
        config = {**config, "model": {**config["model"], "init_args": {**init_args, "teacher": teacher}}}
    return config


# -- the validation FIDs: recorded in the checkpoint, else the run's training curve --------------------------------
def last_validation(checkpoint: dict[str, Any], path: Path) -> tuple[dict[str, float], str]:
    """(metric name -> value, where they came from) of the last validation before ``checkpoint`` was saved: its
    ``VALIDATION_KEY`` entry, else the run's ``curve.jsonl`` (``TrainingCurve``) up to the checkpoint's generator
    step; ({}, "") when neither records one."""
    recorded = checkpoint.get(VALIDATION_KEY)
    if isinstance(recorded, dict) and recorded.get("metrics"):
        step = recorded.get("generator_step")
        where = "the checkpoint's last validation" + (f" (generator step {step})" if step is not None else "")
        return {k: float(v) for k, v in recorded["metrics"].items()}, where
    steps = (checkpoint.get("signs_counters") or {}).get("generator_steps")
    row = curve_row(path, steps)
    if row is None:
        return {}, ""
    metrics = {k: float(v) for k, v in row.items() if k.startswith("val/")}
    return metrics, f"the run's validation at generator step {row['generator_step']} (curve.jsonl)"


def curve_row(checkpoint: Path, steps: int | None) -> dict[str, Any] | None:
    """The last row of the run's ``curve.jsonl`` at or before generator step ``steps``: a later row belongs to
    training the checkpoint had not done yet."""
    for file in (checkpoint.parent.parent / CURVE_FILE, checkpoint.parent / CURVE_FILE):
        if steps is None or not file.is_file():
            continue
        rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        rows = [row for row in rows if isinstance(row.get("generator_step"), int) and row["generator_step"] <= steps]
        if rows:
            return rows[-1]
    return None


def push(folder: Path, repo_id: str, private: bool) -> None:
    """Upload the whole folder (weights, pipeline.py, card, grid) to the Hugging Face hub."""
    from huggingface_hub import create_repo, upload_folder

    repo = create_repo(repo_id, exist_ok=True, private=private).repo_id
    upload_folder(repo_id=repo, folder_path=str(folder), commit_message="signs export")
    print(f"signs export: uploaded to https://huggingface.co/{repo}")
