"""``make bench`` end to end on the tiny --smoke setting (numbers are not asserted: only the outputs' shape)."""

from __future__ import annotations

import json

import pytest

from benchmarks import renoise_levels
from benchmarks.run import bench_main
from benchmarks.variants import VARIANTS

# End to end: in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow

MODEL_KEYS = {
    "budget_seconds", "train_seconds", "generator_steps", "train_images_per_second", "peak_memory_mb",
    "idempotence_error", "reconstruction_error", "sample_overhead", "rows",
}  # fmt: skip
ROW_KEYS = {"label", "sampler", "nfe", "fid_lenet", "fid_inception", "class_coverage", "sample_images_per_second"}


def test_smoke_benchmark_writes_every_result(tmp_path) -> None:
    out = bench_main(["--smoke", "--output", str(tmp_path / "results"), "--workdir", str(tmp_path / "work")])
    for name in ["summary.json", "results.md", "fid_vs_nfe.png", "teacher.json"]:
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"teacher"} | {variant["name"] for variant in VARIANTS}
    for variant in VARIANTS:
        entry = summary["models"][variant["name"]]
        assert MODEL_KEYS <= set(entry), variant["name"]
        assert json.loads((out / f"{variant['name']}.json").read_text()) == entry
        samplers = {(row["sampler"], row["nfe"]) for row in entry["rows"]}
        assert samplers == {("multistep", k) for k in variant["nfe"]} | {("ffz", 2)}, variant["name"]
        assert all(ROW_KEYS <= set(row) for row in entry["rows"])
    assert {row["nfe"] for row in summary["models"]["teacher"]["rows"]} == {1, 2, 4, 10, 50}
    overhead_keys = {"lightning_step_seconds", "bare_step_seconds", "lightning_throughput_ratio"}
    assert overhead_keys <= set(summary["overhead"]["training"])
    assert {"sample_seconds", "forward_seconds", "sampling_overhead_ratio"} <= set(summary["overhead"]["sampling"])
    assert len(summary["targets"]) == 4 and all({"target", "met", "detail"} <= set(t) for t in summary["targets"])
    assert "## Targets" in (out / "results.md").read_text()

    # The re-noising scan reads a variant's checkpoint back and scores every (NFE, level) sampler.
    (checkpoint,) = (tmp_path / "work" / "logs" / "sign").rglob("last.ckpt")
    scan = renoise_levels.main(
        [
            str(checkpoint),
            "--max-levels",
            "0.1",
            "0.5",
            "--nfe",
            "2",
            "3",
            "--num-samples",
            "64",
            "--output",
            str(tmp_path / "levels.json"),
        ]
    )
    assert set(scan[str(checkpoint)]) == {"1", "2@0.1", "2@0.5", "3@0.1", "3@0.5"}
    assert json.loads((tmp_path / "levels.json").read_text())["results"] == scan
