"""The notebooks' code cells run against a freshly trained tiny checkpoint (paths rewritten to it)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.modules import SIGNModule

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tiny_teacher_dir, tmp_path, monkeypatch) -> None:
    model = SIGNModule(teacher=str(tiny_teacher_dir), reg_pairs=16, reg_sampler_steps=2, max_generator_steps=1)
    # The same layout `signs demo` writes: runs/demo/sign_logs/lightning_logs/version_0/checkpoints/last.ckpt
    logs = tmp_path / "runs" / "demo" / "sign_logs"
    trainer = L.Trainer(max_epochs=-1, logger=CSVLogger(logs), callbacks=[ModelCheckpoint(save_last=True)],
                        enable_progress_bar=False, limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(model, EmbeddedMNISTDataModule(image_size=8, batch_size=8))
    cwd = tmp_path / "notebooks"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    namespace: dict = {}
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), str(NOTEBOOK), "exec"), namespace)
    assert namespace["inpainted"].shape == namespace["x"].shape
