"""Issue 18's multi-step targets over training seeds, from ``renoise_levels`` results files.

    python -m lab.studies.multistep_targets --results lab/results/multistep/seeds_path.json \\
        --stage1 CKPT CKPT CKPT --stage2 CKPT CKPT CKPT [--stage1-level 0.3] [--stage2-level 0.1] \\
        [--stage1-results FILE] [--stage1-rule /eta0.4] [--stage3 CKPT CKPT CKPT --stage3-results FILE] \\
        [--output lab/results/multistep/targets.json]

Writes mean ± sd over the seeds of 1, 2, 3 and 4 NFE for each stage at its level (and rule: the suffix
``renoise_levels`` gives a setting, e.g. ``/eta0.4``), and a top-level ``targets`` list of ``{target, met,
detail}``: the promoted recipe's (stage 2, or stage 3 when given) 4-NFE ≤ 0.85 × its 1-NFE, its 1 → 2 → 4 NFE
monotone beyond the spread (each step better by more than the larger sd), and the stage-1 (demo) model monotone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from benchmarks.provenance import write_results


def summary(
    results: dict[str, dict[str, float]], checkpoints: list[str], level: float, rule: str = ""
) -> dict[str, list[float]]:
    """NFE → [mean, sd] over ``checkpoints`` of the FD at ``level`` and ``rule`` (1 NFE: neither)."""
    rows = {}
    for nfe in (1, 2, 3, 4):
        name = "1" if nfe == 1 else f"{nfe}@{level:g}{rule}"
        values = [results[path][name] for path in checkpoints if name in results[path]]
        if len(values) == len(checkpoints):
            rows[str(nfe)] = [statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0]
    return rows


def monotone(rows: dict[str, list[float]], nfe: tuple[int, ...] = (1, 2, 4)) -> tuple[bool, str]:
    """Whether each step of ``nfe`` improves the mean by more than the larger of the two sds."""
    steps, words = [], []
    for a, b in zip(nfe, nfe[1:]):
        (mean_a, sd_a), (mean_b, sd_b) = rows[str(a)], rows[str(b)]
        gain = mean_a - mean_b
        steps.append((a, b, gain > max(sd_a, sd_b)))
        word = "better beyond the spread" if steps[-1][2] else "better within the spread" if gain > 0 else "worse"
        words.append(f"{a} → {b}: {mean_a:.2f} → {mean_b:.2f} {word}")
    detail = ", ".join(words)
    return all(ok for *_, ok in steps), detail


def targets(stage1: dict[str, list[float]], promoted: dict[str, list[float]], name: str = "stage 2") -> list[dict]:
    ratio = promoted["4"][0] / promoted["1"][0]
    promoted_monotone, promoted_detail = monotone(promoted)
    stage1_monotone, stage1_detail = monotone(stage1)
    return [
        {"target": f"{name}: 4-NFE <= 0.85 x 1-NFE", "met": ratio <= 0.85, "detail": f"ratio {ratio:.2f}"},
        {
            "target": f"{name}: 1 -> 2 -> 4 NFE monotone beyond the spread",
            "met": promoted_monotone,
            "detail": promoted_detail,
        },
        {
            "target": "the demo model (stage 1): 1 -> 2 -> 4 NFE monotone beyond the spread",
            "met": stage1_monotone,
            "detail": stage1_detail,
        },
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m lab.studies.multistep_targets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", type=Path, required=True, help="a renoise_levels results file")
    parser.add_argument("--stage1", nargs="+", required=True)
    parser.add_argument("--stage2", nargs="+", required=True)
    parser.add_argument("--stage1-level", type=float, default=0.3)
    parser.add_argument("--stage2-level", type=float, default=0.1)
    parser.add_argument("--stage1-results", type=Path, help="stage 1's results file (default: --results)")
    parser.add_argument("--stage1-rule", default="", help="stage 1's setting suffix, e.g. /eta0.4")
    parser.add_argument("--stage3", nargs="+", help="a later stage's checkpoints: then the promoted recipe")
    parser.add_argument("--stage3-results", type=Path, help="their results file (default: --results)")
    parser.add_argument("--stage3-level", type=float, default=0.1)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    files = [args.results, args.stage1_results or args.results, args.stage3_results or args.results]
    results, results1, results3 = (json.loads(path.read_text())["results"] for path in files)
    stage1 = summary(results1, args.stage1, args.stage1_level, args.stage1_rule)
    stage2 = summary(results, args.stage2, args.stage2_level)
    report = {"stage1": stage1, "stage2": stage2}
    if args.stage3:
        report["stage3"] = summary(results3, args.stage3, args.stage3_level)
    promoted = ("stage 3", report["stage3"]) if args.stage3 else ("stage 2", stage2)
    report["targets"] = targets(stage1, promoted[1], promoted[0])
    for target in report["targets"]:
        print(f"{'met' if target['met'] else 'missed':6s} {target['target']}: {target['detail']}")
    if args.output is not None:
        command = sys.argv[1:] if argv is None else argv
        sources = "".join(dict.fromkeys(path.read_text() for path in files))
        write_results(args.output, {"argv": command, **report}, sources + "".join(command))
    return report


if __name__ == "__main__":
    main()
