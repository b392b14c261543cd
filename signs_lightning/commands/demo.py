"""``signs demo``: the main job on the embedded MNIST, end to end, from the two YAML configs.

1. trains the MNIST DDPM teacher with ``configs/teacher_mnist.yaml`` (reused when a teacher trained with the
   same settings is already in the output folder),
2. distils a SIGN from it with ``configs/sign_mnist.yaml`` (regression onto the teacher's ODE samples),
3. with ``--dmd-config configs/sign_mnist_dmd.yaml``, continues from that SIGN's last checkpoint with
   distribution matching added (DMD2's second stage),
4. writes ``samples.png`` (teacher DDIM rows at several NFE, then SIGN at 1, 2 and 4 NFE and f(f(z)), the same noise
   in every row) and ``metrics.json`` (Fréchet distances in the features of an MNIST classifier, class coverage,
   idempotence and reconstruction errors, wall times).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torchvision

from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.evaluation.grid import nfe_rows, sampler_grid
from signs_lightning.evaluation.scoring import ddim_sampler, score_classifier_features
from signs_lightning.modules.sign import SIGNModule
from signs_lightning.run import runs
from signs_lightning.run.config_layers import config_files
from signs_lightning.run.runs import CONFIGS, TEACHER_CONFIG


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signs demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument(
        "--teacher-config",
        default=str(TEACHER_CONFIG),
        help="the teacher's experiment config (default: configs/teacher_mnist.yaml); the layers on its '# bases:' "
        "line are given before it",
    )
    parser.add_argument(
        "--sign-config",
        default=str(CONFIGS / "sign_mnist.yaml"),
        help="the first SIGN stage's experiment config (default: configs/sign_mnist.yaml); the layers on its "
        "'# bases:' line are given before it",
    )
    parser.add_argument(
        "--dmd-config",
        default="none",
        help="a second stage from the first's last checkpoint, e.g. configs/sign_mnist_dmd.yaml (≈ 10 more minutes "
        "on a 2-core CPU); its '# bases:' line names the first stage's config (default: none, one stage)",
    )
    parser.add_argument(
        "--teacher-steps",
        type=int,
        default=None,
        help="override the teacher config's trainer.max_steps (teacher_mnist.yaml: 2500)",
    )
    parser.add_argument(
        "--student-steps",
        type=int,
        default=None,
        help="override the first stage's model.init_args.max_generator_steps (sign_mnist.yaml: 2000)",
    )
    parser.add_argument(
        "--dmd-steps",
        type=int,
        default=None,
        help="override the second stage's model.init_args.max_generator_steps (sign_mnist_dmd.yaml: 1300)",
    )
    parser.add_argument(
        "--num-samples", type=int, default=2000, help="samples per Fréchet distance in metrics.json (default 2000)"
    )
    parser.add_argument(
        "--teacher-nfe",
        type=int,
        nargs="+",
        default=[1, 2, 4, 10],
        help="the teacher's DDIM step counts, scored and shown in samples.png (default 1 2 4 10)",
    )
    parser.add_argument(
        "--sign-nfe",
        type=int,
        nargs="+",
        default=[1, 2, 4],
        help="the SIGN's NFE settings, scored and shown in samples.png (default 1 2 4)",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for the teacher and every SIGN stage, e.g. data.init_args.image_size=8 (repeatable)",
    )
    parser.add_argument(
        "--teacher-override", action="append", default=[], metavar="KEY=VALUE", help="for the teacher (repeatable)"
    )
    parser.add_argument(
        "--sign-override", action="append", default=[], metavar="KEY=VALUE", help="for both SIGN stages (repeatable)"
    )
    parser.add_argument(
        "--dmd-override", action="append", default=[], metavar="KEY=VALUE", help="for the second stage (repeatable)"
    )
    return parser


def train_teacher(args: argparse.Namespace, out: Path) -> tuple[Path, float]:
    """The teacher pipeline folder, trained now or reused; and the seconds spent training it."""
    overrides = args.override + args.teacher_override
    if args.teacher_steps is not None:
        overrides += [f"trainer.max_steps={args.teacher_steps}"]
    return runs.train_teacher(config_files(args.teacher_config), out, overrides)


def distil(
    args: argparse.Namespace, out: Path, teacher_dir: Path, second_stage: bool = False
) -> tuple[SIGNModule, float]:
    """The first stage (``--sign-config``, logs in ``sign_logs``) or the second (``--dmd-config``, started from the
    first's ``last.ckpt``, logs in ``sign_dmd_logs``); the trained model and the seconds its fit took."""
    overrides = [f"model.init_args.teacher={teacher_dir}", *args.override, *args.sign_override]
    config, logs, steps = args.sign_config, out / "sign_logs", args.student_steps
    if second_stage:
        overrides += [f"model.init_args.init_from={logs / 'checkpoints' / 'last.ckpt'}", *args.dmd_override]
        config, logs, steps = args.dmd_config, out / "sign_dmd_logs", args.dmd_steps
    if steps is not None:
        overrides += [f"model.init_args.max_generator_steps={steps}"]
    runs.fresh_folder(logs)
    start = time.perf_counter()
    cli = runs.fit(config_files(config), overrides, logs)
    return cli.model, time.perf_counter() - start


def sample_grid(model: SIGNModule, path: Path, teacher_nfe: list[int], sign_nfe: list[int], count: int = 16) -> None:
    """``samples.png``: teacher DDIM rows, then SIGN rows (``GeneratorModule.sample_grid``'s, at ``sign_nfe``)."""
    rows = nfe_rows(ddim_sampler(model.teacher), teacher_nfe) + nfe_rows(model.sample, sign_nfe, seed=1)
    rows.append(model.sample_repeated)
    grid = sampler_grid(rows, model.image_shape, count, torch.Generator().manual_seed(1), model.device)
    torchvision.utils.save_image(
        torchvision.transforms.functional.resize(
            grid, [4 * s for s in grid.shape[-2:]], interpolation=torchvision.transforms.InterpolationMode.NEAREST
        ),
        path,
    )


def demo_main(argv: list[str]) -> Path:
    args = build_parser().parse_args(argv)
    out = Path(args.output).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    teacher_dir, teacher_seconds = train_teacher(args, out)
    model, sign_seconds = distil(args, out, teacher_dir)
    first_stage, dmd_seconds = None, 0.0
    if args.dmd_config != "none":
        first_stage = model
        model, dmd_seconds = distil(args, out, teacher_dir, second_stage=True)
    datamodule = EmbeddedMNISTDataModule(image_size=model.image_shape[-1], batch_size=500)
    datamodule.setup("validate")
    eval_start = time.perf_counter()
    metrics = score_classifier_features(model, datamodule, args.num_samples, args.sign_nfe, args.teacher_nfe)
    if first_stage is not None:
        metrics.update(
            score_classifier_features(first_stage, datamodule, args.num_samples, args.sign_nfe, [], "sign_stage1")
        )
        metrics.update(seconds_dmd_training=dmd_seconds, sign_stage1_generator_steps=first_stage.generator_steps)
    sample_grid(model, out / "samples.png", args.teacher_nfe, args.sign_nfe)
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
