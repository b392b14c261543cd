"""Stand-in datasets in the real on-disk formats, for rehearsing a shipped config without its data (no download, no
real images): ``scripts/rehearse.py``, ``scripts/gpu_check.py`` and the tests write them."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import calculate_md5

CIFAR_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass
class CifarTree:
    """What ``write_cifar10_tree`` wrote: rows as stored (n, 3072) uint8 R, G, B planes, and their labels."""

    dataset_class: type[CIFAR10]
    train_data: np.ndarray
    train_labels: list[int]
    test_data: np.ndarray
    test_labels: list[int]


def described_cifar10(root: Path) -> type[CIFAR10]:
    """A torchvision ``CIFAR10`` whose md5 tables describe the files under ``root/cifar-10-batches-py`` (torchvision
    refuses files whose md5s differ from the official archive's)."""
    folder = Path(root) / CIFAR10.base_folder

    def md5(name: str) -> str:
        return calculate_md5(folder / name)

    return type(
        "DescribedCIFAR10",
        (CIFAR10,),
        {
            "train_list": [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)],
            "test_list": [["test_batch", md5("test_batch")]],
            "meta": {**CIFAR10.meta, "md5": md5("batches.meta")},
        },
    )


def write_cifar10_tree(root: Path, per_batch: int = 4, n_test: int = 8, seed: int = 0) -> CifarTree:
    """``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` as the official pickles, random
    pixels and labels.

    Returns, with what was written, a torchvision ``CIFAR10`` subclass whose md5 tables describe these files
    (``described_cifar10``), so the DataModule's checker and torchvision's own integrity check both run on them.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR10.base_folder
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
    return CifarTree(
        described_cifar10(root),
        np.concatenate([d for d, _ in train]),
        sum((lab for _, lab in train), []),
        test_data,
        test_labels,
    )
