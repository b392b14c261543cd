"""``lab/studies/editing_seeds.py`` on the two committed editing runs, taken as two seeds: means, sds, targets."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from benchmarks.editing import CORRUPTIONS, find_row
from lab.studies import editing_seeds

RESULTS = Path(__file__).resolve().parents[1] / "results"
INPUTS = [RESULTS / "editing_stage1" / "editing.json", RESULTS / "editing_stage2" / "editing.json"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    output = tmp_path_factory.mktemp("editing_seeds")
    return editing_seeds.main([*map(str, INPUTS), "--output", str(output)]), output


def test_rows_are_the_mean_and_sd_over_the_inputs(report) -> None:
    means, _ = report
    runs = [json.loads(path.read_text()) for path in INPUTS]
    assert means["runs"] == 2
    for setting, corruption, method, nfe in [("informed", "noise_1", "sign", 1), ("blind", "pixels_80", "sign", 2)]:
        row = find_row(means[setting]["rows"], corruption, method, nfe)
        inputs = [find_row(run[setting]["rows"], corruption, method, nfe) for run in runs]
        assert row["runs"] == 2 and row["label"] == f"sign @ {nfe}"
        for metric in ("psnr", "accuracy", "fd"):
            values = [r[metric] for r in inputs]
            assert row[metric] == pytest.approx((values[0] + values[1]) / 2)
            assert row[f"{metric}_sd"] == pytest.approx(statistics.stdev(values))
    assert len(means["informed"]["rows"]) == len(runs[0]["informed"]["rows"])
    assert find_row(means["informed"]["rows"], "noise_0.2", "corrupted", 0)["psnr_sd"] == 0.0


def test_targets_are_the_benchmarks_on_the_means(report) -> None:
    means, _ = report
    targets = means["targets"]
    assert len(targets) == 2 * (len(CORRUPTIONS) + 1)
    assert all(set(t) == {"target", "met", "detail"} and t["met"] in (True, False) for t in targets)
    assert [t["target"].split(",")[0] for t in targets] == ["informed"] * 8 + ["blind"] * 8
    assert all(t["detail"].endswith(" (means over 2 runs)") for t in targets)


def test_outputs_carry_provenance_and_mean_sd_tables(report) -> None:
    means, output = report
    written = json.loads((output / "editing_seeds.json").read_text())
    assert set(written["provenance"]) == {"git_commit", "config_sha256"}
    assert [run["path"] for run in written["settings"]["inputs"]] == list(map(str, INPUTS))
    assert [run["seed"] for run in written["settings"]["inputs"]] == [0, 0]
    text = (output / "editing_seeds.md").read_text()
    row = find_row(means["blind"]["rows"], CORRUPTIONS[0].key, "sign", 1)  # the first column
    assert f"| sign @ 1 | {row['psnr']:.2f} ± {row['psnr_sd']:.2f} |" in text  # 27.07 ± 0.13
    assert text.count("| method |") == 6 and "(means over 2 runs)" in text


def test_a_missing_or_foreign_input_names_the_file_and_writes_nothing(tmp_path) -> None:
    output = tmp_path / "out"
    missing = tmp_path / "missing.json"
    with pytest.raises(SystemExit, match="missing.json"):
        editing_seeds.main([str(INPUTS[0]), str(missing), "--output", str(output)])
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"results": {}}))
    with pytest.raises(SystemExit, match="foreign.json: not an editing.json"):
        editing_seeds.main([str(foreign), "--output", str(output)])
    with pytest.raises(SystemExit):
        editing_seeds.main(["--output", str(output)])
    assert not output.exists()


def test_rows_missing_from_an_input_are_dropped_with_a_warning(capsys) -> None:
    rows = [{"corruption": "noise_1", "method": "sign", "nfe": n, "label": f"sign @ {n}", "psnr": 20.0 + n,
             "accuracy": 0.5, "fd": 3.0} for n in (1, 2)]  # fmt: skip
    means = editing_seeds.mean_rows([rows, rows[:1]], "informed")
    assert [r["nfe"] for r in means] == [1] and means[0]["psnr_sd"] == 0.0
    assert "informed row ('noise_1', 'sign', 2, 'sign @ 2') is in 1 of 2 inputs: dropped" in capsys.readouterr().err
    assert editing_seeds.mean_rows([rows])[1]["psnr"] == 22.0
