"""``lab/studies/multistep_trace.py``: a checkpoint's re-noise-and-project steps and the teacher's refinements
scored by level, with the distances they move its samples."""

from __future__ import annotations

import json

import pytest

from lab.studies import multistep_trace

# End to end (trains the 8x8 LeNet): in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow


def test_every_level_gets_its_distances(sign_checkpoint, tmp_path) -> None:
    output = tmp_path / "trace.json"
    argv = [str(sign_checkpoint), "--levels", "3", "40", "--num-samples", "64", "--diagnostic-samples", "16"]
    results = multistep_trace.main([*argv, "--output", str(output)])
    trace = results[str(sign_checkpoint)]
    assert set(trace["fd"]) == {"f", "ffz", "f@3", "f@3/z", "teacher@3", "f@40", "f@40/z", "teacher@40"}
    assert set(trace["diagnostics"]) == {"0", "3", "40"}
    # Re-noising further moves the samples further.
    assert trace["diagnostics"]["40"]["moved"] > trace["diagnostics"]["3"]["moved"]
    written = json.loads(output.read_text())
    assert written["results"] == results and set(written["provenance"]) == {"git_commit", "config_sha256"}
