"""Plot training curves (``signs_lightning.run.callbacks.TrainingCurve`` files): one line per run, a metric against
training time and against generator steps.

    python -m lab.studies.curves OUT.png LABEL=CURVE.jsonl[@SECONDS] ... [--metric val/fid1k_lenet16_nfe1]

``@SECONDS`` shifts a run along the time axis: a second stage started from a first stage's checkpoint is drawn
where that stage ended.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_curve(path: str | Path) -> list[dict[str, float]]:
    """The rows of a curve file, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def parse_run(spec: str) -> tuple[str, Path, float]:
    """``LABEL=PATH[@SECONDS]`` → (label, path, time offset in seconds).

    >>> parse_run("two stages=runs/b/curve.jsonl@1200")
    ('two stages', PosixPath('runs/b/curve.jsonl'), 1200.0)
    """
    label, _, rest = spec.partition("=")
    path, _, offset = rest.partition("@")
    if not label or not path:
        raise ValueError(f"expected LABEL=CURVE.jsonl[@SECONDS], got {spec!r}")
    return label, Path(path), float(offset or 0)


def plot(runs: list[tuple[str, Path, float]], metric: str, out: Path) -> None:
    figure, (by_time, by_step) = plt.subplots(1, 2, figsize=(11, 4))
    for label, path, offset in runs:
        rows = [row for row in read_curve(path) if metric in row]
        if not rows:
            raise ValueError(f"{path}: no row has {metric!r}")
        values = [row[metric] for row in rows]
        by_time.plot([(offset + row["train_seconds"]) / 60 for row in rows], values, marker="o", label=label)
        by_step.plot([row["generator_step"] for row in rows], values, marker="o", label=label)
    by_time.set_xlabel("training minutes (validation excluded)")
    by_step.set_xlabel("generator steps (of this run)")
    for axis in (by_time, by_step):
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    by_time.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", nargs="+", type=parse_run, metavar="LABEL=CURVE.jsonl[@SECONDS]")
    parser.add_argument("--metric", default="val/fid1k_lenet16_nfe1")
    args = parser.parse_args(argv)
    plot(args.runs, args.metric, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
