"""Datasets for training and scoring candidates: splits, input shape, classes, augmentation.

Sources (``load_data(spec)``); nothing is ever downloaded:

* ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes),
  resized to ``image_size`` (default 16) with antialiased bilinear interpolation, split
  into train / val / test, stratified by class, under ``seed``.
* ``"idx:DIR"``: MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST ...), gzipped or not:
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte`` and optionally ``t10k-*`` (or
  ``test-*``) in ``DIR``.
* ``"cifar:DIR"``: the CIFAR-10 (``data_batch_1..5``, ``test_batch``, ``batches.meta``) or
  CIFAR-100 (``train``, ``test``, ``meta``) python batches, read with an unpickler that only
  admits numpy arrays (nothing in the file is run as code).
* ``"folder:DIR"``: one sub-folder of images per class (read with PIL), or ``DIR/train`` and
  ``DIR/test`` (and optionally ``DIR/val``) each laid out that way.
* :func:`from_tensors`: images and labels already in memory.

Images are stored as float32 ``N, C, H, W``, normalised per channel with the training
split's mean and standard deviation. Where a source has no test split, ``test_fraction``
of the images is held out; the validation split is always ``val_fraction`` of the rest.

:meth:`Dataset.augment_batch` augments a training batch on its own device (random crop,
flip, PCA colour altering: :mod:`budgetnet.training.augment`) and :meth:`Dataset.views`
gives the test views: the centre, or the paper's 10 views (centre and four corners, and
their flips). The files are read by :mod:`budgetnet.training.readers`.

Example:
    >>> data = load_data("digits", seed=0)
    >>> data.input_shape, data.num_classes, len(data.train) + len(data.val) + len(data.test)
    ((1, 16, 16), 10, 1797)
    >>> data.augment
    {'crop': True, 'padding': 2, 'flip': False, 'color': 0.0}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from budgetnet.checks import check_seed, is_int
from budgetnet.errors import DataError
from budgetnet.training.augment import (
    center_crop,
    check_augment,
    color_pca,
    five_crop,
    pca_lighting,
    random_crop,
    random_flip,
)
from budgetnet.training.readers import DIGITS_PIXEL_MAX, LAYOUTS, MAX_PIXELS, READERS, Raw, read_digits, resize

SOURCES = ("digits", "idx:PATH", "cifar:PATH", "folder:PATH")
DIGITS_IMAGE_SIZE = 16


@dataclass(frozen=True, eq=False)
class Split:
    """One split: ``images`` float32 ``N, C, H, W`` (normalised) and ``labels`` int64 ``N``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return f"Split({len(self)} images of {'x'.join(map(str, self.images.shape[1:]))})"


@dataclass(eq=False)
class Dataset:
    """Train / val / test splits with their input shape, class count and augmentation.

    Attributes:
        name: where the data came from (``"digits"``, ``"idx:/data/mnist"`` ...).
        input_shape: ``(C, H, W)`` the network sees (the crop size when ``crop_size`` is set).
        num_classes: labels are ``0 .. num_classes - 1``.
        train, val, test: :class:`Split` objects.
        augment: ``{"crop": bool, "padding": int, "flip": bool, "color": float}``; ``color``
            is the standard deviation of the PCA colour coefficients (0 = off).
        mean, std: per-channel statistics of the training split used to normalise.
        classes: class names, index = label.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    train: Split
    val: Split
    test: Split
    augment: dict
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    color_pca: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def stored_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the stored images (larger than ``input_shape`` when cropping from a larger image)."""
        return tuple(self.train.images.shape[1:])

    def split(self, name: str) -> Split:
        """The split called ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in ("train", "val", "test"):
            raise DataError(f"split={name!r} is invalid; expected 'train', 'val' or 'test'")
        return getattr(self, name)

    def augment_batch(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random crop, flip and colour altering of one training batch, on its own device.

        ``generator`` must live on the batch's device; the same generator state gives the
        same output.

        Example:
            >>> data = load_data("digits", limit=64)
            >>> generator = torch.Generator().manual_seed(0)
            >>> data.augment_batch(data.train.images[:8], generator).shape
            torch.Size([8, 1, 16, 16])
        """
        augment = self.augment
        height, width = self.input_shape[1:]
        if augment["crop"]:
            images = random_crop(images, (height, width), augment["padding"], generator)
        elif tuple(images.shape[2:]) != (height, width):
            images = center_crop(images, (height, width))
        if augment["flip"]:
            images = random_flip(images, generator)
        if augment["color"] and self.color_pca is not None:
            images = pca_lighting(images, *self.color_pca, augment["color"], generator)
        return images

    def views(self, images: torch.Tensor, count: int = 1) -> list[torch.Tensor]:
        """Test views of a batch: 1 (centre) or 10 (centre and 4 corners, and their flips).

        Corners are taken from the image padded by ``max(augment["padding"], H // 8, 1)``
        pixels or, when the stored image is larger than the input, from the stored image
        (padded by ``augment["padding"]``). Without flips (digits) ``count=10`` gives the 5
        crops.

        Example:
            >>> data = load_data("digits", limit=64)
            >>> [view.shape[0] for view in data.views(data.test.images[:4], 10)]
            [4, 4, 4, 4, 4]
        """
        height, width = self.input_shape[1:]
        if count == 1:
            return [center_crop(images, (height, width))]
        if count != 10:
            raise DataError(f"views={count!r} is invalid; expected 1 (centre) or 10 (centre, corners and flips)")
        stored = images.shape[2:]
        padding = self.augment["padding"]
        if tuple(stored) == (height, width):
            padding = max(padding, 1, min(height, width) // 8)
        crops = five_crop(F.pad(images, (padding,) * 4), (height, width))
        if self.augment["flip"]:
            crops += [crop.flip(3) for crop in crops]
        return crops

    def to_dict(self) -> dict:
        """A JSON-ready description (no tensors)."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "stored_shape": list(self.stored_shape),
            "num_classes": self.num_classes,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "augment": dict(self.augment),
            "mean": list(self.mean),
            "std": list(self.std),
            "classes": list(self.classes),
        }

    def preprocessing(self) -> dict:
        """How a raw image becomes what the network sees, as JSON (``budgetnet export`` writes it).

        Raw images are channels first (``N, C, H, W``; grayscale or RGB); uint8 pixels are
        divided by 255, float pixels by ``pixel_max`` (16 for scikit-learn's digits, else 1);
        then resized to ``resize`` (antialiased bilinear, clamped to [0, 1]) where their size
        differs, centre-cropped to ``crop`` and standardised per channel with ``mean``/``std``.

        Example:
            >>> steps = load_data("digits", limit=64).preprocessing()
            >>> steps["pixel_max"], steps["resize"], steps["crop"], steps["channels"], len(steps["mean"])
            (16.0, [16, 16], [16, 16], 'grayscale', 1)
        """
        return {
            "source": self.name,
            "channels": "grayscale" if self.input_shape[0] == 1 else "RGB" if self.input_shape[0] == 3 else "other",
            "pixel_max": DIGITS_PIXEL_MAX if self.name == "digits" else 1.0,
            "resize": list(self.stored_shape[1:]),
            "crop": list(self.input_shape[1:]),
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, {'x'.join(map(str, self.input_shape))}, {self.num_classes} classes, "
            f"train {len(self.train)} / val {len(self.val)} / test {len(self.test)})"
        )

# -- loading ---------------------------------------------------------------------------------
def load_data(
    spec: str = "digits",
    *,
    image_size: int | None = None,
    crop_size: int | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    augment: dict | None = None,
) -> Dataset:
    """Load a dataset; nothing is downloaded.

    Args:
        spec: ``"digits"``, ``"idx:DIR"``, ``"cifar:DIR"`` or ``"folder:DIR"``.
        image_size: resize every image to ``image_size x image_size`` (antialiased
            bilinear); default 16 for digits, the native size otherwise.
        crop_size: train on random ``crop_size`` crops of the (larger) stored images and
            test on the centre crop or 10 views, as the paper's 224 from 256.
        val_fraction: share of the training images held out for validation (stratified).
        test_fraction: share held out for testing where the source has no test split.
        seed: seeds the splits (and nothing else).
        limit: keep at most this many training images (stratified), for quick runs.
        augment: overrides of the source's defaults, e.g. ``{"flip": True}``.

    Raises:
        DataError: unknown spec, missing path, unreadable or inconsistent files.

    Example:
        >>> data = load_data("digits", image_size=12, limit=100)
        >>> data.input_shape, len(data.train)
        ((1, 12, 12), 100)
    """
    if not isinstance(spec, str):
        raise DataError(f"data={spec!r} is invalid; expected one of {', '.join(SOURCES)}")
    kind, _, path = spec.partition(":")
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    _check_optional_size("image_size", image_size)
    _check_optional_size("crop_size", crop_size)
    _check_limit(limit)
    check_seed(DataError, seed)
    if kind == "digits" and not path:
        raw = read_digits()
        image_size = DIGITS_IMAGE_SIZE if image_size is None else image_size
    elif kind in ("idx", "cifar", "folder") and path:
        root = Path(path).expanduser()
        if not root.exists():
            raise DataError(f"data path {str(root)!r} does not exist; expected a {kind} directory ({LAYOUTS[kind]})")
        if not root.is_dir():
            raise DataError(
                f"data path {str(root)!r} is not a directory; expected a {kind} directory ({LAYOUTS[kind]})"
            )
        raw = READERS[kind](root, image_size)
    else:
        raise DataError(f"data={spec!r} is invalid; expected one of {', '.join(SOURCES)}")
    raw.name = spec
    return _assemble(raw, image_size, crop_size, val_fraction, test_fraction, seed, limit, augment)


def from_tensors(
    images,
    labels,
    *,
    num_classes: int | None = None,
    test_images=None,
    test_labels=None,
    name: str = "tensors",
    image_size: int | None = None,
    crop_size: int | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    augment: dict | None = None,
) -> Dataset:
    """A :class:`Dataset` from in-memory images and labels.

    Args:
        images: ``N, C, H, W`` or ``N, H, W`` (one channel); uint8 (0..255) or float.
        labels: ``N`` integers in ``0 .. num_classes - 1``.
        num_classes: defaults to ``max(labels) + 1``.
        test_images, test_labels: an explicit test split; otherwise ``test_fraction`` is held out.
        name, image_size, crop_size, val_fraction, test_fraction, seed, limit, augment: as in
            :func:`load_data`. Default augmentation: random crop with ``H // 8`` padding,
            no flip, colour altering for 3 channels.

    Example:
        >>> data = from_tensors(torch.rand(40, 1, 8, 8), torch.arange(40) % 4)
        >>> data.num_classes, data.input_shape
        (4, (1, 8, 8))
    """
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    _check_optional_size("image_size", image_size)
    _check_optional_size("crop_size", crop_size)
    _check_limit(limit)
    train_x, train_y = _tensor_pair(images, labels, "images", "labels")
    if (test_images is None) != (test_labels is None):
        raise DataError("test_images and test_labels: give both or neither")
    test = None if test_images is None else _tensor_pair(test_images, test_labels, "test_images", "test_labels")
    if test is not None and test[0].shape[1:] != train_x.shape[1:]:
        raise DataError(
            f"test_images shape {tuple(test[0].shape[1:])} differs from images shape {tuple(train_x.shape[1:])}; "
            "expected the same C, H, W"
        )
    largest = int(train_y.max()) if test is None else max(int(train_y.max()), int(test[1].max()))
    if num_classes is None:
        num_classes = largest + 1
    elif not is_int(num_classes, 1):
        raise DataError(f"num_classes={num_classes!r} is invalid; expected an integer >= 1")
    channels = train_x.shape[1]
    raw = Raw(
        name=name,
        train=(train_x, train_y),
        test=test,
        num_classes=num_classes,
        classes=tuple(str(label) for label in range(num_classes)),
        augment={"crop": True, "padding": max(1, min(train_x.shape[2:]) // 8), "flip": False,
                 "color": 0.1 if channels == 3 else 0.0},
    )  # fmt: skip
    return _assemble(raw, image_size, crop_size, val_fraction, test_fraction, seed, limit, augment)

def _assemble(raw: Raw, image_size, crop_size, val_fraction, test_fraction, seed, limit, augment) -> Dataset:
    check_seed(DataError, seed)  # from_tensors' too: torch.Generator().manual_seed overflows past 64 bits
    for split_name, pair in (("train", raw.train), ("val", raw.val), ("test", raw.test)):
        if pair is not None:
            _check_labels(raw.name, split_name, pair[1], raw.num_classes)
    if image_size is not None:
        _check_resized_memory(raw, image_size)
        raw.train, raw.val, raw.test = (
            None if pair is None else (resize(pair[0], image_size), pair[1]) for pair in (raw.train, raw.val, raw.test)
        )
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = raw.train
    if raw.test is None:
        keep, held = _stratified_split(train_y, test_fraction, generator)
        raw.test = (train_x[held], train_y[held])
        train_x, train_y = train_x[keep], train_y[keep]
    if raw.val is None:
        keep, held = _stratified_split(train_y, val_fraction, generator)
        raw.val = (train_x[held], train_y[held])
        train_x, train_y = train_x[keep], train_y[keep]
    if limit is not None and limit < len(train_y):
        _, kept = _stratified_split(train_y, limit / len(train_y), generator)
        train_x, train_y = train_x[kept], train_y[kept]
    if len(train_y) == 0:
        raise DataError(f"data {raw.name!r}: no training images left after the splits; expected a larger dataset")
    channels, height, width = train_x.shape[1:]
    if crop_size is not None and crop_size > min(height, width):
        raise DataError(
            f"crop_size={crop_size} is larger than the images ({height}x{width}); expected crop_size <= "
            f"{min(height, width)} (or a larger image_size)"
        )
    options = dict(raw.augment)
    if crop_size is not None:
        options.update(crop=True, padding=0)
    options.update(check_augment(augment))
    pixels = train_x.transpose(0, 1).reshape(channels, -1)
    mean = pixels.mean(dim=1)
    std = pixels.std(dim=1).clamp_min(1e-6)

    def normalise(images):
        return ((images - mean[:, None, None]) / std[:, None, None]).contiguous()

    train_images = normalise(train_x)
    input_shape = (channels, height, width) if crop_size is None else (channels, crop_size, crop_size)
    return Dataset(
        name=raw.name,
        input_shape=tuple(int(side) for side in input_shape),
        num_classes=raw.num_classes,
        train=Split(train_images, train_y),
        val=Split(normalise(raw.val[0]), raw.val[1]),
        test=Split(normalise(raw.test[0]), raw.test[1]),
        augment=options,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        classes=raw.classes,
        color_pca=color_pca(train_images) if channels > 1 else None,
    )


def _stratified_split(labels: torch.Tensor, fraction: float, generator: torch.Generator):
    """Indices ``(kept, held)``: ``fraction`` of every class held out, both in random order."""
    kept, held = [], []
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        count = int(round(len(members) * fraction))
        held.append(members[:count])
        kept.append(members[count:])
    kept, held = torch.cat(kept), torch.cat(held)
    return kept[torch.randperm(len(kept), generator=generator)], held[torch.randperm(len(held), generator=generator)]


def _check_labels(name: str, split: str, labels: torch.Tensor, num_classes: int) -> None:
    if len(labels) == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise DataError(
            f"data {name!r}: {split} label {bad} is outside the class range; expected 0 .. {num_classes - 1} "
            f"({num_classes} classes)"
        )


def _check_fraction(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise DataError(f"{name}={value!r} is invalid; expected a number between 0 and 1 (exclusive)")


def _check_optional_size(name: str, value) -> None:
    if value is not None and not is_int(value, 1):
        raise DataError(f"{name}={value!r} is invalid; expected an integer >= 1 (pixels) or None")
    if value is not None and value * value > MAX_PIXELS:  # before torch sizes a tensor by it
        raise DataError(
            f"{name}={value!r} is invalid; expected at most {math.isqrt(MAX_PIXELS)} pixels a side (MAX_PIXELS)"
        )


def _check_resized_memory(raw: Raw, image_size: int) -> None:
    """Refuse an ``image_size`` whose resized images (float32) would not fit in this machine's
    memory, before torch allocates them."""
    from budgetnet.cost.memory import device_memory, format_bytes

    pairs = [pair for pair in (raw.train, raw.val, raw.test) if pair is not None]
    need = sum(pair[0].shape[0] * pair[0].shape[1] for pair in pairs) * image_size * image_size * 4
    limit, what = device_memory("cpu")
    if need > limit:
        raise DataError(
            f"image_size={image_size}: the {sum(len(pair[1]) for pair in pairs)} images of {raw.name or 'the data'!r} "
            f"resized to {image_size}x{image_size} need about {format_bytes(need)}, over {format_bytes(limit)} "
            f"({what}); expected a smaller image_size"
        )


def _check_limit(limit) -> None:
    if limit is not None and not is_int(limit, 1):
        raise DataError(f"limit={limit!r} is invalid; expected an integer >= 1 or None")


def _tensor_pair(images, labels, images_name: str, labels_name: str):
    try:
        images = torch.as_tensor(images)
        labels = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as error:
        raise DataError(f"{images_name}/{labels_name}: not convertible to tensors ({error}); expected arrays") from None
    if images.dim() == 3:
        images = images[:, None]
    if images.dim() != 4 or images.shape[0] == 0 or min(images.shape[1:]) < 1:
        raise DataError(
            f"{images_name} shape {tuple(images.shape)} is invalid; expected N, C, H, W or N, H, W with N >= 1"
        )
    if labels.dim() != 1 or labels.shape[0] != images.shape[0] or labels.is_floating_point() or labels.is_complex():
        raise DataError(
            f"{labels_name} shape {tuple(labels.shape)} dtype {labels.dtype} is invalid; expected {images.shape[0]} "
            "integer labels"
        )
    if images.dtype == torch.uint8:
        images = images.float() / 255
    elif images.is_floating_point():
        images = images.float()
    else:
        raise DataError(f"{images_name} dtype {images.dtype} is invalid; expected uint8 (0..255) or float")
    return images, labels.long()
