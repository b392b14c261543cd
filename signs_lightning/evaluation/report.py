"""A text table of evaluation metrics for ``signs validate`` and logs: one row per NFE."""

from __future__ import annotations

import re

IDEMPOTENCE_KEY = "idempotence_error"
RECONSTRUCTION_KEY = "reconstruction_error"

_FID = re.compile(r"(?P<teacher>teacher_)?(?P<metric>fid[0-9.]+k?_.+)_nfe(?P<nfe>\d+)")
_OTHER = re.compile(
    rf"(?P<name>teacher_class_coverage|class_coverage|{IDEMPOTENCE_KEY}|{RECONSTRUCTION_KEY})(?:_nfe(?P<nfe>\d+))?"
)
_HEADERS = {
    IDEMPOTENCE_KEY: "idem. error",
    RECONSTRUCTION_KEY: "rec. error",
    "class_coverage": "class cov.",
    "teacher_class_coverage": "teacher class cov.",
}
_ORDER = ["SIGN", "teacher", IDEMPOTENCE_KEY, RECONSTRUCTION_KEY, "class_coverage", "teacher_class_coverage"]


def _cell(name: str) -> tuple[tuple[int, str], str, int] | None:
    """(column sort key, column header, NFE) of a metric name without its prefix; None if not a table metric."""
    if match := _FID.fullmatch(name):
        who = "teacher" if match["teacher"] else "SIGN"
        return (_ORDER.index(who), match["metric"]), f"{who} {match['metric']}", int(match["nfe"])
    if match := _OTHER.fullmatch(name):
        # Without an _nfe suffix the value belongs to the one-step map f itself: the 1-NFE row.
        return (_ORDER.index(match["name"]), ""), _HEADERS[match["name"]], int(match["nfe"] or 1)
    return None


def _format(header: str, value: float) -> str:
    if "fid" in header:
        return f"{value:.2f}"
    if "cov." in header:
        return f"{value:.0%}"
    return f"{value:.4g}"


def format_table(metrics: dict[str, float]) -> str:
    """One table per key prefix (``val``, ``test``...): rows NFE; columns SIGN FID, teacher FID at matched NFE,
    idempotence error, reconstruction error, class coverage (those present). Other metrics are ignored.

    Recognised names after the prefix: ``fid{count}_{extractor}_nfe{k}``, ``teacher_fid{count}_{extractor}_nfe{k}``,
    ``class_coverage_nfe{k}``, ``teacher_class_coverage_nfe{k}``, ``idempotence_error[_nfe{k}]``,
    ``reconstruction_error[_nfe{k}]`` (without a suffix they go on the 1-NFE row).

    >>> print(format_table({"val/fid2k_lenet16_nfe1": 47.1, "val/teacher_fid2k_lenet16_nfe1": 1056.0,
    ...                     "val/idempotence_error": 0.03, "val/loss": 1.0}))
    val
    NFE | SIGN fid2k_lenet16 | teacher fid2k_lenet16 | idem. error
    ----+--------------------+-----------------------+------------
      1 |              47.10 |               1056.00 |        0.03
    """
    tables: dict[str, dict[tuple[int, str], str]] = {}
    cells: dict[str, dict[tuple[int, str], str]] = {}
    for key, value in metrics.items():
        prefix, _, name = key.rpartition("/")
        parsed = _cell(name)
        if parsed is None:
            continue
        column, header, nfe = parsed
        tables.setdefault(prefix, {})[column] = header
        cells.setdefault(prefix, {})[(nfe, header)] = _format(header, float(value))
    if not tables:
        return "(no evaluation metrics)"
    blocks = []
    for prefix in sorted(tables):
        headers = ["NFE"] + [tables[prefix][column] for column in sorted(tables[prefix])]
        nfes = sorted({nfe for nfe, _ in cells[prefix]})
        rows = [[str(nfe)] + [cells[prefix].get((nfe, header), "-") for header in headers[1:]] for nfe in nfes]
        widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]
        lines = [
            prefix or "metrics",
            " | ".join(header.ljust(width) for header, width in zip(headers, widths)).rstrip(),
            "-+-".join("-" * width for width in widths),
            *(" | ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows),
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
