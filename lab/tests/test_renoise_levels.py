"""``lab/studies/renoise_levels.py``: a checkpoint read back, every (NFE, level) schedule scored as a named sampler."""

from __future__ import annotations

import json

import pytest

from lab.studies import renoise_levels

# End to end (trains the 8x8 LeNet): in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow


def test_every_schedule_gets_its_distance(sign_checkpoint, tmp_path) -> None:
    output = tmp_path / "levels.json"
    argv = [str(sign_checkpoint), "--max-levels", "0.1", "0.5", "--nfe", "2", "3", "--num-samples", "64"]
    scan = renoise_levels.main([*argv, "--output", str(output)])
    assert set(scan[str(sign_checkpoint)]) == {"1", "2@0.1", "2@0.5", "3@0.1", "3@0.5"}
    written = json.loads(output.read_text())
    assert written["results"] == scan and set(written["provenance"]) == {"git_commit", "config_sha256"}
