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

Augmentation follows Sec. 5 of the paper and runs as batched tensor ops on whatever device
the batch is on (:meth:`Dataset.augment_batch`): a random crop (from the image padded by
``padding`` pixels, or from a larger stored image when ``crop_size`` is given), a horizontal
flip of half the images where the dataset allows it (not for digits), and AlexNet's PCA
colour altering for RGB images. :meth:`Dataset.views` gives the test views: the centre, or
the paper's 10 views (centre and four corners, and their flips).

Example:
    >>> data = load_data("digits", seed=0)
    >>> data.input_shape, data.num_classes, len(data.train) + len(data.val) + len(data.test)
    ((1, 16, 16), 10, 1797)
    >>> data.augment
    {'crop': True, 'padding': 2, 'flip': False, 'color': 0.0}
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from budgetnet.checks import is_int
from budgetnet.errors import DataError

SOURCES = ("digits", "idx:PATH", "cifar:PATH", "folder:PATH")
DIGITS_IMAGE_SIZE = 16
AUGMENT_KEYS = ("crop", "padding", "flip", "color")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Training images sampled to estimate the colour PCA of :func:`pca_lighting`.
PCA_SAMPLE_IMAGES = 2000


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

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, {'x'.join(map(str, self.input_shape))}, {self.num_classes} classes, "
            f"train {len(self.train)} / val {len(self.val)} / test {len(self.test)})"
        )


# -- augmentation: batched tensor ops ----------------------------------------------------------
def random_crop(
    images: torch.Tensor, size: Sequence[int], padding: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One random ``size`` crop per image from the images zero-padded by ``padding``.

    Zero is the mean colour once the images are normalised.

    Example:
        >>> x = torch.arange(16.).view(1, 1, 4, 4)
        >>> random_crop(x, (4, 4), 0).equal(x)
        True
    """
    if padding:
        images = F.pad(images, (padding,) * 4)
    batch, _, height, width = images.shape
    out_height, out_width = size
    device = images.device
    top = torch.randint(0, height - out_height + 1, (batch,), generator=generator, device=device)
    left = torch.randint(0, width - out_width + 1, (batch,), generator=generator, device=device)
    rows = (top[:, None] + torch.arange(out_height, device=device))[:, :, None]
    cols = (left[:, None] + torch.arange(out_width, device=device))[:, None, :]
    index = torch.arange(batch, device=device)[:, None, None]
    return images.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror a random half of the images left to right (each with probability 0.5).

    Example:
        >>> x = torch.arange(3.).view(1, 1, 1, 3).repeat(4, 1, 1, 1)
        >>> sorted(row[0, 0].tolist() for row in random_flip(x, torch.Generator().manual_seed(0)))
        [[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [2.0, 1.0, 0.0], [2.0, 1.0, 0.0]]
    """
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def pca_lighting(
    images: torch.Tensor,
    eigenvalues: torch.Tensor,
    eigenvectors: torch.Tensor,
    strength: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """AlexNet's colour altering: add ``eigenvectors @ (alpha * eigenvalues)`` to every pixel.

    ``alpha ~ N(0, strength)`` per image and component; ``eigenvalues`` are the standard
    deviations along the principal components of the training pixels (normalised space).

    Example:
        >>> x = torch.zeros(2, 3, 4, 4)
        >>> shifted = pca_lighting(x, torch.ones(3), torch.eye(3), 0.1, torch.Generator().manual_seed(0))
        >>> shifted.shape, bool((shifted[:, :, 0, 0, None, None] == shifted).all())
        (torch.Size([2, 3, 4, 4]), True)
    """
    alpha = torch.randn(images.shape[0], eigenvalues.shape[0], generator=generator, device=images.device)
    shift = (alpha * strength * eigenvalues.to(images.device)) @ eigenvectors.to(images.device).T
    return images + shift[:, :, None, None].to(images.dtype)


def center_crop(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The central ``size`` crop (the images unchanged when they already have that size).

    Example:
        >>> center_crop(torch.arange(16.).view(1, 1, 4, 4), (2, 2)).flatten().tolist()
        [5.0, 6.0, 9.0, 10.0]
    """
    height, width = images.shape[2:]
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    return images[:, :, top : top + size[0], left : left + size[1]]


def five_crop(images: torch.Tensor, size: Sequence[int]) -> list[torch.Tensor]:
    """Centre, top-left, top-right, bottom-left and bottom-right ``size`` crops.

    Example:
        >>> crops = five_crop(torch.arange(16.).view(1, 1, 4, 4), (3, 3))
        >>> [crop[0, 0, 0, 0].item() for crop in crops]
        [0.0, 0.0, 1.0, 4.0, 5.0]
    """
    height, width = images.shape[2:]
    out_height, out_width = size
    bottom, right = height - out_height, width - out_width
    corners = [(0, 0), (0, right), (bottom, 0), (bottom, right)]
    return [center_crop(images, size)] + [
        images[:, :, top : top + out_height, left : left + out_width] for top, left in corners
    ]


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
    if kind == "digits" and not path:
        raw = _read_digits()
        image_size = DIGITS_IMAGE_SIZE if image_size is None else image_size
    elif kind in ("idx", "cifar", "folder") and path:
        root = Path(path).expanduser()
        if not root.exists():
            raise DataError(f"data path {str(root)!r} does not exist; expected a {kind} directory ({_LAYOUTS[kind]})")
        if not root.is_dir():
            raise DataError(
                f"data path {str(root)!r} is not a directory; expected a {kind} directory ({_LAYOUTS[kind]})"
            )
        raw = _READERS[kind](root, image_size)
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
    raw = _Raw(
        name=name,
        train=(train_x, train_y),
        test=test,
        num_classes=num_classes,
        classes=tuple(str(label) for label in range(num_classes)),
        augment={"crop": True, "padding": max(1, min(train_x.shape[2:]) // 8), "flip": False,
                 "color": 0.1 if channels == 3 else 0.0},
    )  # fmt: skip
    return _assemble(raw, image_size, crop_size, val_fraction, test_fraction, seed, limit, augment)


@dataclass
class _Raw:
    """What a reader returns: float images in [0, 1] (N, C, H, W) and int64 labels."""

    name: str
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor] | None
    num_classes: int
    classes: tuple[str, ...]
    augment: dict
    val: tuple[torch.Tensor, torch.Tensor] | None = None


def _assemble(raw: _Raw, image_size, crop_size, val_fraction, test_fraction, seed, limit, augment) -> Dataset:
    for split_name, pair in (("train", raw.train), ("val", raw.val), ("test", raw.test)):
        if pair is not None:
            _check_labels(raw.name, split_name, pair[1], raw.num_classes)
    if image_size is not None:
        raw.train, raw.val, raw.test = (
            None if pair is None else (_resize(pair[0], image_size), pair[1]) for pair in (raw.train, raw.val, raw.test)
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
    options.update(_check_augment(augment))
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
        color_pca=_color_pca(train_images) if channels > 1 else None,
    )


def _check_augment(augment) -> dict:
    if augment is None:
        return {}
    if not isinstance(augment, dict) or set(augment) - set(AUGMENT_KEYS):
        raise DataError(f"augment={augment!r} is invalid; expected a dict with keys among {AUGMENT_KEYS}")
    checks = {
        "crop": lambda v: isinstance(v, bool),
        "padding": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "flip": lambda v: isinstance(v, bool),
        "color": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf,
    }
    accepted = {
        "crop": "True or False",
        "padding": "an integer >= 0",
        "flip": "True or False",
        "color": "a number >= 0",
    }
    for key, value in augment.items():
        if not checks[key](value):
            raise DataError(f"augment[{key!r}]={value!r} is invalid; expected {accepted[key]}")
    return dict(augment)


def _color_pca(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sample = images[:PCA_SAMPLE_IMAGES].transpose(0, 1).reshape(images.shape[1], -1).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(sample))
    return eigenvalues.clamp_min(0).sqrt().float(), eigenvectors.float()


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


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if tuple(images.shape[2:]) == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


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


# -- readers ---------------------------------------------------------------------------------
def _read_digits() -> _Raw:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    return _Raw(
        name="digits",
        train=(images, torch.from_numpy(digits.target.astype(np.int64))),
        test=None,
        num_classes=10,
        classes=tuple(str(label) for label in digits.target_names),
        augment={"crop": True, "padding": 2, "flip": False, "color": 0.0},
    )


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a numpy array.

    Raises :class:`DataError` naming the file when it is not an IDX file or is truncated.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
        >>> _ = path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))  # unsigned bytes, 1 dimension of 3
        >>> read_idx(path).tolist()
        [7, 8, 9]
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
        if blob[:2] == b"\x1f\x8b":
            blob = gzip.decompress(blob)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(
            f"IDX file {str(path)!r} cannot be read ({error}); expected an IDX file, gzipped or not"
        ) from None
    if len(blob) < 4 or blob[:2] != b"\x00\x00" or blob[2] not in _IDX_TYPES or blob[3] == 0:
        raise DataError(
            f"IDX file {str(path)!r} has no IDX header (magic {blob[:4].hex() or 'empty'}); expected an MNIST-format "
            "file starting 0000 08 0N"
        )
    dims = blob[3]
    header = 4 + 4 * dims
    if len(blob) < header:
        raise DataError(f"IDX file {str(path)!r} is truncated in its header; expected {dims} dimensions")
    shape = struct.unpack(f">{dims}I", blob[4:header])
    dtype = np.dtype(_IDX_TYPES[blob[2]])
    expected = math.prod(shape) * dtype.itemsize
    if len(blob) - header != expected:
        raise DataError(
            f"IDX file {str(path)!r} holds {len(blob) - header} data bytes; expected {expected} for shape {shape}"
        )
    return np.frombuffer(blob, dtype=dtype, offset=header).reshape(shape)


def _find_idx(root: Path, prefixes: Sequence[str], kind: str) -> Path | None:
    for prefix in prefixes:
        for pattern in (f"{prefix}-{kind}-idx?-ubyte", f"{prefix}-{kind}.idx?-ubyte"):
            for suffix in ("", ".gz"):
                matches = sorted(root.glob(pattern + suffix))
                if matches:
                    return matches[0]
    return None


def _read_idx_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"IDX file {str(images_path)!r} holds {images.dtype} of shape {images.shape}; expected unsigned bytes "
            "of shape N, H, W"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(images):
        raise DataError(
            f"IDX file {str(labels_path)!r} holds {labels.dtype} of shape {labels.shape}; expected {len(images)} "
            "integer labels (one per image)"
        )
    return torch.from_numpy(images.astype(np.float32) / 255)[:, None], torch.from_numpy(labels.astype(np.int64))


def _read_idx_dir(root: Path, image_size) -> _Raw:
    train_images, train_labels = _find_idx(root, ("train",), "images"), _find_idx(root, ("train",), "labels")
    if train_images is None or train_labels is None:
        raise DataError(f"data path {str(root)!r} has no IDX training files; expected {_LAYOUTS['idx']}")
    train = _read_idx_pair(train_images, train_labels)
    test_images, test_labels = _find_idx(root, ("t10k", "test"), "images"), _find_idx(root, ("t10k", "test"), "labels")
    test = None
    if test_images is not None and test_labels is not None:
        test = _read_idx_pair(test_images, test_labels)
        if test[0].shape[2:] != train[0].shape[2:]:
            raise DataError(
                f"IDX file {str(test_images)!r} holds {tuple(test[0].shape[2:])} images; expected the training size "
                f"{tuple(train[0].shape[2:])}"
            )
    num_classes = int(train[1].max()) + 1
    return _Raw(
        name="",
        train=train,
        test=test,
        num_classes=num_classes,
        classes=tuple(str(label) for label in range(num_classes)),
        augment={"crop": True, "padding": max(1, train[0].shape[2] // 8), "flip": False, "color": 0.0},
    )


try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct


class _ArrayUnpickler(pickle.Unpickler):
    """Admits only what numpy arrays need; any other global in the file is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return getattr(np, name) if module == "numpy" else _reconstruct
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            data = _ArrayUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, OSError) as error:
        raise DataError(
            f"CIFAR batch {str(path)!r} cannot be read ({error}); expected a CIFAR python batch (a pickled dict "
            "of numpy arrays and lists)"
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"CIFAR batch {str(path)!r} holds a {type(data).__name__}; expected a dict")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in data.items()}


def _cifar_batch(path: Path, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _unpickle(path)
    if "data" not in batch or label_key not in batch:
        raise DataError(f"CIFAR batch {str(path)!r} has keys {sorted(batch)}; expected 'data' and {label_key!r}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"CIFAR batch {str(path)!r}: 'data' is {getattr(data, 'dtype', type(data).__name__)} of shape "
            f"{getattr(data, 'shape', None)}; expected uint8 of shape N x 3072 (3 x 32 x 32)"
        )
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError):
        labels = np.zeros(0)
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"CIFAR batch {str(path)!r}: {label_key!r} does not hold {len(data)} integer labels")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255)
    return images, torch.from_numpy(labels)


def _read_cifar_dir(root: Path, image_size) -> _Raw:
    if sorted(root.glob("data_batch_*")):
        train_files, test_file, meta_file = (
            sorted(root.glob("data_batch_*")),
            root / "test_batch",
            root / "batches.meta",
        )
        label_key, names_key, num_classes = "labels", "label_names", 10
    elif (root / "train").is_file():
        train_files, test_file, meta_file = [root / "train"], root / "test", root / "meta"
        label_key, names_key, num_classes = "fine_labels", "fine_label_names", 100
    else:
        raise DataError(f"data path {str(root)!r} has no CIFAR batches; expected {_LAYOUTS['cifar']}")
    classes = tuple(str(label) for label in range(num_classes))
    if meta_file.is_file():
        names = _unpickle(meta_file).get(names_key)
        if isinstance(names, list) and names:
            classes = tuple(name.decode() if isinstance(name, bytes) else str(name) for name in names)
            num_classes = len(classes)
    parts = [_cifar_batch(path, label_key) for path in train_files]
    train = (torch.cat([images for images, _ in parts]), torch.cat([labels for _, labels in parts]))
    test = _cifar_batch(test_file, label_key) if test_file.is_file() else None
    return _Raw(
        name="",
        train=train,
        test=test,
        num_classes=num_classes,
        classes=classes,
        augment={"crop": True, "padding": 4, "flip": True, "color": 0.1},
    )


def _image_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(root: Path) -> list[Path]:
    return sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))


def _read_folder_dir(root: Path, image_size) -> _Raw:
    from PIL import Image, UnidentifiedImageError

    split_roots = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
    if not ("train" in split_roots and "test" in split_roots):
        split_roots = {"train": root}
    classes = [folder.name for folder in _class_folders(split_roots["train"])]
    if not classes:
        raise DataError(f"data path {str(root)!r} has no class folders; expected {_LAYOUTS['folder']}")
    files: dict[str, list[tuple[Path, int]]] = {}
    for split, split_root in split_roots.items():
        files[split] = []
        for folder in _class_folders(split_root):
            if folder.name not in classes:
                raise DataError(
                    f"class folder {str(folder)!r} is not among the training classes; expected one of {classes}"
                )
            images = _image_files(folder)
            if split == "train" and not images:
                raise DataError(
                    f"class folder {str(folder)!r} holds no images; expected files ending in {', '.join(IMAGE_SUFFIXES)}"
                )
            files[split] += [(path, classes.index(folder.name)) for path in images]
    pictures: dict[str, list] = {split: [] for split in files}
    modes = set()
    for split, entries in files.items():
        for path, _ in entries:
            try:
                with Image.open(path) as image:
                    image.load()
                    pictures[split].append(image.copy())
                    modes.add(image.mode)
            except (UnidentifiedImageError, OSError) as error:
                raise DataError(
                    f"image {str(path)!r} cannot be read ({error}); expected an image PIL can open"
                ) from None
    mode = "L" if modes <= {"1", "L", "I", "I;16", "F"} else "RGB"
    reference = files["train"][0][0], pictures["train"][0].size

    def to_tensor(path: Path, image) -> torch.Tensor:
        if image_size is None and image.size != reference[1]:
            raise DataError(
                f"image {str(path)!r} is {image.size[0]}x{image.size[1]} but {str(reference[0])!r} is "
                f"{reference[1][0]}x{reference[1][1]}; expected one size in a folder dataset (or give image_size "
                "to resize them)"
            )
        array = np.asarray(image.convert(mode), dtype=np.float32) / 255
        tensor = torch.from_numpy(array.reshape(array.shape[0], array.shape[1], -1)).permute(2, 0, 1)[None]
        return tensor if image_size is None else _resize(tensor, image_size)

    def stack(split: str):
        if not files[split]:
            return None
        images = torch.cat([to_tensor(path, image) for (path, _), image in zip(files[split], pictures[split])])
        return images, torch.tensor([label for _, label in files[split]], dtype=torch.int64)

    channels = 1 if mode == "L" else 3
    return _Raw(
        name="",
        train=stack("train"),
        test=stack("test") if "test" in files else None,
        val=stack("val") if "val" in files else None,
        num_classes=len(classes),
        classes=tuple(classes),
        augment={"crop": True, "padding": max(1, min(reference[1]) // 8), "flip": True,
                 "color": 0.1 if channels == 3 else 0.0},
    )  # fmt: skip


_READERS = {"idx": _read_idx_dir, "cifar": _read_cifar_dir, "folder": _read_folder_dir}
_LAYOUTS = {
    "idx": "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz], optionally t10k-* for the test split",
    "cifar": "data_batch_1..5 and test_batch (CIFAR-10) or train and test (CIFAR-100) python batches",
    "folder": "one sub-folder of images per class, or train/ and test/ each laid out that way",
}
