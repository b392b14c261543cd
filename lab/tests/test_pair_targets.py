"""``lab/studies/pair_targets.py`` at toy size on the tiny teacher (numbers are not asserted, only the outputs)."""

from __future__ import annotations

import json

import pytest

from lab.studies import pair_targets

# End to end (trains the 8x8 LeNet): in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow

ROW_KEYS = {"solver", "steps", "nfe", "reference", "seconds", "pairs_per_second", "fd_lenet", "class_coverage",
            "rms_to_reference"}  # fmt: skip


def test_smoke_run_writes_every_row(tiny_teacher_dir, tmp_path) -> None:
    out = pair_targets.main(
        [str(tiny_teacher_dir), "--pairs", "12", "--rows", "ddim:2", "dpmsolver++:3", "unipc:3", "--reference",
         "unipc:6", "--batch-size", "5", "--output", str(tmp_path / "results")]
    )  # fmt: skip
    summary = json.loads((out / "pair_targets.json").read_text())
    rows = [(row["solver"], row["steps"], row["reference"]) for row in summary["rows"]]
    assert rows == [("ddim", 2, False), ("dpmsolver++", 3, False), ("unipc", 3, False), ("unipc", 6, True)]
    assert all(ROW_KEYS <= set(row) for row in summary["rows"])
    assert summary["rows"][-1]["rms_to_reference"] == 0 and summary["pairs"] == 12
    assert set(summary["provenance"]) == {"git_commit", "config_sha256"}
    table = (out / "pair_targets.md").read_text()
    assert table.count("\n| ") == 1 + len(rows) and "unipc (reference)" in table


def test_a_bad_row_names_the_accepted_solvers(capsys) -> None:
    with pytest.raises(SystemExit):
        pair_targets.parse_args(["teacher", "--rows", "euler:10"])
    assert "SOLVER one of ddim, dpmsolver++, unipc" in capsys.readouterr().err
