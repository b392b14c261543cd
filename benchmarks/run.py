"""``make bench``: every model of ``benchmarks.variants`` trained for the same wall-clock budget and scored alike.

    python -m benchmarks.run [--smoke] [--output benchmarks/results] [--budget-seconds N] [--variants NAME ...]

1. the teacher: ``--teacher PATH``, else ``runs/demo/teacher`` (written by ``make demo``), else trained here with
   ``configs/teacher_mnist.yaml`` exactly as ``signs demo`` does;
2. the teacher's DDIM scored at 1, 2, 4, 10 and 50 NFE;
3. each variant trained through ``signs fit`` for ``--budget-seconds`` (IGN: ``--ign-time-factor`` times that),
   scored at its NFE settings and f(f(z)), and written to ``<output>/<variant>.json``;
4. the framework overhead (Lightning vs a bare loop; ``model.sample`` vs a bare forward);
5. the demo config's training step against its compute limit, each speed option on and off (``benchmarks.speed``,
   ``<output>/speed/<cpu|gpu>_demo*.json``);
6. ``summary.json``, ``results.md`` (table and targets) and ``fid_vs_nfe.png``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import report, speed
from benchmarks.measure import Scorer, device_name
from benchmarks.overhead import lightning_vs_bare, sample_vs_forward
from benchmarks.provenance import source_config, write_results
from benchmarks.training import extra_overrides, train_variant, variant_config
from benchmarks.variants import (
    HEADLINE,
    SMOKE_OVERRIDES,
    SMOKE_TEACHER_OVERRIDES,
    SMOKE_TEACHER_STEPS,
    TEACHER_INCEPTION_NFE,
    TEACHER_NFE,
    Variant,
    by_name,
    select,
)
from signs_lightning.diffusion.score_model import ScoreModel, load_teacher
from signs_lightning.evaluation.keys import FFZ, nfe_sampler, sampler_nfe
from signs_lightning.evaluation.scoring import generator_samplers
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.run import runs
from signs_lightning.run.config_layers import config_files

REPO = Path(__file__).resolve().parents[1]
DEMO_TEACHER = REPO / "runs" / "demo" / "teacher"

# Defaults of the options left unset, for a full run and for --smoke (tiny everything, well under 90 s on 2 cores).
DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {
        "workdir": "runs/bench", "budget_seconds": 180.0, "num_samples": 2000, "inception_samples": 500,
        "inception_reference": 2000, "sample_batch": 500, "sample_repeats": 3, "overhead_steps": 40,
        "overhead_warmup": 5,
    },
    "smoke": {
        "workdir": "runs/bench_smoke", "budget_seconds": 1.0, "num_samples": 64, "inception_samples": 0,
        "inception_reference": 64, "sample_batch": 64, "sample_repeats": 2, "overhead_steps": 4,
        "overhead_warmup": 1,
    },
}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )

    def scaled(flag: str, kind: type, text: str) -> None:
        """An option whose default depends on --smoke (filled in after parsing)."""
        key = flag.removeprefix("--").replace("-", "_")
        defaults = f"default: {DEFAULTS['full'][key]}, with --smoke: {DEFAULTS['smoke'][key]}"
        parser.add_argument(flag, type=kind, help=f"{text} ({defaults})")

    parser.add_argument("--smoke", action="store_true", help="tiny 8x8 run of everything, numbers meaningless")
    parser.add_argument("--output", default="benchmarks/results", help="results folder (default: benchmarks/results)")
    scaled("--workdir", str, "teacher, Lightning logs and checkpoints")
    parser.add_argument(
        "--teacher", help=f"diffusers teacher folder (default: {DEMO_TEACHER} if present, else trained in --workdir)"
    )
    scaled("--budget-seconds", float, "training seconds per SIGN variant")
    parser.add_argument("--ign-time-factor", type=float, default=3.0, help="IGN's budget / SIGN's (default: 3)")
    parser.add_argument("--variants", nargs="+", metavar="NAME", help="run only these variants (default: all)")
    scaled("--num-samples", int, "samples per LeNet FID")
    scaled("--inception-samples", int, "samples per Inception FID, 0 disables")
    scaled("--inception-reference", int, "training images in Inception's reference set")
    scaled("--sample-batch", int, "batch of the sampling-throughput timings")
    scaled("--sample-repeats", int, "timed calls per throughput, median taken")
    scaled("--overhead-steps", int, "timed steps per loop in the Lightning-vs-bare run, 0 disables")
    scaled("--overhead-warmup", int, "untimed first steps of each loop")
    parser.add_argument("--overhead-rounds", type=int, default=2, help="alternating rounds of both loops (default: 2)")
    args = parser.parse_args(argv)
    for key, value in DEFAULTS["smoke" if args.smoke else "full"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    return args


def resolve_teacher(args: argparse.Namespace, workdir: Path) -> tuple[Path, float]:
    """The teacher folder and the seconds spent training it now (0 when reused)."""
    if args.teacher is not None:
        return Path(args.teacher), 0.0
    if not args.smoke and DEMO_TEACHER.is_dir():
        return DEMO_TEACHER, 0.0
    overrides = ["trainer.enable_progress_bar=false"]
    if args.smoke:
        overrides += [*SMOKE_OVERRIDES, *SMOKE_TEACHER_OVERRIDES, f"trainer.max_steps={SMOKE_TEACHER_STEPS}"]
    # The demo's teacher configs, so that `make demo` and the benchmark train the same teacher; one trained before
    # with the same settings is reused.
    return runs.train_teacher(config_files(runs.TEACHER_CONFIG), workdir, overrides)


def teacher_entry(teacher: ScoreModel, teacher_dir: Path, seconds: float, scorer: Scorer) -> dict[str, Any]:
    fingerprint = teacher.fingerprint()
    rows = scorer.score_teacher(teacher, TEACHER_NFE, TEACHER_INCEPTION_NFE)
    return {
        "name": report.TEACHER,
        "kind": "teacher",
        "source": str(teacher_dir),
        "fingerprint": fingerprint,
        "train_seconds": seconds,
        "rows": [
            {"label": f"teacher DDIM @ {k}", "sampler": "ddim", "nfe": k, **rows[nfe_sampler(k)]} for k in TEACHER_NFE
        ],
    }


def sampler_row(model: str, sampler: str, values: dict[str, Any]) -> dict[str, Any]:
    """A generator's result row: its multi-step sampler at k NFE, or f(f(z)) (two NFE of f, no re-noising)."""
    if sampler == FFZ:
        return {"label": f"{model} f(f(z))", "sampler": "ffz", "nfe": 2, **values}
    k = sampler_nfe(sampler)
    return {"label": f"{model} @ {k}", "sampler": "multistep", "nfe": k, **values}


def generator_entry(
    model: GeneratorModule,
    variant: Variant,
    training: dict[str, Any],
    scorer: Scorer,
    args: argparse.Namespace,
    device: torch.device,
) -> dict[str, Any]:
    model.to(device).eval()
    shape = model.image_shape
    name = variant["name"]
    inception = [nfe_sampler(k) for k in variant["inception_nfe"]]
    scores = scorer.score(generator_samplers(model, variant["nfe"]), shape, inception)
    rows = [sampler_row(name, sampler, values) for sampler, values in scores.items()]
    return {
        "name": name,
        "kind": variant["kind"],
        "description": variant["description"],
        "config": os.path.relpath(variant["config"], REPO),
        "overrides": variant["overrides"],
        **training,
        **scorer.diagnostics(model),
        "sample_overhead": sample_vs_forward(model, shape, args.sample_batch, args.sample_repeats, device),
        "rows": rows,
    }


# What the summary keeps of benchmarks.speed's results (its own file has the rest).
SPEED_SUMMARY = (
    "step_seconds",
    "limit_seconds",
    "step_over_limit",
    "bare_over_lightning",
    "generator_steps_per_second",
    "speedup_defaults_over_all_off",
    "options_on",
)
# --smoke: the cheap options only (compiling takes minutes on a CPU), the features of a random convolution (the
# LeNet's would be trained first).
SMOKE_SPEED = [
    "--smoke",
    "--options",
    "foreach_ema",
    "one_pass_gradients",
    "--extractor",
    "signs_lightning.evaluation.RandomConvFeatures",
]


def speed_summary(teacher_dir: Path, out: Path, workdir: Path, smoke: bool) -> dict[str, Any]:
    """``benchmarks.speed`` on the demo config with this teacher; its headline numbers and file."""
    argv = ["--teacher", str(teacher_dir), "--output", str(out / "speed"), "--workdir", str(workdir / "speed")]
    path = speed.main(argv + (SMOKE_SPEED if smoke else []))
    data = json.loads(path.read_text())
    return {**{key: data[key] for key in SPEED_SUMMARY}, "file": os.path.relpath(path, out)}


def bench_main(argv: list[str] | None = None) -> Path:
    """Run the benchmark; returns the results folder."""
    args = parse_args(argv)
    start = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.output).expanduser().resolve()
    workdir = Path(args.workdir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    variants = select(args.variants)

    teacher_dir, teacher_seconds = resolve_teacher(args, workdir)
    teacher = load_teacher(teacher_dir).to(device)
    scorer = Scorer(
        teacher.image_shape[-1],
        args.num_samples,
        args.inception_samples,
        args.inception_reference,
        args.sample_batch,
        args.sample_repeats,
        device,
    )
    entry = teacher_entry(teacher, teacher_dir, teacher_seconds, scorer)
    models = {report.TEACHER: write_results(out / f"{report.TEACHER}.json", entry, source_config(teacher_dir))}

    for variant in variants:
        name = variant["name"]
        budget = args.budget_seconds * (args.ign_time_factor if variant["kind"] == "ign" else 1.0)
        print(f"[bench] training {name} for {budget:g} s")
        overrides = extra_overrides(variant, args.smoke)
        model, training = train_variant(variant, teacher_dir, budget, workdir / "logs" / name, overrides, device)
        entry = generator_entry(model, variant, training, scorer, args, device)
        config = variant_config(variant, teacher_dir, overrides)
        models[name] = entry = write_results(out / f"{name}.json", entry, config)
        first = entry["rows"][0]
        print(
            f"[bench] {name}: {entry['generator_steps']} generator steps in {entry['train_seconds']:.0f} s; "
            f"{first['label']}: FID {first['fid_lenet']:.2f}"
        )
        # Lightning's reference cycles would keep this model (and its optimizer states) alive into the next
        # variant's peak-memory window.
        del model
        gc.collect()

    overhead: dict[str, Any] = {"sampling": models.get(HEADLINE, {}).get("sample_overhead")}
    if args.overhead_steps > 0:
        headline = by_name(HEADLINE)
        print(f"[bench] overhead: {HEADLINE} training steps through Lightning and a bare loop")
        overhead["training"] = lightning_vs_bare(
            headline,
            teacher_dir,
            workdir / "logs" / "overhead",
            extra_overrides(headline, args.smoke),
            args.overhead_steps,
            args.overhead_warmup,
            args.overhead_rounds,
            device,
        )
    print("[bench] speed: the demo config's step against its compute limit, each speed option on and off")
    speed_results = speed_summary(teacher_dir, out, workdir, args.smoke)
    summary = {
        "settings": {
            "argv": args.argv,
            "device": device_name(device),
            "teacher": str(teacher_dir),
            "budget_seconds": args.budget_seconds,
            "ign_time_factor": args.ign_time_factor,
            "num_samples": args.num_samples,
            "inception_samples": args.inception_samples,
            "inception_reference": args.inception_reference,
            "sample_batch": args.sample_batch,
            "metric_names": scorer.metric_names,
        },
        "models": models,
        "overhead": overhead,
        "speed": speed_results,
        "targets": report.targets(models, overhead),
        "wall_seconds": time.perf_counter() - start,
    }
    report.write_summary(out, summary)
    print(report.markdown(summary))
    wall = summary["wall_seconds"]
    print(f"[bench] wrote {out}; total wall time {wall:.0f} s ({wall / 60:.1f} min)")
    return out


if __name__ == "__main__":
    bench_main()
