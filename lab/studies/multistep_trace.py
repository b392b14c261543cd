"""What f does to re-noised samples of itself: why multi-step sampling does not improve (issue 18 item 1).

    python -m lab.studies.multistep_trace CKPT [CKPT ...] [--levels 5 10 20 50 100 200 300] [--teacher-steps 4]
        [--num-samples 2000] [--output lab/results/multistep/trace.json]

For each checkpoint, on the same noise z (the benchmark's LeNet Fréchet distance, ``benchmarks.measure.Scorer``):

- ``f``: one step, x = f(z); ``ffz``: f(x);
- ``f@t``: one re-noise-and-project step at level t, f(q(x, t, ε)), what the 2-NFE sampler does at t;
- ``f@t/z``: the same with the starting noise as ε, f(q(x, t, z)) (a deterministic rule: no fresh noise);
- ``teacher@t``: the teacher's own DDIM from the same q(x, t, ε) down to 0 in ``--teacher-steps`` steps: the
  teacher's refinement of f's sample, i.e. what a perfect projector of the teacher's ODE would return from there.

And, on ``--diagnostic-samples`` of the same samples: the mean squared distance each moves x (``moved``), the
idempotence error mean (f(x) − x)², and, for comparison, f's error on re-noised real held-out digits,
mean (f(q(x_real, t)) − x_real)² (``real_error``): how well f projects re-noised data vs re-noised samples of itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor

from benchmarks.editing import ddim_levels, ddim_path
from benchmarks.measure import Scorer
from benchmarks.provenance import source_config, write_results
from signs_lightning.commands.loading import load_generator
from signs_lightning.core.randomness import seeded_generator
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.evaluation.scoring import Sampler
from signs_lightning.inference import sampling
from signs_lightning.modules.common import GeneratorModule


def renoise_project(model: GeneratorModule, t: int) -> Sampler:
    """z → f(q(f(z), t, ε)): the 2-NFE sampler with its one level at t."""
    f = model.sampling_network
    return lambda z, g: f(sampling.renoise(f(z), model.schedule, t, g))


def renoise_project_with_z(model: GeneratorModule, t: int) -> Sampler:
    """z → f(q(f(z), t, z)): re-noised with the noise it started from."""
    f = model.sampling_network
    level = torch.tensor([t])
    return lambda z, g: f(model.schedule.q_sample(f(z), level.to(z.device).expand(z.shape[0]), z))


def teacher_refine(model: GeneratorModule, t: int, steps: int) -> Sampler:
    """z → the teacher's DDIM from q(f(z), t, ε) to 0 in ``steps`` steps."""
    f = model.sampling_network
    return lambda z, g: ddim_path(model.teacher, sampling.renoise(f(z), model.schedule, t, g), ddim_levels(t, steps))


def samplers(model: GeneratorModule, levels: list[int], teacher_steps: int) -> dict[str, Sampler]:
    f = model.sampling_network
    named: dict[str, Sampler] = {"f": lambda z, g: f(z), "ffz": lambda z, g: f(f(z))}
    for t in levels:
        named[f"f@{t}"] = renoise_project(model, t)
        named[f"f@{t}/z"] = renoise_project_with_z(model, t)
        if model.teacher is not None:
            named[f"teacher@{t}"] = teacher_refine(model, t, min(teacher_steps, t))
    return named


@torch.no_grad()
def diagnostics(model: GeneratorModule, levels: list[int], count: int, real: Tensor) -> dict[str, dict[str, float]]:
    """Per level: mean squared distance moved by f and by the teacher from q(x, t), and f's error on re-noised
    real digits; plus the idempotence error at level 0."""
    f, schedule = model.sampling_network, model.schedule
    z = torch.randn(count, *model.image_shape, generator=seeded_generator(0, 1)).to(model.device)
    noise = seeded_generator(0, 2)
    x = f(z)
    rows = {"0": {"idempotence_error": float((f(x) - x).pow(2).mean())}}
    for t in levels:
        x_t = sampling.renoise(x, schedule, t, noise)
        real_t = sampling.renoise(real, schedule, t, noise)
        row = {"moved": float((f(x_t) - x).pow(2).mean()), "real_error": float((f(real_t) - real).pow(2).mean())}
        if model.teacher is not None:
            refined = ddim_path(model.teacher, x_t, ddim_levels(t, min(4, t)))
            row["teacher_moved"] = float((refined - x).pow(2).mean())
            row["f_to_teacher"] = float((f(x_t) - refined).pow(2).mean())
        rows[str(t)] = row
    return rows


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(
        prog="python -m lab.studies.multistep_trace",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--levels", nargs="+", type=int, default=[5, 10, 20, 50, 100, 200, 300])
    parser.add_argument("--teacher-steps", type=int, default=4, help="DDIM steps of the teacher's refinement")
    parser.add_argument("--num-samples", type=int, default=2000, help="samples per Fréchet distance (default: 2000)")
    parser.add_argument("--diagnostic-samples", type=int, default=500)
    parser.add_argument("--output", type=Path, help="also write the numbers here (JSON)")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results: dict[str, dict] = {}
    scorer = None
    for path in args.checkpoints:
        model = load_generator(str(path)).to(device)
        if scorer is None:
            scorer = Scorer(model.image_shape[-1], args.num_samples, 0, 0, 500, 1, device)
            data = EmbeddedMNISTDataModule(image_size=model.image_shape[-1])
            data.setup("validate")
            real = torch.cat([batch[0] for batch in data.val_dataloader()])[: args.diagnostic_samples].to(device)
        rows = scorer.score(samplers(model, args.levels, args.teacher_steps), model.image_shape)
        results[str(path)] = {
            "fd": {name: row["fid_lenet"] for name, row in rows.items()},
            "diagnostics": diagnostics(model, args.levels, args.diagnostic_samples, real),
        }
        fd = results[str(path)]["fd"]
        print(f"{path}: f {fd['f']:.2f}, f(f(z)) {fd['ffz']:.2f}")
        for t in args.levels:
            teacher = fd.get(f"teacher@{t}")
            diag = results[str(path)]["diagnostics"][str(t)]
            print(
                f"  t={t:4d}: FD f@t {fd[f'f@{t}']:.2f}, f@t/z {fd[f'f@{t}/z']:.2f}"
                + (f", teacher@t {teacher:.2f}" if teacher is not None else "")
                + f"; moved {diag['moved']:.4f}, real error {diag['real_error']:.4f}"
            )
    if args.output is not None:
        command = sys.argv[1:] if argv is None else argv
        config = "".join([*(source_config(path) for path in args.checkpoints), *command])
        write_results(args.output, {"argv": command, "results": results}, config)
    return results


if __name__ == "__main__":
    main()
