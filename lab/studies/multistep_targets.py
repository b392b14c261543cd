"""Issue 18's multi-step targets over training seeds, from ``renoise_levels`` results files.

    python -m lab.studies.multistep_targets --results lab/results/multistep/seeds_path.json \\
        --stage1 CKPT CKPT CKPT --stage2 CKPT CKPT CKPT [--stage1-level 0.3] [--stage2-level 0.1] \\
        [--output lab/results/multistep/targets.json]

Writes mean ± sd over the seeds of 1, 2, 3 and 4 NFE for each stage at its level, and a top-level ``targets`` list of
``{target, met, detail}``: stage 2's 4-NFE ≤ 0.85 × its 1-NFE, 1 → 2 → 4 NFE monotone beyond the spread (each step
better by more than the larger sd), and the stage-1 (demo) model monotone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from benchmarks.provenance import write_results


def summary(results: dict[str, dict[str, float]], checkpoints: list[str], level: float) -> dict[str, list[float]]:
    """NFE → [mean, sd] over ``checkpoints`` of the FD at ``level`` (1 NFE: no level)."""
    rows = {}
    for nfe in (1, 2, 3, 4):
        name = "1" if nfe == 1 else f"{nfe}@{level:g}"
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


def targets(stage1: dict[str, list[float]], stage2: dict[str, list[float]]) -> list[dict]:
    ratio = stage2["4"][0] / stage2["1"][0]
    stage2_monotone, stage2_detail = monotone(stage2)
    stage1_monotone, stage1_detail = monotone(stage1)
    return [
        {"target": "stage 2: 4-NFE <= 0.85 x 1-NFE", "met": ratio <= 0.85, "detail": f"ratio {ratio:.2f}"},
        {
            "target": "stage 2: 1 -> 2 -> 4 NFE monotone beyond the spread",
            "met": stage2_monotone,
            "detail": stage2_detail,
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
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())["results"]
    stage1 = summary(results, args.stage1, args.stage1_level)
    stage2 = summary(results, args.stage2, args.stage2_level)
    report = {"stage1": stage1, "stage2": stage2, "targets": targets(stage1, stage2)}
    for target in report["targets"]:
        print(f"{'met' if target['met'] else 'missed':6s} {target['target']}: {target['detail']}")
    if args.output is not None:
        command = sys.argv[1:] if argv is None else argv
        write_results(args.output, {"argv": command, **report}, args.results.read_text() + "".join(command))
    return report


if __name__ == "__main__":
    main()
