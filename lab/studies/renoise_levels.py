"""Score trained generators' multi-step sampler at several re-noising schedules (``renoise_max_level``).

    python -m lab.studies.renoise_levels CKPT [CKPT ...] [--max-levels 0.05 0.1 0.2 0.5] [--nfe 2 4]
        [--noise fresh|initial|path] [--eta 0 0.3] [--constant] [--output lab/results/recipes_420s/renoise_levels.json]

Each checkpoint (a ``SIGNModule`` or ``IGNModule`` written by ``signs fit``) is loaded with its teacher, and its
sampler is scored with the benchmark's LeNet Fréchet distance at 1 NFE and at every (NFE, max level) pair, with the
same noise for all (each schedule a named sampler: ``1``, ``<nfe>@<max level>``). Prints a markdown table;
``--output`` also writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from benchmarks.measure import Scorer
from benchmarks.provenance import source_config, write_results
from signs_lightning.commands.loading import load_generator
from signs_lightning.evaluation.scoring import Sampler
from signs_lightning.inference import sampling
from signs_lightning.modules.common import GeneratorModule


def scan(
    model: GeneratorModule,
    scorer: Scorer,
    nfe: list[int],
    max_levels: list[float],
    noise: str = "fresh",
    etas: list[float] = (0.0,),
    constant: bool = False,
) -> dict[str, float]:
    """{"1": FD at one step, "<nfe>@<max level>[/eta<η>]": FD of that multi-step sampler}, LeNet features."""
    schedules = {"1": ([], 0.0)} | {
        f"{k}@{level:g}" + (f"/eta{eta:g}" if eta else ""): (
            sampling.renoise_timesteps(model.schedule, k, level, "constant" if constant else "even"),
            eta,
        )
        for k in nfe
        for level in max_levels
        for eta in etas
    }

    def sampler(timesteps: list[int], eta: float) -> Sampler:
        return lambda z, g: sampling.multistep(model.sampling_network, z, model.schedule, timesteps, g, noise, eta)

    rows = scorer.score({name: sampler(*schedule) for name, schedule in schedules.items()}, model.image_shape)
    return {name: row["fid_lenet"] for name, row in rows.items()}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(
        prog="python -m lab.studies.renoise_levels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--max-levels", nargs="+", type=float, default=[0.05, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--nfe", nargs="+", type=int, default=[2, 4])
    parser.add_argument("--num-samples", type=int, default=2000, help="samples per Fréchet distance (default: 2000)")
    parser.add_argument(
        "--noise",
        choices=["fresh", "initial", "path"],
        default="fresh",
        help="what to re-noise with (sampling.multistep): fresh noise, the starting z, or the implied noise",
    )
    parser.add_argument(
        "--eta", nargs="+", type=float, default=[0.0], help="fresh noise mixed into the initial / path rules' noise"
    )
    parser.add_argument("--constant", action="store_true", help="every re-noising step at the max level")
    parser.add_argument("--output", type=Path, help="also write the numbers here (JSON)")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results: dict[str, dict[str, float]] = {}
    scorer = None
    for path in args.checkpoints:
        model = load_generator(path).to(device)
        if scorer is None:
            scorer = Scorer(model.image_shape[-1], args.num_samples, 0, 0, 500, 1, device)
        results[str(path)] = scan(model, scorer, args.nfe, args.max_levels, args.noise, args.eta, args.constant)

    columns = list(next(iter(results.values())))
    print("| checkpoint | " + " | ".join(f"FD {c}" for c in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for path, row in results.items():
        print(f"| {path} | " + " | ".join(f"{row[c]:.1f}" for c in columns) + " |")
    if args.output is not None:
        command = sys.argv[1:] if argv is None else argv
        config = "".join([*(source_config(path) for path in args.checkpoints), *command])
        write_results(args.output, {"argv": command, "results": results}, config)
    return results


if __name__ == "__main__":
    main()
