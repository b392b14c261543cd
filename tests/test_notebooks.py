"""The notebooks' code cells run against a freshly trained tiny checkpoint, in the layout `signs demo` writes, from a
``notebooks/`` folder beside it (their relative paths then point at it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from benchmarks import editing as editing_bench
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.losses import Regression
from signs_lightning.modules import SIGNModule
from signs_lightning.run.callbacks import ModelCheckpoint

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def demo_root(tiny_teacher_dir, tmp_path, monkeypatch) -> Path:
    """``tmp_path`` holding runs/demo/sign_logs/checkpoints/last.ckpt; the working folder is tmp_path/notebooks."""
    model = SIGNModule(teacher=str(tiny_teacher_dir), reg=Regression(pairs=16, sampler_steps=2), max_generator_steps=1)
    logs = tmp_path / "runs" / "demo" / "sign_logs"
    trainer = L.Trainer(max_epochs=-1, default_root_dir=logs, logger=CSVLogger(logs),
                        callbacks=[ModelCheckpoint(save_last=True)], enable_progress_bar=False, limit_val_batches=0,
                        num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(model, EmbeddedMNISTDataModule(image_size=8, batch_size=8))
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    # A notebook may put the repository root on sys.path: restored after the test.
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path


def run_notebook(name: str) -> dict:
    """Executes the code cells in order in one namespace, as a kernel would; returns the namespace."""
    notebook = json.loads((NOTEBOOKS / name).read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None, f"{name}: store notebooks without outputs"
            exec(compile("".join(cell["source"]), str(NOTEBOOKS / name), "exec"), namespace)
    return namespace


def test_quickstart_notebook_runs(demo_root) -> None:
    namespace = run_notebook("quickstart.ipynb")
    assert namespace["inpainted"].shape == namespace["x"].shape
    runs = demo_root / "runs" / "notebook"
    assert (runs / "samples" / "grid.png").is_file() and (runs / "inpainted" / "grid_000.png").is_file()
    assert (runs / "export" / "model_index.json").is_file()
    assert namespace["reproduced"] is True


def test_editing_notebook_runs_and_shows_the_benchmark(demo_root) -> None:
    checkpoint = demo_root / "runs" / "demo" / "sign_logs" / "checkpoints" / "last.ckpt"
    editing_bench.main(["--sign", str(checkpoint), "--output", str(demo_root / "benchmarks" / "results" / "editing"),
                        "--smoke", "--teacher-nfe", "1", "4"])  # fmt: skip
    namespace = run_notebook("editing.ipynb")
    assert torch.equal(namespace["filled"] * (1 - namespace["fill"]), namespace["y"] * (1 - namespace["fill"]))
    assert namespace["summary"]["settings"]["num_images"] == 16 and namespace["figure"] is not None
