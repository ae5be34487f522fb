"""budgetnet.training.data: every source from files written here, splits, augmentation, bad input."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.datasets import load_digits

from budgetnet.training.augment import center_crop, five_crop, pca_lighting, random_crop, random_flip
from budgetnet.training.data import Dataset, from_tensors, load_data
from budgetnet.training.readers import read_idx
from budgetnet.errors import BudgetNetError, DataError


def unnormalise(data: Dataset, images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(data.mean)[:, None, None]
    std = torch.tensor(data.std)[:, None, None]
    return images * std + mean


# -- digits ---------------------------------------------------------------------------------------
def test_digits_default_size_split_and_counts():
    data = load_data("digits")
    assert data.input_shape == (1, 16, 16)
    assert data.num_classes == 10
    sizes = len(data.train), len(data.val), len(data.test)
    assert sum(sizes) == 1797  # scikit-learn's digits
    assert len(data.test) == pytest.approx(0.2 * 1797, abs=10)
    assert len(data.val) == pytest.approx(0.2 * 0.8 * 1797, abs=10)
    for split in (data.train, data.val, data.test):
        counts = torch.bincount(split.labels, minlength=10).float()
        assert counts.min() > 0
        assert (counts / counts.sum()).max() < 0.12  # stratified: ~10 % each
    assert data.augment == {"crop": True, "padding": 2, "flip": False, "color": 0.0}
    assert data.train.images.dtype == torch.float32 and data.train.labels.dtype == torch.int64
    pixels = data.train.images
    assert abs(float(pixels.mean())) < 1e-4 and abs(float(pixels.std()) - 1) < 1e-3


def test_digits_native_size_keeps_the_pixels_and_labels():
    data = load_data("digits", image_size=8)
    digits = load_digits()
    originals = {(tuple((image / 16).round(decimals=4).flatten().tolist()), int(label))
                 for image, label in zip(digits.images, digits.target)}  # fmt: skip
    images = unnormalise(data, data.test.images).round(decimals=4)
    for image, label in zip(images[:50], data.test.labels[:50]):
        assert (tuple(image.flatten().tolist()), int(label)) in originals


def test_digits_splits_follow_the_seed():
    first, again, other = load_data("digits", seed=1), load_data("digits", seed=1), load_data("digits", seed=2)
    assert torch.equal(first.train.labels, again.train.labels)
    assert torch.equal(first.test.images, again.test.images)
    assert not torch.equal(first.test.labels, other.test.labels)


def test_limit_caps_training_images_stratified():
    data = load_data("digits", limit=100)
    assert len(data.train) == 100
    assert torch.bincount(data.train.labels, minlength=10).min() >= 8


def three_classes_of_30():
    """90 images, 30 per class, an explicit test split: val_fraction 0.2 holds out 6 per class,
    leaving 24 per class (72) for training."""
    labels = torch.arange(90) % 3
    images = torch.rand(90, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    return images, labels, {"test_images": images[:9], "test_labels": labels[:9]}


def test_limit_gives_exactly_that_many_shared_by_largest_remainder():
    images, labels, test = three_classes_of_30()
    data = from_tensors(images, labels, **test, limit=40)
    # 40 of 72 in proportion: 13.33 per class; floors 13+13+13 = 39, the one left to the first class
    # (rounding each class, as before, gave 39)
    assert torch.bincount(data.train.labels).tolist() == [14, 13, 13]
    assert len(data.val) == 18 and len(data.test) == 9


def test_val_limit_keeps_exactly_that_many_and_leaves_the_other_splits():
    images, labels, test = three_classes_of_30()
    whole = from_tensors(images, labels, **test, limit=40)
    data = from_tensors(images, labels, **test, limit=40, val_limit=4)
    assert torch.bincount(data.val.labels).tolist() == [2, 1, 1]  # 4 of 18: 1.33 per class
    assert torch.equal(data.train.images, whole.train.images) and torch.equal(data.test.labels, whole.test.labels)
    assert load_data("digits", val_limit=100).to_dict()["sizes"]["val"] == 100


def test_val_limit_over_the_split_warns_and_keeps_it_all():
    images, labels, test = three_classes_of_30()
    with pytest.warns(UserWarning, match=r"val_limit=50 is more than the 18 images of the validation split of "
                                         r"'tensors': validating on all 18"):  # fmt: skip
        data = from_tensors(images, labels, **test, val_limit=50)
    assert len(data.val) == 18


# -- IDX --------------------------------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(folder, prefix, images, labels, compress):
    suffix = ".gz" if compress else ""
    opener = gzip.open if compress else open
    with opener(folder / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as handle:
        handle.write(idx_bytes(images))
    with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as handle:
        handle.write(idx_bytes(labels))


@pytest.mark.parametrize("compress", [False, True])
def test_idx_directory(tmp_path, compress):
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, (30, 5, 6), dtype=np.uint8)
    train_labels = (np.arange(30) % 3).astype(np.uint8)
    test_images = rng.integers(0, 256, (6, 5, 6), dtype=np.uint8)
    test_labels = (np.arange(6) % 3).astype(np.uint8)
    write_idx(tmp_path, "train", train_images, train_labels, compress)
    write_idx(tmp_path, "t10k", test_images, test_labels, compress)
    data = load_data(f"idx:{tmp_path}", val_fraction=0.2)
    assert data.input_shape == (1, 5, 6) and data.num_classes == 3
    assert (len(data.train), len(data.val), len(data.test)) == (24, 6, 6)
    assert torch.equal(data.test.labels, torch.from_numpy(test_labels).long())
    restored = unnormalise(data, data.test.images)[:, 0] * 255
    assert torch.allclose(restored, torch.from_numpy(test_images).float(), atol=1e-3)


def test_read_idx_reads_other_element_types(tmp_path):
    array = np.arange(-3, 3, dtype=">i4").reshape(2, 3)
    (tmp_path / "ints").write_bytes(idx_bytes(array))
    assert np.array_equal(read_idx(tmp_path / "ints"), array)


def test_idx_without_test_files_holds_out_test_fraction(tmp_path):
    write_idx(tmp_path, "train", np.zeros((40, 4, 4), np.uint8), (np.arange(40) % 2).astype(np.uint8), False)
    data = load_data(f"idx:{tmp_path}", test_fraction=0.25)
    assert len(data.test) == 10 and len(data.train) + len(data.val) == 30


def test_idx_wrong_format_names_the_file(tmp_path):
    write_idx(tmp_path, "train", np.zeros((4, 4, 4), np.uint8), np.zeros(4, np.uint8), False)
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"PNG not an idx file")
    with pytest.raises(DataError, match="has no IDX header") as error:
        load_data(f"idx:{tmp_path}")
    assert str(bad) in str(error.value)


def test_idx_truncated_file(tmp_path):
    write_idx(tmp_path, "train", np.zeros((4, 4, 4), np.uint8), np.zeros(4, np.uint8), False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"holds 59 data bytes; expected 64 for shape \(4, 4, 4\)"):
        load_data(f"idx:{tmp_path}")


def test_idx_mismatched_label_count(tmp_path):
    write_idx(tmp_path, "train", np.zeros((4, 4, 4), np.uint8), np.zeros(3, np.uint8), False)
    with pytest.raises(DataError, match="expected 4 integer labels"):
        load_data(f"idx:{tmp_path}")


def test_idx_test_label_outside_the_class_range(tmp_path):
    write_idx(tmp_path, "train", np.zeros((10, 4, 4), np.uint8), (np.arange(10) % 2).astype(np.uint8), False)
    write_idx(tmp_path, "t10k", np.zeros((2, 4, 4), np.uint8), np.array([0, 7], np.uint8), False)
    with pytest.raises(DataError, match=r"test label 7 is outside the class range; expected 0 \.\. 1 \(2 classes\)"):
        load_data(f"idx:{tmp_path}")


def test_idx_directory_without_files(tmp_path):
    with pytest.raises(DataError, match="has no IDX training files; expected train-images-idx3-ubyte"):
        load_data(f"idx:{tmp_path}")


# -- CIFAR ------------------------------------------------------------------------------------------
def write_cifar10(folder, per_batch=6, label_of=lambda i: i % 10):
    rng = np.random.default_rng(1)
    batches = []
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [label_of(i) for i in range(per_batch)]
        with open(folder / name, "wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, handle)
        batches.append((data, labels))
    names = [f"class{i}".encode() for i in range(10)]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, handle)
    return batches


def test_cifar10_batches(tmp_path):
    batches = write_cifar10(tmp_path, per_batch=20)
    data = load_data(f"cifar:{tmp_path}", val_fraction=0.25)
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert data.classes[3] == "class3"
    assert (len(data.train) + len(data.val), len(data.test)) == (40, 20)
    assert data.augment == {"crop": True, "padding": 4, "flip": True, "color": 0.1}
    test_data, test_labels = batches[2]
    restored = unnormalise(data, data.test.images) * 255
    # CIFAR rows are the red plane, then green, then blue, each 32 x 32 row-major
    for image in (0, 7):
        for channel, y, x in ((0, 0, 0), (1, 5, 9), (2, 31, 30)):
            expected = test_data[image, channel * 1024 + y * 32 + x]
            assert float(restored[image, channel, y, x]) == pytest.approx(expected, abs=1e-3)
    assert data.test.labels.tolist() == test_labels


def test_cifar100_layout(tmp_path):
    rng = np.random.default_rng(2)
    for name, count in (("train", 12), ("test", 4)):
        record = {b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                  b"fine_labels": [i % 100 for i in range(0, count * 9, 9)], b"coarse_labels": [0] * count}  # fmt: skip
        with open(tmp_path / name, "wb") as handle:
            pickle.dump(record, handle)
    data = load_data(f"cifar:{tmp_path}", val_fraction=0.25)
    assert data.num_classes == 100 and len(data.test) == 4


class Exploit:
    """Unpickling this would create a file: the loader must refuse it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_cifar_unpickler_refuses_code(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "test_batch", "wb") as handle:
        pickle.dump({b"data": Exploit(str(marker)), b"labels": []}, handle)
    with pytest.raises(DataError, match="global posix.mkdir is not allowed") as error:
        load_data(f"cifar:{tmp_path}")
    assert str(tmp_path / "test_batch") in str(error.value)
    assert not marker.exists()


def test_cifar_label_outside_the_class_range(tmp_path):
    write_cifar10(tmp_path, label_of=lambda i: 10 if i == 3 else i % 10)
    with pytest.raises(DataError, match=r"train label 10 is outside the class range; expected 0 \.\. 9"):
        load_data(f"cifar:{tmp_path}")


def test_cifar_wrong_format(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot be read .*expected a CIFAR python batch") as error:
        load_data(f"cifar:{tmp_path}")
    assert "data_batch_2" in str(error.value)


def test_cifar_directory_without_batches(tmp_path):
    with pytest.raises(DataError, match="has no CIFAR batches; expected data_batch_1..5"):
        load_data(f"cifar:{tmp_path}")


# -- image folders ----------------------------------------------------------------------------------
def write_folder(root, classes=("cat", "dog"), count=4, size=(6, 5), mode="RGB"):
    rng = np.random.default_rng(3)
    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(count):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / name / f"{index}.png")


def test_folder_of_class_folders(tmp_path):
    write_folder(tmp_path, count=10)
    (tmp_path / "cat" / "notes.txt").write_text("ignored: not an image")
    data = load_data(f"folder:{tmp_path}")
    assert data.classes == ("cat", "dog") and data.num_classes == 2
    assert data.input_shape == (3, 5, 6)  # PIL sizes are width x height
    assert len(data.train) + len(data.val) + len(data.test) == 20
    assert data.augment["flip"] and data.augment["color"] == 0.1


def test_folder_pixels_and_labels_round_trip(tmp_path):
    write_folder(tmp_path, count=5, mode="L")
    data = load_data(f"folder:{tmp_path}", val_fraction=0.2, test_fraction=0.2)
    assert data.input_shape == (1, 5, 6)
    originals = {}
    for label, name in enumerate(data.classes):
        for path in (tmp_path / name).iterdir():
            pixels = np.asarray(Image.open(path), dtype=np.float32) / 255
            originals[tuple(pixels.round(4).flatten().tolist())] = label
    restored = unnormalise(data, data.train.images).round(decimals=4)
    for image, label in zip(restored, data.train.labels):
        assert originals[tuple(image.flatten().tolist())] == int(label)


def test_folder_train_test_layout(tmp_path):
    write_folder(tmp_path / "train", count=6)
    write_folder(tmp_path / "test", count=2)
    data = load_data(f"folder:{tmp_path}")
    assert len(data.test) == 4 and len(data.train) + len(data.val) == 12


def test_folder_mixed_sizes_is_an_error_unless_resized(tmp_path):
    write_folder(tmp_path, count=3)
    Image.new("RGB", (9, 9)).save(tmp_path / "dog" / "big.png")
    with pytest.raises(DataError, match=r"big.png' is 9x9 but .* is 6x5; expected one size in a folder dataset"):
        load_data(f"folder:{tmp_path}")
    assert load_data(f"folder:{tmp_path}", image_size=8).input_shape == (3, 8, 8)


def test_folder_unreadable_image(tmp_path):
    write_folder(tmp_path, count=3)
    (tmp_path / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken.png' cannot be read .*expected an image PIL can open"):
        load_data(f"folder:{tmp_path}")


def test_folder_without_class_folders(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "lonely.png")
    with pytest.raises(DataError, match="has no class folders; expected one sub-folder of images per class"):
        load_data(f"folder:{tmp_path}")


# -- in-memory tensors ----------------------------------------------------------------------------
def test_from_tensors_uint8_and_explicit_test():
    images = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)
    labels = torch.arange(20) % 2
    data = from_tensors(images, labels, test_images=images[:4], test_labels=labels[:4], val_fraction=0.5)
    assert (len(data.train), len(data.val), len(data.test)) == (10, 10, 4)
    assert torch.allclose(unnormalise(data, data.test.images) * 255, images[:4].float(), atol=1e-3)
    assert from_tensors(torch.rand(10, 4, 5), torch.arange(10) % 2).input_shape == (1, 4, 5)  # N, H, W


def test_from_tensors_label_outside_num_classes():
    with pytest.raises(DataError, match=r"train label 5 is outside the class range; expected 0 \.\. 2 \(3 classes\)"):
        from_tensors(torch.rand(10, 1, 4, 4), torch.tensor([0, 1, 2, 5, 0, 1, 2, 0, 1, 2]), num_classes=3)
    with pytest.raises(DataError, match=r"label -1 is outside the class range"):
        from_tensors(torch.rand(4, 1, 4, 4), torch.tensor([0, -1, 1, 0]), num_classes=2)


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (torch.rand(5, 4), torch.zeros(5, dtype=torch.long), r"images shape \(5, 4\) is invalid; expected N, C, H, W"),
        (torch.rand(5, 1, 4, 4), torch.zeros(4, dtype=torch.long), r"labels shape \(4,\) .* expected 5 integer labels"),
        (torch.rand(5, 1, 4, 4), torch.zeros(5), r"dtype torch.float32 is invalid; expected 5 integer labels"),
    ],
)
def test_from_tensors_bad_shapes(images, labels, message):
    with pytest.raises(DataError, match=message):
        from_tensors(images, labels)


# -- bad specs and options --------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, options, message",
    [
        ("mnist", {}, r"data='mnist' is invalid; expected one of digits, idx:PATH, cifar:PATH, folder:PATH"),
        ("idx:", {}, r"data='idx:' is invalid"),
        ("digits", {"val_fraction": 1.0}, r"val_fraction=1.0 is invalid; expected a number between 0 and 1"),
        ("digits", {"image_size": 0}, r"image_size=0 is invalid; expected an integer >= 1"),
        ("digits", {"limit": 0}, r"limit=0 is invalid; expected an integer >= 1 or None"),
        ("digits", {"val_limit": 0}, r"val_limit=0 is invalid; expected an integer >= 1 or None"),
        ("digits", {"val_limit": 2.5}, r"val_limit=2.5 is invalid; expected an integer >= 1 or None"),
        ("digits", {"crop_size": 20}, r"crop_size=20 is larger than the images \(16x16\)"),
        ("digits", {"augment": {"rotate": True}}, r"augment=\{'rotate': True\} is invalid; expected a dict with keys"),
        ("digits", {"augment": {"padding": -1}}, r"augment\['padding'\]=-1 is invalid; expected an integer >= 0"),
    ],
)
def test_bad_specs_and_options(spec, options, message):
    with pytest.raises(DataError, match=message):
        load_data(spec, **options)


@pytest.mark.parametrize("kind", ["idx", "cifar", "folder"])
def test_missing_path_names_it(tmp_path, kind):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"data path '{missing}' does not exist; expected a {kind} directory"):
        load_data(f"{kind}:{missing}")
    assert issubclass(DataError, BudgetNetError)


def test_path_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(DataError, match="is not a directory"):
        load_data(f"idx:{path}")


# -- augmentation -----------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 4),
    channels=st.integers(1, 3),
    height=st.integers(2, 7),
    width=st.integers(2, 7),
    padding=st.integers(0, 3),
    seed=st.integers(0, 1000),
)
def test_random_crop_takes_a_window_of_the_padded_image(batch, channels, height, width, padding, seed):
    images = torch.rand(batch, channels, height, width) + 1
    out = random_crop(images, (height, width), padding, torch.Generator().manual_seed(seed))
    assert out.shape == images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    for index in range(batch):
        windows = [
            padded[index, :, top : top + height, left : left + width]
            for top in range(2 * padding + 1)
            for left in range(2 * padding + 1)
        ]
        assert any(torch.equal(out[index], window) for window in windows)


def test_random_crop_from_a_larger_image():
    images = torch.arange(2 * 36.0).view(2, 1, 6, 6)
    out = random_crop(images, (4, 4), 0, torch.Generator().manual_seed(0))
    for index in range(2):
        top, left = divmod(int(out[index, 0, 0, 0]) - 36 * index, 6)
        assert torch.equal(out[index], images[index, :, top : top + 4, left : left + 4])


def test_random_flip_mirrors_about_half():
    images = torch.rand(200, 1, 3, 4)
    out = random_flip(images, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, images)]
    kept = [torch.equal(o, i) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 70 < sum(flipped) < 130


def test_pca_lighting_shifts_each_image_by_one_colour():
    images = torch.rand(5, 3, 4, 4)
    eigenvalues, eigenvectors = torch.tensor([0.5, 0.2, 0.1]), torch.eye(3)
    out = pca_lighting(images, eigenvalues, eigenvectors, 0.1, torch.Generator().manual_seed(0))
    shift = out - images
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-6)
    alpha = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(shift[:, :, 0, 0], alpha * 0.1 * eigenvalues, atol=1e-6)


def test_augment_batch_is_deterministic_and_respects_the_dataset():
    data = from_tensors(torch.rand(40, 3, 8, 8), torch.arange(40) % 2, augment={"flip": True})
    batch = data.train.images[:16]
    first = data.augment_batch(batch, torch.Generator().manual_seed(5))
    again = data.augment_batch(batch, torch.Generator().manual_seed(5))
    other = data.augment_batch(batch, torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other)
    plain = from_tensors(torch.rand(40, 1, 8, 8), torch.arange(40) % 2,
                         augment={"crop": False, "flip": False, "color": 0.0})  # fmt: skip
    assert torch.equal(plain.augment_batch(plain.train.images[:4]), plain.train.images[:4])


def test_crop_size_trains_on_crops_and_tests_on_the_centre():
    data = from_tensors(torch.rand(20, 1, 10, 10), torch.arange(20) % 2, crop_size=8)
    assert data.input_shape == (1, 8, 8) and data.stored_shape == (1, 10, 10)
    assert data.augment["crop"] and data.augment["padding"] == 0
    assert data.augment_batch(data.train.images[:3]).shape == (3, 1, 8, 8)
    (view,) = data.views(data.test.images, 1)
    assert torch.equal(view, data.test.images[:, :, 1:9, 1:9])


def test_ten_views_are_centre_corners_and_flips():
    images = torch.rand(2, 3, 6, 6)
    data = from_tensors(torch.rand(10, 3, 6, 6), torch.arange(10) % 2, augment={"flip": True, "padding": 1})
    views = data.views(images, 10)
    assert len(views) == 10
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    expected = [images, padded[..., :6, :6], padded[..., :6, 2:], padded[..., 2:, :6], padded[..., 2:, 2:]]
    for view, want in zip(views, expected + [e.flip(3) for e in expected]):
        assert torch.equal(view, want)
    digits = load_data("digits", limit=20)
    assert len(digits.views(digits.test.images[:2], 10)) == 5  # no flips for digits
    with pytest.raises(DataError, match=r"views=3 is invalid; expected 1 \(centre\) or 10"):
        data.views(images, 3)


def test_crop_helpers():
    images = torch.arange(25.0).view(1, 1, 5, 5)
    assert torch.equal(center_crop(images, (3, 3)), images[..., 1:4, 1:4])
    crops = five_crop(images, (2, 2))
    assert [float(crop[0, 0, 0, 0]) for crop in crops] == [6.0, 0.0, 3.0, 15.0, 18.0]
