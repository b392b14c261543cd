"""A text table of evaluation metrics for ``signs validate`` and logs: one row per NFE."""

from __future__ import annotations

from signs_lightning.evaluation.keys import (
    CLASS_COVERAGE,
    IDEMPOTENCE_KEY,
    RECONSTRUCTION_KEY,
    TEACHER_TAG,
    MetricKey,
    is_fid_name,
    parse_key,
)

_TEACHER_COVERAGE = TEACHER_TAG + CLASS_COVERAGE
_HEADERS = {
    IDEMPOTENCE_KEY: "idem. error",
    RECONSTRUCTION_KEY: "rec. error",
    CLASS_COVERAGE: "class cov.",
    _TEACHER_COVERAGE: "teacher class cov.",
}
_ORDER = ["SIGN", "teacher", IDEMPOTENCE_KEY, RECONSTRUCTION_KEY, CLASS_COVERAGE, _TEACHER_COVERAGE]


def _cell(key: MetricKey) -> tuple[tuple[int, str], str, int] | None:
    """(column sort key, column header, NFE) of a metric; None if not a table metric."""
    if is_fid_name(key.name) and key.nfe is not None:
        who = "teacher" if key.teacher else "SIGN"
        return (_ORDER.index(who), key.name), f"{who} {key.name}", key.nfe
    column = TEACHER_TAG + key.name if key.teacher else key.name
    if column in _HEADERS:
        # Without an NFE the value belongs to the one-step map f itself: the 1-NFE row.
        return (_ORDER.index(column), ""), _HEADERS[column], key.nfe or 1
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
        parsed = parse_key(key)
        cell = _cell(parsed)
        if cell is None:
            continue
        column, header, nfe = cell
        tables.setdefault(parsed.prefix, {})[column] = header
        cells.setdefault(parsed.prefix, {})[(nfe, header)] = _format(header, float(value))
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
