"""CIFAR-10, CelebA-64 and image-folder DataModules on tiny trees written in the real on-disk formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from data_trees import CELEBA_SIZE, write_celeba_tree, write_cifar10_tree, write_mixed_image_folder
from jsonargparse import ArgumentParser
from PIL import Image
from torchvision.datasets import CelebA

from signs_lightning.data import (
    CELEBA_CROP,
    CelebA64DataModule,
    CIFAR10DataModule,
    CorruptDatasetError,
    DatasetNotFoundError,
    EmbeddedMNISTDataModule,
    ImageDataModule,
    ImageFolderDataModule,
    NoTestSplit,
    check_matches_model,
)
from signs_lightning.data.image_folder import load_image
from signs_lightning.run.config_layers import config_files

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def assert_batch(batch: tuple[torch.Tensor, torch.Tensor], size: int, channels: int, image_size: int) -> None:
    images, labels = batch
    assert images.shape == (size, channels, image_size, image_size)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64 and labels.shape == (size,)
    assert images.min() >= -1 and images.max() <= 1
    assert images.min() < -0.2 and images.max() > 0.2  # centred on 0: served in [-1, 1], not [0, 1]


def assert_flips_only_in_train(train, plain, index: int) -> None:
    """``train[index]`` is ``plain[index]`` or its mirror, and both occur; ``plain`` never changes."""
    reference = plain[index][0]
    torch.manual_seed(0)
    seen = set()
    for _ in range(24):
        image = train[index][0]
        if torch.equal(image, reference):
            seen.add("same")
        elif torch.equal(image, reference.flip(-1)):
            seen.add("flipped")
        else:
            raise AssertionError("a training item is neither the reference image nor its mirror")
    assert seen == {"same", "flipped"}
    assert all(torch.equal(plain[index][0], reference) for _ in range(8))


# --------------------------------------------------------------------------------------------------- CIFAR-10


class TestCIFAR10:
    @pytest.fixture
    def tree(self, tmp_path):
        return write_cifar10_tree(tmp_path, per_batch=4, n_test=8)

    def module(self, tree, tmp_path, **kwargs) -> CIFAR10DataModule:
        tiny = type("TinyCIFAR10DataModule", (CIFAR10DataModule,), {"dataset_class": tree.dataset_class})
        return tiny(root=str(tmp_path), batch_size=4, val_size=5, **kwargs)

    def test_batches_splits_and_pixels(self, tree, tmp_path):
        dm = self.module(tree, tmp_path)
        dm.prepare_data()
        dm.setup("fit")
        assert (len(dm.train_set), len(dm.val_set), len(dm.reference_set)) == (20, 5, 20)
        assert_batch(next(iter(dm.train_dataloader())), 4, 3, 32)
        assert_batch(next(iter(dm.val_dataloader())), 4, 3, 32)
        # The reference set is the train split in file order, pixels exact: R, G, B planes of each 3072-byte row.
        images, labels = next(iter(dm.reference_dataloader()))
        expected = torch.from_numpy(tree.train_data[:4].reshape(4, 3, 32, 32)).float() / 127.5 - 1
        torch.testing.assert_close(images, expected, atol=1e-6, rtol=0)
        assert labels.tolist() == tree.train_labels[:4]
        # Validation comes from test_batch, seeded.
        for position, row in enumerate(dm.val_set.indices):
            image, label = dm.val_set[position]
            expected = torch.from_numpy(tree.test_data[row].reshape(3, 32, 32)).float() / 127.5 - 1
            torch.testing.assert_close(image, expected, atol=1e-6, rtol=0)
            assert label == tree.test_labels[row]
        again = self.module(tree, tmp_path)
        again.setup()
        assert again.val_set.indices == dm.val_set.indices
        other = self.module(tree, tmp_path, split_seed=1)
        other.setup()
        assert other.val_set.indices != dm.val_set.indices
        assert dm.reference_key() == "cifar10-train-3x32"

    def test_flips_only_in_train(self, tree, tmp_path):
        dm = self.module(tree, tmp_path)
        dm.setup()
        assert_flips_only_in_train(dm.train_set, dm.reference_set, 3)
        assert all(torch.equal(dm.val_set[1][0], dm.val_set[1][0]) for _ in range(8))
        no_flip = self.module(tree, tmp_path, random_flip=False)
        no_flip.setup()
        assert all(torch.equal(no_flip.train_set[3][0], dm.reference_set[3][0]) for _ in range(8))

    def test_resized(self, tree, tmp_path):
        dm = self.module(tree, tmp_path, image_size=16)
        dm.setup()
        assert_batch(next(iter(dm.train_dataloader())), 4, 3, 16)
        assert dm.reference_key() == "cifar10-train-3x16"

    def test_missing_data_names_layout_and_flag(self, tmp_path):
        dm = CIFAR10DataModule(root=str(tmp_path / "nowhere"))
        dm.prepare_data()  # download=False: nothing to do, no error
        with pytest.raises(DatasetNotFoundError) as info:
            dm.setup()
        message = str(info.value)
        for part in (
            "cifar-10-batches-py",
            "data_batch_1",
            "test_batch",
            "batches.meta",
            str(tmp_path / "nowhere"),
            "data.init_args.download: true",
        ):
            assert part in message

    def test_corrupt_batch_file_is_named(self, tree, tmp_path):
        (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x02truncated pickle")
        with pytest.raises(CorruptDatasetError) as info:
            self.module(tree, tmp_path).setup()
        assert "data_batch_3" in str(info.value) and "md5" in str(info.value)
        assert "data.init_args.download: true" in str(info.value)

    def test_production_md5_table_rejects_other_files(self, tree, tmp_path):
        # The real module checks torchvision's official md5s: the tiny tree is not the real CIFAR-10.
        with pytest.raises(CorruptDatasetError, match="data_batch_1.*c99cafc152244af753f735de768cd75f"):
            CIFAR10DataModule(root=str(tmp_path)).setup()

    def test_download_skipped_when_present_and_failure_explained(self, tree, tmp_path):
        self.module(tree, tmp_path, download=True).prepare_data()  # md5s match: torchvision downloads nothing
        unreachable = type("Unreachable", (tree.dataset_class,), {"url": "http://127.0.0.1:9/cifar-10-python.tar.gz"})
        dm = type("OfflineCIFAR10DataModule", (CIFAR10DataModule,), {"dataset_class": unreachable})(
            root=str(tmp_path / "empty"), download=True
        )
        with pytest.raises(RuntimeError) as info:
            dm.prepare_data()
        assert "127.0.0.1:9" in str(info.value) and "data.init_args.download: false" in str(info.value)


# ------------------------------------------------------------------------------------------------------ CelebA


class CelebAMd5Free(CelebA):
    """torchvision's own reader with the md5s dropped, to read the tiny tree as torchvision would."""

    file_list = [(file_id, None, name) for file_id, _, name in CelebA.file_list]


class TestCelebA64:
    def test_batches_and_official_splits(self, tmp_path):
        names = write_celeba_tree(tmp_path, counts=(6, 3, 2))
        dm = CelebA64DataModule(root=str(tmp_path), batch_size=3)
        dm.prepare_data()
        dm.setup("fit")
        assert (len(dm.train_set), len(dm.val_set), len(dm.reference_set)) == (6, 3, 6)
        assert_batch(next(iter(dm.train_dataloader())), 3, 3, 64)
        assert_batch(next(iter(dm.val_dataloader())), 3, 3, 64)
        assert next(iter(dm.reference_dataloader()))[1].tolist() == [-1, -1, -1]
        # The same files, in the same order, as torchvision's CelebA selects for each split.
        for split, dataset in (("train", dm.train_set), ("valid", dm.val_set)):
            torchvision_names = CelebAMd5Free(str(tmp_path), split=split, target_type=[]).filename
            assert [path.name for path in dataset.paths] == torchvision_names
        assert [path.name for path in dm.val_set.paths] == names[1]
        assert dm.reference_key() == "celeba64-train-3x64"

    def test_hand_extracted_folder_and_val_subset(self, tmp_path):
        write_celeba_tree(tmp_path, counts=(4, 5, 1), partition_only=True)
        dm = CelebA64DataModule(root=str(tmp_path), batch_size=2, val_size=2, download=True)
        dm.prepare_data()  # images and partition file present: no download attempt (it would fail offline)
        dm.setup()
        assert (len(dm.train_set), len(dm.val_set)) == (4, 2)
        assert_batch(next(iter(dm.val_dataloader())), 2, 3, 64)

    def test_crop_box_and_flips(self, tmp_path):
        names = write_celeba_tree(tmp_path, counts=(2, 1, 0))
        top, left, height, width = CELEBA_CROP
        box = np.zeros((CELEBA_SIZE[1], CELEBA_SIZE[0], 3), dtype=np.uint8)
        box[top : top + height, left : left + width] = 255
        Image.fromarray(box).save(tmp_path / "celeba" / "img_align_celeba" / names[0][0], quality=100)
        dm = CelebA64DataModule(root=str(tmp_path))
        dm.setup()
        index = [path.name for path in dm.reference_set.paths].index(names[0][0])
        assert dm.reference_set[index][0].min() > 0.8  # exactly the white box, nothing of the black border
        shifted = CelebA64DataModule(root=str(tmp_path), crop=(top + 16, left, height, width))
        shifted.setup()
        assert shifted.reference_set[index][0].min() < -0.8
        assert shifted.reference_key() != dm.reference_key()
        assert_flips_only_in_train(dm.train_set, dm.reference_set, 1 - index)

    def test_crop_outside_image_is_explained(self, tmp_path):
        write_celeba_tree(tmp_path, counts=(2, 1, 0))
        dm = CelebA64DataModule(root=str(tmp_path), crop=(150, 25, 128, 128))
        dm.setup()
        with pytest.raises(ValueError, match=r"crop box .* does not fit an image of 178x218"):
            dm.train_set[0]

    def test_missing_data_names_layout_and_flag(self, tmp_path):
        with pytest.raises(DatasetNotFoundError) as info:
            CelebA64DataModule(root=str(tmp_path)).setup()
        message = str(info.value)
        for part in (
            "img_align_celeba",
            "list_eval_partition.txt",
            str(tmp_path / "celeba"),
            "data.init_args.download: true",
            "gdown",
        ):
            assert part in message

    def test_missing_listed_image_is_named(self, tmp_path):
        names = write_celeba_tree(tmp_path, counts=(3, 1, 0), partition_only=True)
        (tmp_path / "celeba" / "img_align_celeba" / names[0][1]).unlink()
        with pytest.raises(DatasetNotFoundError, match=f"1 of the 4 .* missing .*first: {names[0][1]}"):
            CelebA64DataModule(root=str(tmp_path)).setup()

    def test_bad_partition_line_and_unreadable_image_are_named(self, tmp_path):
        names = write_celeba_tree(tmp_path, counts=(3, 1, 0), partition_only=True)
        broken = tmp_path / "celeba" / "img_align_celeba" / names[0][0]
        broken.write_bytes(b"not a jpeg")
        dm = CelebA64DataModule(root=str(tmp_path))
        dm.setup()
        with pytest.raises(CorruptDatasetError, match=f"cannot read image {broken}"):
            next(iter(dm.reference_dataloader()))
        partition = tmp_path / "celeba" / "list_eval_partition.txt"
        partition.write_text(partition.read_text() + "000099.jpg train\n")
        with pytest.raises(CorruptDatasetError, match="list_eval_partition.txt, line 5"):
            CelebA64DataModule(root=str(tmp_path)).setup()


# ------------------------------------------------------------------------------------------------ image folder


class TestImageFolder:
    @pytest.mark.parametrize("channels", [1, 3])
    def test_mixed_sizes_and_modes(self, tmp_path, channels):
        paths = write_mixed_image_folder(tmp_path / "my_faces")
        dm = ImageFolderDataModule(
            str(tmp_path / "my_faces"), image_size=16, channels=channels, batch_size=2, val_fraction=0.25
        )
        dm.setup()
        assert (len(dm.train_set), len(dm.val_set), len(dm.reference_set)) == (6, 2, 6)
        assert sorted(dm.train_set.paths + dm.val_set.paths) == paths  # hidden and non-image files skipped
        batches = list(dm.train_dataloader()) + list(dm.val_dataloader())  # every file decodes and collates
        assert len(batches) == 4
        for batch in batches:
            assert_batch(batch, 2, channels, 16)
            assert batch[1].tolist() == [-1, -1]
        assert dm.name == "imagefolder-my_faces"
        assert dm.reference_key().startswith("imagefolder-my_faces-")
        assert dm.reference_key().endswith(f"-train-{channels}x16")

    def test_sixteen_bit_and_alpha_are_converted_not_clipped(self, tmp_path):
        Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(tmp_path / "mid.png")
        assert Image.open(tmp_path / "mid.png").mode == "I;16"
        torch.testing.assert_close(load_image(tmp_path / "mid.png", 3), torch.full((3, 8, 8), 32768 / 65535))
        rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black
        Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
        assert torch.equal(load_image(tmp_path / "clear.png", 1), torch.ones(1, 4, 4))

    def test_split_is_seeded_and_flips_only_in_train(self, tmp_path):
        write_mixed_image_folder(tmp_path)
        first = ImageFolderDataModule(str(tmp_path), image_size=16, channels=3, val_fraction=0.25, random_flip=True)
        again = ImageFolderDataModule(str(tmp_path), image_size=16, channels=3, val_fraction=0.25, random_flip=True)
        other = ImageFolderDataModule(str(tmp_path), image_size=16, channels=3, val_fraction=0.25, split_seed=3)
        for dm in (first, again, other):
            dm.setup()
        assert first.val_set.paths == again.val_set.paths != other.val_set.paths
        assert_flips_only_in_train(first.train_set, first.reference_set, 0)

    def test_empty_folder_names_folder_and_extensions(self, tmp_path):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "readme.txt").write_text("no images here")
        with pytest.raises(DatasetNotFoundError) as info:
            ImageFolderDataModule(str(tmp_path / "empty"), image_size=16, channels=3).setup()
        assert str(tmp_path / "empty") in str(info.value)
        assert all(ext in str(info.value) for ext in (".png", ".jpg", ".jpeg", ".webp"))
        with pytest.raises(DatasetNotFoundError, match="does not exist"):
            ImageFolderDataModule(str(tmp_path / "absent"), image_size=16, channels=3).setup()

    @pytest.mark.parametrize("damage", ["signature only", "cut-off jpeg"])
    def test_unreadable_image_is_named_at_setup(self, tmp_path, damage):
        write_mixed_image_folder(tmp_path)
        if damage == "signature only":
            broken = tmp_path / "faces" / "broken.png"
            broken.write_bytes(b"\x89PNG\r\n\x1a\n but nothing after the signature")
        else:  # a copy interrupted half-way: the header parses, the pixels end early
            broken = tmp_path / "faces" / "cut.jpg"
            Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(broken)
            broken.write_bytes(broken.read_bytes()[:-200])
        dm = ImageFolderDataModule(str(tmp_path), image_size=16, channels=3, val_fraction=0.5)
        # At setup, before any batch: not when a worker first reads the file, possibly mid-epoch.
        with pytest.raises(CorruptDatasetError, match=f"cannot read image {broken}"):
            dm.setup()


# ----------------------------------------------------------------- test splits: `signs test` never re-scores val
# test_dataloader used to return the validation loader, so `signs test` printed `signs validate`'s numbers.


def rows(dataset) -> set[bytes]:
    """Each image of a TensorDataset as bytes, to compare splits by content."""
    return {image.numpy().tobytes() for image in dataset.tensors[0]}


def test_mnist_test_split_is_held_out_apart_from_an_unchanged_validation_split():
    default = EmbeddedMNISTDataModule(image_size=8, batch_size=16)
    held_out = EmbeddedMNISTDataModule(image_size=8, batch_size=16, test_per_class=50)
    default.setup()
    held_out.setup()
    assert [len(held_out.train_set), len(held_out.val_set), len(held_out.test_set)] == [4000, 500, 500]
    # Validation keeps the digits (and order) it always had, which the committed validation results were scored on.
    for before, after in zip(default.val_set.tensors, held_out.val_set.tensors):
        assert torch.equal(before, after)
    test, val, train = rows(held_out.test_set), rows(held_out.val_set), rows(held_out.train_set)
    assert len(test) == 500 and not test & val and not test & train
    assert held_out.test_set.tensors[1].bincount().tolist() == [50] * 10
    first_test, first_val = next(iter(held_out.test_dataloader())), next(iter(held_out.val_dataloader()))
    assert not torch.equal(first_test[0], first_val[0])
    assert held_out.reference_set is held_out.train_set
    # Another split has other reference images: its FID statistics are cached under another key.
    assert default.reference_key() == "mnist5k-train-1x8"
    assert held_out.reference_key() == "mnist5k-train-1x8-val50-test50-seed0"


def test_mnist_without_a_test_split_refuses_to_test_instead_of_scoring_validation():
    dm = EmbeddedMNISTDataModule(image_size=8)
    dm.setup()
    assert dm.test_set is None and len(dm.train_set) == 4500  # the training set of every run so far
    with pytest.raises(NoTestSplit, match="has no test split .* data.init_args.test_per_class"):
        dm.test_dataloader()
    with pytest.raises(ValueError, match=r"val_per_class \+ test_per_class < 500"):
        EmbeddedMNISTDataModule(val_per_class=50, test_per_class=450)


def test_cifar10_tests_on_the_test_batch_images_validation_does_not_use(tmp_path):
    tree = write_cifar10_tree(tmp_path, per_batch=4, n_test=8)
    tiny = type("TinyCIFAR10DataModule", (CIFAR10DataModule,), {"dataset_class": tree.dataset_class})
    dm = tiny(root=str(tmp_path), batch_size=4, val_size=5)
    dm.setup()
    # Validation is what it was: the first val_size of the seeded permutation of test_batch.
    assert dm.val_set.indices == sorted(torch.randperm(8, generator=torch.Generator().manual_seed(0))[:5].tolist())
    assert sorted(dm.test_set.indices + dm.val_set.indices) == list(range(8))
    for position, row in enumerate(dm.test_set.indices):
        expected = torch.from_numpy(tree.test_data[row].reshape(3, 32, 32)).float() / 127.5 - 1
        torch.testing.assert_close(dm.test_set[position][0], expected, atol=1e-6, rtol=0)
    assert_batch(next(iter(dm.test_dataloader())), 3, 3, 32)
    everything = tiny(root=str(tmp_path), val_size=8)
    everything.setup()
    with pytest.raises(NoTestSplit, match="val_size=8 takes them all; lower data.init_args.val_size"):
        everything.test_dataloader()


def test_celeba_tests_on_the_official_test_partition(tmp_path):
    names = write_celeba_tree(tmp_path, counts=(6, 3, 2))
    dm = CelebA64DataModule(root=str(tmp_path), batch_size=2)
    dm.setup()
    assert [path.name for path in dm.test_set.paths] == names[2]
    assert [path.name for path in dm.test_set.paths] == CelebAMd5Free(
        str(tmp_path), split="test", target_type=[]
    ).filename
    assert_batch(next(iter(dm.test_dataloader())), 2, 3, 64)
    without = tmp_path / "without"
    write_celeba_tree(without, counts=(2, 1, 0))
    no_test = CelebA64DataModule(root=str(without))
    no_test.setup()
    with pytest.raises(NoTestSplit, match=r"lists no test \(2\) images"):
        no_test.test_dataloader()


def test_image_folder_test_fraction_holds_files_out_of_training(tmp_path):
    paths = write_mixed_image_folder(tmp_path)
    plain = ImageFolderDataModule(str(tmp_path), image_size=16, channels=3, val_fraction=0.25)
    held_out = ImageFolderDataModule(str(tmp_path), image_size=16, channels=3, val_fraction=0.25, test_fraction=0.25)
    plain.setup()
    held_out.setup()
    assert held_out.val_set.paths == plain.val_set.paths
    assert (len(held_out.train_set), len(held_out.val_set), len(held_out.test_set)) == (4, 2, 2)
    assert sorted(held_out.train_set.paths + held_out.val_set.paths + held_out.test_set.paths) == paths
    assert held_out.reference_key() != plain.reference_key()
    with pytest.raises(NoTestSplit, match="data.init_args.test_fraction"):
        plain.test_dataloader()


# ----------------------------------------------------------------------------------------- model compatibility


def test_check_matches_model_names_both_sides(tmp_path):
    cifar = CIFAR10DataModule(root=str(tmp_path))
    check_matches_model(cifar, 3, 32, "google/ddpm-cifar10-32")
    with pytest.raises(ValueError) as info:
        check_matches_model(cifar, 1, 32, "teachers/mnist")
    message = str(info.value)
    assert "CIFAR10DataModule serves 3x32x32" in message and "teachers/mnist expects 1x32x32" in message
    assert "cannot change its channels" in message
    folder = ImageFolderDataModule(str(tmp_path), image_size=16, channels=3)
    fix = "expects 1x32x32: set data.init_args.channels: 1 and data.init_args.image_size: 32"
    with pytest.raises(ValueError, match=fix):
        check_matches_model(folder, 1, 32, "google/ddpm-cifar10-32")


@pytest.mark.parametrize(
    ("config", "data_class", "batch_size"),
    [
        ("sign_cifar10.yaml", CIFAR10DataModule, 128),
        ("sign_cifar10_dmd.yaml", CIFAR10DataModule, 128),
        ("sign_cifar10_all_terms.yaml", CIFAR10DataModule, 128),
        ("teacher_celeba64.yaml", CelebA64DataModule, 128),
        ("sign_celeba64.yaml", CelebA64DataModule, 64),
        ("sign_celeba64_dmd.yaml", CelebA64DataModule, 64),
    ],
)
def test_config_data_sections_instantiate(config, data_class, batch_size):
    """The data sections of the experiment and its layers (``# bases:``), each overriding the one before."""
    parser = ArgumentParser()
    parser.add_subclass_arguments(ImageDataModule, "data")
    parsed = None
    for path in config_files(CONFIGS / config):
        section = yaml.safe_load(path.read_text()).get("data")
        if section:
            parsed = parser.parse_object({"data": section}, namespace=parsed)
    data = parser.instantiate_classes(parsed).data
    assert type(data) is data_class and data.channels == 3 and data.batch_size == batch_size
    assert data.image_size == (32 if data_class is CIFAR10DataModule else 64)
    if data_class is CelebA64DataModule:
        assert data.crop == CELEBA_CROP
