"""Score finished SIGN checkpoints as ``make demo`` scores its model (LeNet Fréchet distance at 1/2/4 NFE and
f(f(z)), optionally the teacher's DDIM), or teacher folders (their DDIM), into one JSON file keyed by path: the
final numbers of the long recipe runs (``results/two_stage/``) and of teachers trained with other seeds.

    python -m benchmarks.score_checkpoints runs/long_B1/checkpoints/last.ckpt --teacher-nfe 10 50 \\
        --output benchmarks/results/two_stage/final_scores.json
    python -m benchmarks.score_checkpoints runs/teacher_s1/teacher --teacher-nfe 10 --output teachers.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from signs_lightning.commands.demo import evaluate
from signs_lightning.commands.loading import load_generator
from signs_lightning.core.distributed import LocalStrategy
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.diffusion import load_teacher
from signs_lightning.evaluation import FIDEvaluator, MNISTClassifierFeatures
from signs_lightning.evaluation.scoring import ddim_sampler, score_sampler
from signs_lightning.modules import SIGNModule

# What the tables report: the distances (SIGN per NFE, f(f(z)), the teacher's DDIM); not coverage or diagnostics.
REPORTED = ("sign/fid", "sign_ffz/fid", "teacher/teacher_fid")


def score(checkpoint: str, num_samples: int, sign_nfe: list[int], teacher_nfe: list[int]) -> dict[str, float]:
    """The reported distances of one checkpoint and its generator-step count."""
    model = load_generator(checkpoint)
    if not isinstance(model, SIGNModule):
        raise SystemExit(f"{checkpoint}: a SIGN checkpoint is needed, got {type(model).__name__}")
    datamodule = EmbeddedMNISTDataModule(image_size=model.image_shape[-1], batch_size=500)
    datamodule.setup("validate")
    metrics = evaluate(model, datamodule, num_samples, sign_nfe, teacher_nfe)
    scores = {k: round(v, 2) for k, v in metrics.items() if k.startswith(REPORTED)}
    return {**scores, "generator_steps": model.generator_steps}


def score_teacher(folder: str, num_samples: int, teacher_nfe: list[int]) -> dict[str, float]:
    """A teacher folder's DDIM distances, with the same extractor, reference and noise as ``score``."""
    teacher = load_teacher(folder)
    strategy = LocalStrategy(torch.device("cpu"))
    evaluator = FIDEvaluator(
        MNISTClassifierFeatures(image_size=teacher.image_shape[-1]), num_samples=num_samples, nfe=teacher_nfe
    )
    evaluator.prepare(EmbeddedMNISTDataModule(image_size=teacher.image_shape[-1], batch_size=500), strategy)
    metrics = score_sampler(evaluator, ddim_sampler(teacher), teacher.image_shape, strategy, prefix="teacher")
    return {k.replace("teacher/", "teacher/teacher_"): round(v, 2) for k, v in metrics.items() if "/fid" in k}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="SIGN checkpoints (.ckpt) or teacher folders")
    parser.add_argument("--output", type=Path, required=True, help="JSON file; existing entries are kept")
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--sign-nfe", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--teacher-nfe", type=int, nargs="*", default=[], help="teacher DDIM NFE to score too")
    args = parser.parse_args(argv)
    results = json.loads(args.output.read_text()) if args.output.exists() else {}
    for checkpoint in args.checkpoints:
        if Path(checkpoint).is_dir():
            results[checkpoint] = score_teacher(checkpoint, args.num_samples, args.teacher_nfe)
        else:
            results[checkpoint] = score(checkpoint, args.num_samples, args.sign_nfe, args.teacher_nfe)
        print(checkpoint, json.dumps(results[checkpoint]), flush=True)
        # Written after each checkpoint, whole: an interrupted run keeps what it scored.
        tmp = args.output.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        tmp.replace(args.output)


if __name__ == "__main__":
    main()
