"""``make bench`` end to end on the tiny --smoke setting (numbers are not asserted: only the outputs' shape)."""

from __future__ import annotations

import json

import pytest

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
    # Every results file records the commit and the config it came from.
    for name in ["summary.json", "teacher.json", *(f"{variant['name']}.json" for variant in VARIANTS)]:
        assert set(json.loads((out / name).read_text())["provenance"]) == {"git_commit", "config_sha256"}, name
