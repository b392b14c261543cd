"""``signs predict``: samples written as PNG files, an ``.npz`` and a grid, through Lightning's prediction loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import lightning as L
import numpy as np
import torch
import torchvision
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image
from torch import Tensor

from signs_lightning.core.errors import SignsError
from signs_lightning.evaluation.grid import sample_rows_grid


def to_uint8(images: Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] → (B, H, W, C) uint8, rounded as saved images are."""
    array = images.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def write_png(image: np.ndarray, path: Path) -> None:
    """One (H, W, C) uint8 image as a PNG (greyscale when C = 1)."""
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(path)


def refuse_earlier_samples(output_dir: Path, setting: str = "--output folder") -> None:
    """Refuse a folder that holds an earlier run's samples: ``SampleWriter`` makes ``samples.npz`` of every numbered
    PNG in it, so an earlier run's would join this run's. ``setting`` says what chose the folder."""
    found = sorted(path.name for path in output_dir.glob("[0-9]*.png"))
    if (output_dir / "samples.npz").exists():
        found.insert(0, "samples.npz")
    refuse_earlier_outputs(output_dir, found, "samples", setting)


def refuse_earlier_outputs(folder: Path, found: Iterable[str], what: str, setting: str) -> None:
    """The one refusal of ``signs sample``, ``predict`` and ``edit``: ``found`` (names of files in ``folder`` of the
    kind the command writes) must be empty, as the command would mix its outputs with them or overwrite them."""
    found = list(found)
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise SignsError(
            f"{folder} already holds {what} of an earlier run ({shown}): choose a new {setting}, or empty that folder"
        )


class SampleWriter(BasePredictionWriter):
    """Writes each predicted sample as ``{output_dir}/{index:06d}.png`` (every rank its own), then on global rank 0
    ``samples.npz`` (``arr_0``: (N, H, W, C) uint8 in index order, the format guided-diffusion's and EDM's FID
    scripts read) and ``grid.png``.

    Args:
        output_dir: where the files go; created if missing.
    """

    def __init__(self, output_dir: str) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir).expanduser()

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: dict[str, Tensor],
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for index, image in zip(prediction["index"].tolist(), to_uint8(prediction["images"])):
            write_png(image, self.output_dir / f"{index:06d}.png")

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.strategy.barrier("signs_sample_writer")
        if not trainer.is_global_zero:
            return
        files = sorted(self.output_dir.glob("[0-9]*.png"))
        images = np.stack([np.asarray(Image.open(path)) for path in files])
        images = images[..., None] if images.ndim == 3 else images
        np.savez(self.output_dir / "samples.npz", arr_0=images)
        first = torch.from_numpy(images[:64]).permute(0, 3, 1, 2).float() / 127.5 - 1
        # Rows of 8: sample_rows_grid keeps the first per_row images of each row it is given.
        grid = sample_rows_grid(list(first.split(8)), per_row=8)
        torchvision.utils.save_image(grid, self.output_dir / "grid.png")
        print(f"[signs] wrote {len(files)} samples to {self.output_dir} (PNGs, samples.npz, grid.png)")
