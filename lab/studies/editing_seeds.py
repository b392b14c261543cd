"""The editing benchmark over training seeds: mean ± sd of several ``benchmarks.editing`` runs, and its targets on the
means.

    python -m lab.studies.editing_seeds RUN/editing.json RUN/editing.json [...] \\
        [--output lab/results/editing_seeds]

Each input is one run of ``python -m benchmarks.editing`` (one trained model, with its own ``--seed`` so that the
digits, corruptions and sample noise differ too). Per setting (informed, blind), the rows with the same corruption,
method, NFE and label are averaged over the inputs: ``psnr``, ``accuracy`` and ``fd`` are the means, ``psnr_sd``,
``accuracy_sd`` and ``fd_sd`` the sample sds (0 for one input); a row missing from an input is dropped, with a
warning. The targets are ``benchmarks.editing``'s (``informed_targets``, ``blind_targets``) on the mean rows.

Writes ``editing_seeds.json`` (``settings``, ``runs``, ``informed`` and ``blind`` rows, ``targets``, provenance)
and ``editing_seeds.md`` (mean ± sd tables per setting and metric, then the targets).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.editing import (
    METRICS,
    SETTING_TEXT,
    SETTINGS,
    blind_targets,
    informed_targets,
    metric_table,
    target_line,
)
from benchmarks.provenance import write_results

Row = dict[str, Any]
KEY = ("corruption", "method", "nfe", "label")
VERDICTS = {True: "met", False: "missed", None: "not measured"}


def warn(text: str) -> None:
    print(f"[editing_seeds] warning: {text}", file=sys.stderr)


def load(path: Path) -> dict[str, Any]:
    """An ``editing.json``; SystemExit naming the file when it is missing or is not one."""
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"editing_seeds: {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystemExit(f"editing_seeds: {path}: not an editing.json ({error})") from None
    if not isinstance(summary, dict) or any(setting not in summary for setting in SETTINGS):
        raise SystemExit(f"editing_seeds: {path}: not an editing.json (no {' / '.join(SETTINGS)} sections)")
    return summary


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample sd; 0 for one value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def mean_rows(runs: Sequence[list[Row]], setting: str = "") -> list[Row]:
    """One row per (corruption, method, nfe, label) found in every run, in the first run's order: each metric's mean
    over the runs, its sd as ``<metric>_sd``, and ``runs``. Rows missing from a run are dropped (warned on stderr)."""
    if not runs:
        raise ValueError("no runs to average")
    grouped: dict[tuple, list[Row]] = {}
    for rows in runs:
        for row in rows:
            grouped.setdefault(tuple(row[k] for k in KEY), []).append(row)
    means = []
    for key, found in grouped.items():
        if len(found) != len(runs):
            warn(f"{setting} row {key} is in {len(found)} of {len(runs)} inputs: dropped")
            continue
        row = dict(zip(KEY, key))
        for metric in METRICS:
            row[metric], row[f"{metric}_sd"] = mean_sd([r[metric] for r in found])
        means.append({**row, "runs": len(found)})
    return means


def seed_targets(informed: list[Row], blind: list[Row], runs: int) -> list[dict[str, Any]]:
    """``benchmarks.editing``'s targets on the mean rows, each detail marked as means over ``runs`` runs."""
    found = informed_targets(informed) + blind_targets(blind)
    return [{**item, "detail": f"{item['detail']} (means over {runs} runs)"} for item in found]


def mean_sd_cell(row: Row, metric: str) -> str:
    """A ``metric_table`` cell: "mean ± sd", both in the metric's ``METRICS`` format."""
    spec = METRICS[metric][1]
    return f"{format(row[metric], spec)} ± {format(row[f'{metric}_sd'], spec)}"


def markdown(report: dict[str, Any]) -> str:
    settings = report["settings"]
    lines = [
        "# Editing benchmark over seeds",
        "",
        f"`python -m lab.studies.editing_seeds {' '.join(settings['argv'])}`: mean ± sd over {report['runs']} runs "
        "of `benchmarks.editing` (sd: the sample sd over the runs).",
        "",
        *(f"- `{run['path']}`: SIGN `{run['sign']}`, seed {run['seed']}" for run in settings["inputs"]),
    ]
    for setting in SETTINGS:
        lines += ["", f"## {SETTING_TEXT[setting][0]}"]
        for metric, (title, _) in METRICS.items():
            table = metric_table(report[setting]["rows"], metric, mean_sd_cell)
            lines += ["", f"### {title[0].upper()}{title[1:]}", "", table]
    lines += ["", "## Targets (on the means)", "", *(target_line(item) for item in report["targets"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m lab.studies.editing_seeds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", type=Path, nargs="+", help="editing.json files, one per run")
    parser.add_argument("--output", type=Path, default=Path("lab/results/editing_seeds"))
    args = parser.parse_args(argv)
    command = sys.argv[1:] if argv is None else list(argv)
    summaries = [load(path) for path in args.inputs]  # every input checked before anything is written
    seeds = [summary["settings"].get("seed") for summary in summaries]
    if len(set(seeds)) < len(seeds):
        warn(f"inputs share a --seed ({seeds}): their digits, corruptions and sample noise are the same")
    rows = {setting: mean_rows([s[setting]["rows"] for s in summaries], setting) for setting in SETTINGS}
    inputs = [
        {"path": str(path), "sign": s["settings"].get("sign"), "seed": s["settings"].get("seed")}
        for path, s in zip(args.inputs, summaries)
    ]
    report = {
        "settings": {"argv": command, "inputs": inputs},
        "runs": len(summaries),
        **{setting: {"rows": rows[setting]} for setting in SETTINGS},
        "targets": seed_targets(rows["informed"], rows["blind"], len(summaries)),
    }
    config = "".join(path.read_text() for path in args.inputs) + "".join(command)
    report = write_results(args.output / "editing_seeds.json", report, config)
    (args.output / "editing_seeds.md").write_text(markdown(report))
    for item in report["targets"]:
        print(f"{VERDICTS[item['met']]:12s} {item['target']}: {item['detail']}")
    print(f"[editing_seeds] wrote {args.output}")
    return report


if __name__ == "__main__":
    main()
