"""L_reg's pair targets, measured: how good and how costly each ODE solver's targets are for one teacher.

    python -m lab.studies.pair_targets TEACHER_DIR [--rows ddim:10 dpmsolver++:10 unipc:10 ...] [--pairs 2000]
        [--reference dpmsolver++:100] [--seed 0] [--batch-size 500] [--device cuda|cpu]
        [--output lab/results/pair_targets] [--smoke]

TEACHER_DIR is a diffusers pipeline folder of an MNIST teacher (``signs demo`` writes one to
``<output>/teacher``, by default ``runs/demo/teacher``). For each ``SOLVER:STEPS`` row it makes ``--pairs`` (noise,
sample) pairs exactly as ``Regression`` does (``diffusion/teacher_pairs.py: generate_pairs``, pair i's noise from
(seed, i)), times it (pairs per second, after an untimed warm-up) and scores the targets themselves:

- ``fd_lenet``: their Fréchet distance in the demo's LeNet features (``FIDEvaluator.score_images``)
  against the training digits, with ``class_coverage``. A student trained by regression alone can at best reach its
  targets, so this is L_reg's ceiling. With 2,000 pairs it is on the scale of the demo's numbers (teacher DDIM-10
  13.3, DDIM-50 4.9 on 2,000 samples of other noise).
- ``rms_to_reference``: the root-mean-square pixel distance (images in [-1, 1]) of the targets to the same pairs
  solved by ``--reference`` (default DPM-Solver++ at 100 steps, close to the exact ODE solution): how far each
  solver is from the ODE it approximates. The reference is a row of its own (its FD is what better solvers tend to).

Writes ``pair_targets.json`` (settings and one entry per row) and ``pair_targets.md`` (the table) under ``--output``.
``--smoke`` shrinks everything (16 pairs, 2-step rows) to check the pipeline; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmarks.measure import device_name, synchronize
from benchmarks.provenance import source_config, write_results
from signs_lightning.core.distributed import LocalStrategy
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.diffusion import SOLVERS, ScoreModel, load_teacher
from signs_lightning.diffusion.teacher_pairs import generate_pairs
from signs_lightning.evaluation.keys import CLASS_COVERAGE
from signs_lightning.evaluation.scoring import classifier_evaluator

DEFAULT_ROWS = [
    "ddim:10",
    "ddim:20",
    "ddim:50",
    "dpmsolver++:5",
    "dpmsolver++:10",
    "dpmsolver++:20",
    "unipc:5",
    "unipc:10",
    "unipc:20",
]
SMOKE_ROWS = ["ddim:2", "dpmsolver++:2", "unipc:3"]


def parse_row(text: str) -> tuple[str, int]:
    """``"SOLVER:STEPS"`` → (solver, steps); a one-line error naming the accepted solvers otherwise."""
    solver, _, steps = text.rpartition(":")
    if solver not in SOLVERS or not steps.isdigit() or int(steps) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not SOLVER:STEPS with SOLVER one of {', '.join(SOLVERS)} and STEPS >= 1, e.g. unipc:10"
        )
    return solver, int(steps)


def make_pairs(
    teacher: ScoreModel, solver: str, steps: int, count: int, seed: int, batch_size: int
) -> tuple[Tensor, float]:
    """The targets y (count, C, H, W) of ``count`` pairs and the seconds it took (after an untimed warm-up)."""
    device = next(teacher.parameters()).device
    generate_pairs(teacher, min(count, 8), steps, seed, batch_size=batch_size, solver=solver)  # kernels, allocator
    synchronize(device)
    start = time.perf_counter()
    pairs = generate_pairs(teacher, count, steps, seed, batch_size=batch_size, solver=solver)
    synchronize(device)
    return pairs.y, time.perf_counter() - start


class TargetScorer:
    """The demo's LeNet Fréchet distance and class coverage, applied to a fixed set of images (the pair targets)."""

    def __init__(self, image_shape: tuple[int, int, int], count: int, device: torch.device, batch_size: int) -> None:
        channels, height, width = image_shape
        if channels != 1 or height != width:
            raise SystemExit(f"pair_targets scores with the MNIST LeNet: it needs 1xSxS images, the teacher makes "
                             f"{channels}x{height}x{width}")  # fmt: skip
        self.count, self.batch_size = count, batch_size
        self.strategy = LocalStrategy(device)
        datamodule = EmbeddedMNISTDataModule(image_size=width, batch_size=500)
        datamodule.setup("validate")
        self.evaluator = classifier_evaluator(datamodule, self.strategy, count, batch_size=batch_size)

    def __call__(self, images: Tensor) -> dict[str, float]:
        """{"fd_lenet", "class_coverage"} of ``images`` (count, C, H, W), in [-1, 1] (clamped by the scorer)."""
        if images.shape[0] != self.count:
            raise ValueError(f"expected {self.count} images, got {images.shape[0]}")
        scores = self.evaluator.score_images(images.split(self.batch_size), self.strategy)
        return {"fd_lenet": scores["fid"], "class_coverage": scores[CLASS_COVERAGE]}


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# Pair targets of `{summary['teacher']}`",
        "",
        f"`{summary['command']}`",
        "",
        f"{summary['pairs']} pairs per row (seed {summary['seed']}), {summary['device']}; reference "
        f"{summary['reference']}. FD: LeNet Fréchet distance of the targets against the training digits "
        "(L_reg's ceiling); RMS: root-mean-square pixel distance to the reference's targets of the same noise.",
        "",
        "| solver | NFE | pairs/s | seconds | FD (LeNet) | class coverage | RMS to reference |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary["rows"]:
        name = row["solver"] + (" (reference)" if row["reference"] else "")
        lines.append(
            f"| {name} | {row['steps']} | {row['pairs_per_second']:.1f} | {row['seconds']:.1f} | "
            f"{row['fd_lenet']:.2f} | {row['class_coverage']:.2f} | {row['rms_to_reference']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lab.studies.pair_targets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("teacher", type=Path, help="the teacher's diffusers pipeline folder (e.g. runs/demo/teacher)")
    parser.add_argument(
        "--rows", nargs="+", type=parse_row, help=f"SOLVER:STEPS ... (default: {' '.join(DEFAULT_ROWS)})"
    )
    parser.add_argument("--pairs", type=int, help="pairs per row (default: 2000, with --smoke 16)")
    parser.add_argument("--reference", type=parse_row, help="SOLVER:STEPS (default: dpmsolver++:100, smoke: :4)")
    parser.add_argument("--seed", type=int, default=0, help="the pairs' noise seed, as Regression's seed")
    parser.add_argument("--batch-size", type=int, default=500, help="pairs per teacher batch (default: 500)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=Path, default=Path("lab/results/pair_targets"))
    parser.add_argument("--smoke", action="store_true", help="16 pairs, 2-step rows: checks the pipeline only")
    args = parser.parse_args(argv)
    args.rows = args.rows or [parse_row(row) for row in (SMOKE_ROWS if args.smoke else DEFAULT_ROWS)]
    args.pairs = args.pairs or (16 if args.smoke else 2000)
    args.reference = args.reference or (("dpmsolver++", 4) if args.smoke else ("dpmsolver++", 100))
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    command = "python -m lab.studies.pair_targets " + " ".join(sys.argv[1:] if argv is None else argv)
    device = torch.device(args.device)
    teacher = load_teacher(args.teacher).to(device)
    scorer = TargetScorer(teacher.image_shape, args.pairs, device, args.batch_size)
    reference, reference_seconds = make_pairs(teacher, *args.reference, args.pairs, args.seed, args.batch_size)
    rows = []
    for (solver, steps), is_reference in [*[(row, False) for row in args.rows], (args.reference, True)]:
        if is_reference:
            targets, seconds = reference, reference_seconds
        else:
            targets, seconds = make_pairs(teacher, solver, steps, args.pairs, args.seed, args.batch_size)
        row = {"solver": solver, "steps": steps, "nfe": steps, "reference": is_reference, "seconds": seconds,
               "pairs_per_second": args.pairs / seconds,
               "rms_to_reference": (targets - reference).pow(2).mean().sqrt().item(), **scorer(targets)}  # fmt: skip
        rows.append(row)
        print(f"[pair_targets] {solver}-{steps}: {row['pairs_per_second']:.1f} pairs/s, FD {row['fd_lenet']:.2f}, "
              f"RMS to reference {row['rms_to_reference']:.4f}", flush=True)  # fmt: skip
    summary = {
        "command": command,
        "teacher": str(args.teacher),
        "teacher_fingerprint": teacher.fingerprint(),
        "device": device_name(device),
        "pairs": args.pairs,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "reference": f"{args.reference[0]}:{args.reference[1]}",
        "classifier_heldout_accuracy": scorer.evaluator.extractor.accuracy,
        "rows": rows,
    }
    summary = write_results(args.output / "pair_targets.json", summary, source_config(args.teacher) + command)
    (args.output / "pair_targets.md").write_text(markdown(summary))
    print(markdown(summary))
    print(f"[pair_targets] wrote {args.output / 'pair_targets.json'} and {args.output / 'pair_targets.md'}")
    return args.output


if __name__ == "__main__":
    main()
