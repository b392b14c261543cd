"""Write tiny dataset trees in the exact on-disk formats the real readers expect (no download, no real data); the
CIFAR-10 tree is the package's (``signs_lightning.data.synthetic``, which the rehearsal scripts use too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from signs_lightning.data.synthetic import CIFAR_LABEL_NAMES, CifarTree, write_cifar10_tree

__all__ = ["CIFAR_LABEL_NAMES", "CifarTree", "write_cifar10_tree", "write_celeba_tree", "write_mixed_image_folder"]

CELEBA_SIZE = (178, 218)  # (width, height) of the aligned images
CELEBA_ATTRIBUTES = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs"] + [
    f"Attribute_{i}" for i in range(34)
]
LANDMARK_COLUMNS = (
    "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
)


def celeba_face(rng: np.random.Generator) -> Image.Image:
    """A 178×218 RGB image, smooth and left-right asymmetric (so a flip is visible after JPEG)."""
    width, height = CELEBA_SIZE
    coarse = rng.integers(0, 256, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.BILINEAR)


def write_celeba_tree(
    root: Path, counts: tuple[int, int, int] = (6, 3, 2), partition_only: bool = False, seed: int = 0
) -> list[list[str]]:
    """``root/celeba/img_align_celeba/*.jpg`` and the list files, single-space separated as torchvision reads them.

    Args:
        counts: images in partitions 0 (train), 1 (valid), 2 (test), listed interleaved as in a real file.
        partition_only: write only ``list_eval_partition.txt`` (a hand-extracted folder), not the other four lists.

    Returns the file names of each partition.
    """
    rng = np.random.default_rng(seed)
    folder = root / "celeba"
    images = folder / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    partition_of = [p for p, n in enumerate(counts) for _ in range(n)]
    rng.shuffle(partition_of)
    names = [f"{i:06d}.jpg" for i in range(1, len(partition_of) + 1)]
    for name in names:
        celeba_face(rng).save(images / name, quality=95)
    (folder / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, partition_of)))
    if not partition_only:
        total = f"{len(names)}\n"
        (folder / "identity_CelebA.txt").write_text("".join(f"{n} {i % 3 + 1}\n" for i, n in enumerate(names)))
        (folder / "list_bbox_celeba.txt").write_text(
            total + "image_id x_1 y_1 width height\n" + "".join(f"{n} 95 71 226 313\n" for n in names)
        )
        (folder / "list_landmarks_align_celeba.txt").write_text(
            total + LANDMARK_COLUMNS + "\n" + "".join(f"{n} 69 109 106 113 77 142 73 152 108 154\n" for n in names)
        )
        attributes = rng.choice([-1, 1], size=(len(names), len(CELEBA_ATTRIBUTES)))
        (folder / "list_attr_celeba.txt").write_text(
            total
            + " ".join(CELEBA_ATTRIBUTES)
            + "\n"
            + "".join(f"{n} {' '.join(map(str, row))}\n" for n, row in zip(names, attributes))
        )
    return [[n for n, p in zip(names, partition_of) if p == k] for k in range(3)]


def write_mixed_image_folder(root: Path, seed: int = 0) -> list[Path]:
    """Eight images of different sizes, modes and formats in nested folders, plus files that must be ignored.

    Returns the image paths, sorted.
    """
    rng = np.random.default_rng(seed)
    (root / "faces" / "deeper").mkdir(parents=True, exist_ok=True)

    def noise(height: int, width: int, *channels: int) -> np.ndarray:
        return rng.integers(0, 256, size=(height, width, *channels), dtype=np.uint8)

    rgba = noise(33, 33, 4)
    rgba[:, :16, 3] = 0  # transparent left half
    sixteen = rng.integers(0, 65536, size=(20, 30), dtype=np.uint16)
    written = {
        "faces/rgb.jpg": Image.fromarray(noise(30, 40, 3)),
        "faces/deeper/grey.png": Image.fromarray(noise(50, 20)),
        "rgba.png": Image.fromarray(rgba, "RGBA"),
        "palette.gif": Image.fromarray(noise(40, 25, 3)).convert("P", palette=Image.ADAPTIVE, colors=16),
        "sixteen.png": Image.fromarray(sixteen),
        "grey_alpha.png": Image.fromarray(noise(24, 24, 2), "LA"),
        "cmyk.jpg": Image.fromarray(noise(16, 64, 4), "CMYK"),
        "faces/UPPER.PNG": Image.fromarray(noise(64, 16, 3)),
    }
    for name, image in written.items():
        image.save(root / name)
    (root / "notes.txt").write_text("not an image")
    (root / "faces" / "._rgb.jpg").write_bytes(b"macOS resource fork, not an image")
    return sorted(root / name for name in written)
