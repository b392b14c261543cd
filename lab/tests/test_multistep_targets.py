"""``lab/studies/multistep_targets.py`` on the committed seed results: the targets read back as the lab notes say."""

from __future__ import annotations

import json
from pathlib import Path

from lab.studies import multistep_targets

RESULTS = Path(__file__).resolve().parents[1] / "results" / "multistep"
STAGE1 = ["runs/demo/sign_logs", "runs/ms/stage1_s1", "runs/ms/stage1_s2"]
STAGE2 = ["runs/demo/sign_dmd_logs", "runs/ms/base_s1", "runs/ms/base_s2"]


def test_the_committed_seeds_give_the_noted_targets(tmp_path) -> None:
    checkpoints = [[f"{run}/checkpoints/last.ckpt" for run in runs] for runs in (STAGE1, STAGE2)]
    output = tmp_path / "targets.json"
    argv = ["--results", str(RESULTS / "seeds_path.json"), "--stage1", *checkpoints[0], "--stage2", *checkpoints[1]]
    report = multistep_targets.main([*argv, "--output", str(output)])
    assert [target["met"] for target in report["targets"]] == [True, False, False]
    assert round(report["stage2"]["4"][0], 2) == 2.64 and round(report["stage1"]["2"][0], 2) == 2.95
    assert "2 → 4: 2.95 → 4.25 worse" in report["targets"][2]["detail"]
    assert set(json.loads(output.read_text())["provenance"]) == {"git_commit", "config_sha256"}


def test_monotone_needs_each_step_beyond_the_larger_spread() -> None:
    rows = {"1": [4.0, 0.2], "2": [3.0, 0.1], "4": [2.85, 0.1]}
    met, detail = multistep_targets.monotone(rows)
    assert met and detail == "1 → 2: 4.00 → 3.00 better beyond the spread, 2 → 4: 3.00 → 2.85 better beyond the spread"
    assert multistep_targets.monotone({"1": [4.0, 0.2], "2": [3.0, 0.1], "4": [2.5, 0.1]})[0]
    assert not multistep_targets.monotone({"1": [4.0, 0.2], "2": [3.0, 0.1], "4": [2.95, 0.1]})[0]
