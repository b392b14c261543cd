"""The user's image files as a model's inputs: found, read, converted to the model's channels and size with a printed
notice, or refused with a message that says what the model expects; never converted silently."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from signs_lightning.core.errors import SignsError
from signs_lightning.data.errors import DatasetNotFoundError
from signs_lightning.data.image_folder import (
    IMAGE_EXTENSIONS,
    ToModelRange,
    find_images,
    load_image,
    pil_to_unit_tensor,
)

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


@dataclass(frozen=True)
class Geometry:
    """What a model takes: ``channels`` × ``size`` × ``size`` images; ``crop``: centre-crop other aspect ratios."""

    channels: int
    size: int
    crop: bool = False

    def describe(self) -> str:
        return f"{self.channels}-channel {self.size}x{self.size} images"


def find_inputs(sources: list[str]) -> list[Path]:
    """Image files named directly, and every image in named folders (recursively), in the order given."""
    paths: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            try:
                paths.extend(find_images(path))
            except DatasetNotFoundError:
                raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder {path}") from None
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f"input {path} does not exist: pass image files or folders of images")
    return paths


def output_names(paths: list[Path]) -> list[str]:
    """One distinct file stem per input (``a.png``, ``a.jpg`` in one run would overwrite each other: refused)."""
    names = [path.stem for path in paths]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise SignsError(
            f"several inputs are named {', '.join(clashes)} (different folders or extensions): rename them"
        )
    return names


def read_image(path: Path, geometry: Geometry, notices: list[str], greyscale: bool = False) -> Tensor:
    """``path`` as (C, S, S) in [-1, 1] for ``geometry`` (C = 1 when ``greyscale``), each conversion noted.

    Channels: colour → greyscale (PIL's luma) for 1-channel models or ``greyscale``; greyscale → repeated for
    3-channel models; transparency composited over white. Size: same aspect ratio → resized; another aspect ratio
    → centre-cropped when ``geometry.crop``, else refused.
    """
    channels = 1 if greyscale else geometry.channels
    with Image.open(path) as image:
        width, height, mode = image.width, image.height, image.mode
        transparent = "A" in mode or "a" in mode or "transparency" in image.info
    grey = mode in _GREY_MODES
    changes = []
    if channels == 1 and not grey:
        changes.append(f"{mode} converted to greyscale")
    if channels == 3 and grey:
        changes.append("greyscale repeated to 3 channels")
    if transparent:
        changes.append("transparency composited over white")
    changes += _size_changes(f"image {path}", width, height, geometry)
    if changes:
        notices.append(f"{path.name}: {'; '.join(changes)}")
    return ToModelRange(geometry.size)(load_image(path, channels))


def read_mask(path: Path, geometry: Geometry, notices: list[str]) -> Tensor:
    """A mask file as (1, S, S) in {0, 1}: 1 where it is white (≥ 50% grey), the pixels to fill."""
    with Image.open(path) as image:
        image.load()
        changes = _size_changes(f"mask {path}", image.width, image.height, geometry)
        unit = pil_to_unit_tensor(image, 1)
    if changes:
        notices.append(f"mask {path.name}: {'; '.join(changes)} (then thresholded at 50%)")
    fill = (ToModelRange(geometry.size)(unit) >= 0).float()
    if not fill.any():
        raise SignsError(f"mask {path} marks no pixel to fill: white (or light) pixels are filled, black ones kept")
    return fill


def box_mask(box: str, geometry: Geometry) -> Tensor:
    """``"x0,y0,x1,y1"`` (pixels of the model's size, x1 and y1 excluded) → a (1, S, S) mask, 1 inside."""
    try:
        x0, y0, x1, y1 = (int(value) for value in box.split(","))
    except ValueError:
        raise SignsError(f"--box {box!r}: expected four integers x0,y0,x1,y1") from None
    size = geometry.size
    if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
        raise SignsError(
            f"--box {box!r} is not a non-empty box inside the model's {size}x{size} images: "
            f"need 0 <= x0 < x1 <= {size} and 0 <= y0 < y1 <= {size} (inputs are resized to {size}x{size} first)"
        )
    fill = torch.zeros(1, size, size)
    fill[:, y0:y1, x0:x1] = 1
    return fill


def _size_changes(what: str, width: int, height: int, geometry: Geometry) -> list[str]:
    size = geometry.size
    if width == height == size:
        return []
    if width == height:
        return [f"{width}x{height} resized to {size}x{size}"]
    if geometry.crop:
        return [f"{width}x{height} resized and centre-cropped to {size}x{size}"]
    raise SignsError(
        f"{what} is {width}x{height} but the model takes {geometry.describe()}: crop it to a square, "
        "or pass --crop to centre-crop it"
    )
