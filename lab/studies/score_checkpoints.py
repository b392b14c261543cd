"""Score finished SIGN checkpoints as ``make demo`` scores its model (LeNet Fréchet distance at 1/2/4 NFE and
f(f(z)), optionally the teacher's DDIM), or teacher folders (their DDIM), into one JSON file keyed by path: the
final numbers of the long recipe runs (``results/two_stage/``) and of teachers trained with other seeds.

    python -m lab.studies.score_checkpoints runs/long_B1/checkpoints/last.ckpt --teacher-nfe 10 50 \\
        --output lab/results/two_stage/final_scores.json
    python -m lab.studies.score_checkpoints runs/teacher_s1/teacher --teacher-nfe 10 --output teachers.json

Each entry carries its ``provenance`` (the code's commit and the digest of what its checkpoint or folder records).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks.provenance import source_config, stamp
from signs_lightning.commands.loading import load_generator
from signs_lightning.core.distributed import LocalStrategy
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.diffusion import load_teacher
from signs_lightning.evaluation.keys import is_fid_name, parse_key
from signs_lightning.evaluation.scoring import classifier_evaluator, score_classifier_features, score_model
from signs_lightning.modules import SIGNModule


def distances(metrics: dict[str, float]) -> dict[str, float]:
    """What the tables report: the Fréchet distances (SIGN's samplers, the teacher's DDIM), not coverage or
    diagnostics, to two decimals."""
    return {key: round(value, 2) for key, value in metrics.items() if is_fid_name(parse_key(key).name)}


def mnist_digits(image_size: int) -> EmbeddedMNISTDataModule:
    datamodule = EmbeddedMNISTDataModule(image_size=image_size, batch_size=500)
    datamodule.setup("validate")
    return datamodule


def score(checkpoint: str, num_samples: int, sign_nfe: list[int], teacher_nfe: list[int]) -> dict[str, float]:
    """The reported distances of one checkpoint (as ``signs demo`` scores: ``score_classifier_features``) and its
    generator-step count."""
    model = load_generator(checkpoint)
    if not isinstance(model, SIGNModule):
        raise SystemExit(f"{checkpoint}: a SIGN checkpoint is needed, got {type(model).__name__}")
    metrics = score_classifier_features(model, mnist_digits(model.image_shape[-1]), num_samples, sign_nfe, teacher_nfe)
    return {**distances(metrics), "generator_steps": model.generator_steps}


def score_teacher(folder: str, num_samples: int, teacher_nfe: list[int]) -> dict[str, float]:
    """A teacher folder's DDIM distances, with the same extractor, reference, noise and keys as ``score``'s teacher
    row."""
    teacher = load_teacher(folder)
    strategy = LocalStrategy(torch.device("cpu"))
    datamodule = mnist_digits(teacher.image_shape[-1])
    evaluator = classifier_evaluator(datamodule, strategy, num_samples, teacher_nfe=teacher_nfe)
    shape = teacher.image_shape
    return distances(score_model(evaluator, {}, shape, strategy, teacher=teacher, teacher_prefix="teacher"))


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
        results[checkpoint] = stamp(results[checkpoint], source_config(checkpoint))
        # Written after each checkpoint, whole: an interrupted run keeps what it scored.
        tmp = args.output.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        tmp.replace(args.output)


if __name__ == "__main__":
    main()
