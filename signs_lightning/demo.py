"""``signs demo``: the main job on the embedded MNIST, end to end, from the two YAML configs.

1. trains the MNIST DDPM teacher with ``configs/teacher_mnist.yaml`` (reused when a teacher trained with the
   same settings is already in the output folder),
2. distils a SIGN from it with ``configs/sign_mnist.yaml``,
3. writes ``samples.png`` (teacher DDIM rows at several NFE, then SIGN at 1, 2 and 4 NFE and f(f(z)), the same noise
   in every row) and ``metrics.json`` (Fréchet distances in the features of an MNIST classifier, class coverage,
   idempotence and reconstruction errors, wall times).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
import torchvision

from signs_lightning import sampling
from signs_lightning.cli import cli_main
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.evaluation import FIDEvaluator, LocalStrategy, MNISTClassifierFeatures
from signs_lightning.evaluation.grid import sample_rows_grid
from signs_lightning.modules.sign import SIGNModule
from signs_lightning.randomness import seeded_generator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STAMP = "signs_demo_teacher.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="signs demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--teacher-config", default=str(CONFIGS / "teacher_mnist.yaml"))
    parser.add_argument("--sign-config", default=str(CONFIGS / "sign_mnist.yaml"))
    parser.add_argument("--teacher-steps", type=int, default=None, help="override the teacher config's max_steps")
    parser.add_argument("--student-steps", type=int, default=None, help="override max_generator_steps")
    parser.add_argument("--num-samples", type=int, default=2000, help="samples per Fréchet distance")
    parser.add_argument("--teacher-nfe", type=int, nargs="+", default=[1, 2, 4, 10])
    parser.add_argument("--sign-nfe", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra override for both configs' shared keys, e.g. data.init_args.image_size=8 (repeatable)",
    )
    parser.add_argument("--teacher-override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--sign-override", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def as_cli_args(overrides: list[str]) -> list[str]:
    args: list[str] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"signs demo: override {item!r} is not KEY=VALUE")
        args += [f"--{key}", value]
    return args


def fresh_folder(path: Path) -> None:
    """Empties the demo's own log folder: every demo run is a new fit, and a fit refuses a folder holding an
    earlier run's checkpoints."""
    if path.exists():
        print(f"[signs demo] replacing the earlier run in {path}")
        shutil.rmtree(path)


def train_teacher(args: argparse.Namespace, out: Path) -> tuple[Path, float]:
    """The teacher pipeline folder, trained now or reused; and the seconds spent training it."""
    teacher_dir = out / "teacher"
    cli_args = [
        "--config",
        args.teacher_config,
        "--trainer.default_root_dir",
        str(out / "teacher_logs"),
        "--model.init_args.output_dir",
        str(teacher_dir),
    ]
    cli_args += as_cli_args(args.override + args.teacher_override)
    if args.teacher_steps is not None:
        cli_args += ["--trainer.max_steps", str(args.teacher_steps)]
    settings = {"args": cli_args, "config": Path(args.teacher_config).read_text()}
    stamp = teacher_dir / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == settings:
        print(f"[signs demo] reusing the teacher in {teacher_dir} (same config and overrides)")
        return teacher_dir, 0.0
    fresh_folder(out / "teacher_logs")
    start = time.perf_counter()
    cli_main(["fit", *cli_args])
    stamp.write_text(json.dumps(settings))
    return teacher_dir, time.perf_counter() - start


def distil(args: argparse.Namespace, out: Path, teacher_dir: Path) -> tuple[SIGNModule, float]:
    cli_args = [
        "--config",
        args.sign_config,
        "--trainer.default_root_dir",
        str(out / "sign_logs"),
        "--model.init_args.teacher",
        str(teacher_dir),
    ]
    cli_args += as_cli_args(args.override + args.sign_override)
    if args.student_steps is not None:
        cli_args += ["--model.init_args.max_generator_steps", str(args.student_steps)]
    fresh_folder(out / "sign_logs")
    start = time.perf_counter()
    cli = cli_main(["fit", *cli_args])
    return cli.model, time.perf_counter() - start


@torch.no_grad()
def evaluate(model: SIGNModule, datamodule: EmbeddedMNISTDataModule, args: argparse.Namespace) -> dict[str, float]:
    """Fréchet distances (classifier features) of teacher DDIM, SIGN at each NFE and f(f(z)); error diagnostics."""
    model.eval()
    strategy = LocalStrategy(model.device)
    shape = model.image_shape
    extractor = MNISTClassifierFeatures(image_size=shape[-1])
    sign_eval = FIDEvaluator(extractor, num_samples=args.num_samples, nfe=args.sign_nfe, teacher_nfe=args.teacher_nfe)
    sign_eval.prepare(datamodule, strategy)
    metrics = sign_eval.evaluate(model.sample, shape, strategy, prefix="sign")
    metrics.update(
        sign_eval.evaluate_teacher(
            model.teacher.ddim_sample, shape, strategy, prefix="teacher", teacher_key=model.teacher.fingerprint()
        )
    )
    ffz_eval = FIDEvaluator(extractor, num_samples=args.num_samples, nfe=[2])
    ffz_eval.prepare(datamodule, strategy)
    ffz = ffz_eval.evaluate(
        lambda z, k, _: sampling.repeated_projection(model.sampling_network, z, k), shape, strategy, prefix="sign_ffz"
    )
    metrics.update(ffz)
    val_images = torch.cat([batch[0] for batch in datamodule.val_dataloader()]).to(model.device)
    torch.manual_seed(0)
    diagnostics = model.diagnostics(val_images)
    metrics.update({key.replace("diag/", "sign/"): float(value) for key, value in diagnostics.items()})
    metrics["classifier_heldout_accuracy"] = float(extractor.accuracy)
    return metrics


@torch.no_grad()
def sample_grid(model: SIGNModule, args: argparse.Namespace, path: Path, count: int = 16) -> None:
    z = torch.randn((count, *model.image_shape), generator=torch.Generator().manual_seed(1)).to(model.device)
    rows = [model.teacher.ddim_sample(z, k) for k in args.teacher_nfe]
    rows += [model.sample(z, k, seeded_generator(1, k)) for k in args.sign_nfe]
    rows.append(sampling.repeated_projection(model.sampling_network, z, 2))
    grid = sample_rows_grid(rows, per_row=count)
    torchvision.utils.save_image(
        torchvision.transforms.functional.resize(
            grid, [4 * s for s in grid.shape[-2:]], interpolation=torchvision.transforms.InterpolationMode.NEAREST
        ),
        path,
    )


def demo_main(argv: list[str]) -> Path:
    args = parse_args(argv)
    out = Path(args.output).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    teacher_dir, teacher_seconds = train_teacher(args, out)
    model, sign_seconds = distil(args, out, teacher_dir)
    datamodule = EmbeddedMNISTDataModule(image_size=model.image_shape[-1], batch_size=500)
    datamodule.setup("validate")
    eval_start = time.perf_counter()
    metrics = evaluate(model, datamodule, args)
    sample_grid(model, args, out / "samples.png")
    rows = (
        ", ".join(f"teacher DDIM-{k}" for k in args.teacher_nfe)
        + ", "
        + ", ".join(f"SIGN {k} NFE" for k in args.sign_nfe)
        + ", SIGN f(f(z))"
    )
    metrics.update(
        {
            "seconds_teacher_training": teacher_seconds,
            "seconds_sign_training": sign_seconds,
            "seconds_evaluation": time.perf_counter() - eval_start,
            "seconds_total": time.perf_counter() - start,
            "sign_generator_steps": model.generator_steps,
            "samples_png_rows": rows,
        }
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    print(json.dumps(metrics, indent=2, sort_keys=True))
    print(f"[signs demo] wrote {out / 'samples.png'} (rows: {rows}) and {out / 'metrics.json'}")
    print(f"[signs demo] output folder: {out}")
    return out
