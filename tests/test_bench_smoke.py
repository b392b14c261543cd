"""``make bench`` end to end on the tiny --smoke setting (numbers are not asserted: only the outputs' shape)."""

from __future__ import annotations

import functools
import json

import pytest
import torch

from benchmarks import speed
from benchmarks.run import SPEED_SUMMARY, bench_main
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
    assert set(SPEED_SUMMARY) <= set(summary["speed"]) and (out / summary["speed"]["file"]).is_file()
    assert len(summary["targets"]) == 4 and all({"target", "met", "detail"} <= set(t) for t in summary["targets"])
    assert "## Targets" in (out / "results.md").read_text()
    # Every results file records the commit and the config it came from.
    for name in ["summary.json", "teacher.json", *(f"{variant['name']}.json" for variant in VARIANTS)]:
        assert set(json.loads((out / name).read_text())["provenance"]) == {"git_commit", "config_sha256"}, name


SPEED_KEYS = {
    "step_seconds", "bare_step_seconds", "limit_seconds", "step_over_limit", "bare_over_lightning",
    "generator_steps_per_second", "warmup_seconds", "amortised_step_seconds", "options", "options_on",
    "speedup_defaults_over_all_off", "option_effects", "option_runs", "limit_passes", "profile", "throughput",
    "settings", "provenance",
}  # fmt: skip


@pytest.mark.timeout(120)
def test_speed_benchmark_writes_the_step_against_its_limit(tiny_teacher_dir, tmp_path, monkeypatch) -> None:
    # Inductor takes minutes to compile on a CPU; dynamo with the eager backend goes through the same compile path.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    path = speed.main(
        ["--smoke", "--teacher", str(tiny_teacher_dir), "--output", str(tmp_path / "speed")]
        + ["--workdir", str(tmp_path / "work"), "--extractor", "signs_lightning.evaluation.RandomConvFeatures"]
    )
    assert path == tmp_path / "speed" / speed.results_name(speed.DEMO_CONFIG, torch.device("cpu"))
    data = json.loads(path.read_text())
    assert SPEED_KEYS <= set(data)
    assert all(data[key] > 0 for key in ("step_seconds", "limit_seconds", "step_over_limit", "bare_over_lightning"))
    # All off, and each option alone: every option measured against all-off in the same run.
    measured = {speed.options_key(run["options"]) for run in data["option_runs"]}
    assert {(), *((name,) for name in speed.OPTIONS)} <= measured
    assert all(effect["speedup_over_all_off"] > 0 for effect in data["option_effects"].values())
    assert {"network": "f", "pass": "forward + backward"}.items() <= data["limit_passes"][0].items()
    assert data["profile"]["per_batch_by_kind"]["convolution"]["self_cpu_seconds"] > 0
    rates = data["throughput"]
    assert all(rates[f"nfe{k}_images_per_second"] > 0 for k in (1, 2, 4)) and rates["features_per_second"] > 0
    assert rates["teacher_pairs"]["pairs_per_second"] > 0
    assert set(data["provenance"]) == {"git_commit", "config_sha256"}
