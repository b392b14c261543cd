"""Write tiny dataset trees in the exact on-disk formats the real readers expect (no download, no real data)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import calculate_md5

CIFAR_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CELEBA_SIZE = (178, 218)  # (width, height) of the aligned images
CELEBA_ATTRIBUTES = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs"] + [
    f"Attribute_{i}" for i in range(34)
]
LANDMARK_COLUMNS = (
    "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
)


@dataclass
class CifarTree:
    """What ``write_cifar10_tree`` wrote: rows as stored (n, 3072) uint8 R, G, B planes, and their labels."""

    dataset_class: type[CIFAR10]
    train_data: np.ndarray
    train_labels: list[int]
    test_data: np.ndarray
    test_labels: list[int]


def write_cifar10_tree(root: Path, per_batch: int = 4, n_test: int = 8, seed: int = 0) -> CifarTree:
    """``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` as the official pickles.

    Returns a torchvision ``CIFAR10`` subclass whose md5 tables describe these files, so the DataModule's checker
    and torchvision's own integrity check both run on them.
    """
    rng = np.random.default_rng(seed)
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True, exist_ok=True)

    def write_batch(name: str, n: int) -> tuple[np.ndarray, list[int]]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        filenames = [f"{name}_{i}.png" for i in range(n)]
        batch = {"batch_label": name, "labels": labels, "data": data, "filenames": filenames}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        return data, labels

    train = [write_batch(f"data_batch_{i}", per_batch) for i in range(1, 6)]
    test_data, test_labels = write_batch("test_batch", n_test)
    meta = {"label_names": CIFAR_LABEL_NAMES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))

    def md5(name: str) -> str:
        return calculate_md5(folder / name)

    tiny = type(
        "TinyCIFAR10",
        (CIFAR10,),
        {
            "train_list": [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)],
            "test_list": [["test_batch", md5("test_batch")]],
            "meta": {**CIFAR10.meta, "md5": md5("batches.meta")},
        },
    )
    return CifarTree(
        tiny, np.concatenate([d for d, _ in train]), sum((lab for _, lab in train), []), test_data, test_labels
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
