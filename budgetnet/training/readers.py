"""Readers of the on-disk formats, each into a :class:`Raw` (float images in [0, 1] and int64 labels).

* digits: scikit-learn's bundled 8x8 handwritten digits (:func:`read_digits`).
* IDX: MNIST-format files, gzipped or not (:func:`read_idx` reads one file).
* CIFAR: the CIFAR-10 / CIFAR-100 python batches, read with an unpickler that only admits
  numpy arrays (nothing in the file is run as code).
* image folders: one sub-folder of images per class, read with PIL.

:data:`READERS` maps a ``load_data`` spec kind to its directory reader, :data:`LAYOUTS` to the
files it expects.

Example:
    >>> raw = read_digits()
    >>> tuple(raw.train[0].shape), raw.num_classes
    ((1797, 1, 8, 8), 10)
"""

from __future__ import annotations

import gzip
import math
import pickle
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from budgetnet.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass
class Raw:
    """What a reader returns: float images in [0, 1] (N, C, H, W) and int64 labels."""

    name: str
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor] | None
    num_classes: int
    classes: tuple[str, ...]
    augment: dict
    val: tuple[torch.Tensor, torch.Tensor] | None = None


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """``images`` resized to ``size x size`` (antialiased bilinear, clamped to [0, 1]); unchanged at that size."""
    if tuple(images.shape[2:]) == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


#: scikit-learn's digits hold pixel values 0..16; they are divided by this to reach [0, 1].
DIGITS_PIXEL_MAX = 16.0


def read_digits() -> Raw:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), unsplit."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / DIGITS_PIXEL_MAX)[:, None]
    return Raw(
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


def _read_idx_dir(root: Path, image_size) -> Raw:
    train_images, train_labels = _find_idx(root, ("train",), "images"), _find_idx(root, ("train",), "labels")
    if train_images is None or train_labels is None:
        raise DataError(f"data path {str(root)!r} has no IDX training files; expected {LAYOUTS['idx']}")
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
    return Raw(
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


def _read_cifar_dir(root: Path, image_size) -> Raw:
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
        raise DataError(f"data path {str(root)!r} has no CIFAR batches; expected {LAYOUTS['cifar']}")
    classes = tuple(str(label) for label in range(num_classes))
    if meta_file.is_file():
        names = _unpickle(meta_file).get(names_key)
        if isinstance(names, list) and names:
            classes = tuple(name.decode() if isinstance(name, bytes) else str(name) for name in names)
            num_classes = len(classes)
    parts = [_cifar_batch(path, label_key) for path in train_files]
    train = (torch.cat([images for images, _ in parts]), torch.cat([labels for _, labels in parts]))
    test = _cifar_batch(test_file, label_key) if test_file.is_file() else None
    return Raw(
        name="",
        train=train,
        test=test,
        num_classes=num_classes,
        classes=classes,
        augment={"crop": True, "padding": 4, "flip": True, "color": 0.1},
    )


#: Most pixels (width x height) one image of a folder dataset may have: 100 megapixels, checked
#: from the file's header before it is decoded (a 15000x15000 PNG of a few KB decodes to 675 MB).
MAX_PIXELS = 100_000_000


def check_pixels(path, size: tuple[int, int] | None, pixels: int | None = None) -> None:
    """Refuse an image of more than :data:`MAX_PIXELS` pixels: ``size`` is ``(width, height)``
    from its header, or ``None`` with ``pixels`` the count PIL reported.

    Raises:
        DataError: naming the file and its size.

    Example:
        >>> check_pixels("small.png", (640, 480))
        >>> check_pixels("bomb.png", (15000, 15000))
        Traceback (most recent call last):
        ...
        budgetnet.errors.DataError: image 'bomb.png' is 15000x15000 = 225,000,000 pixels; expected at most 100,000,000 pixels (MAX_PIXELS) in a folder dataset
    """
    if size is not None:
        pixels = size[0] * size[1]
        if pixels <= MAX_PIXELS:
            return
        what = f"{size[0]}x{size[1]} = {pixels:,} pixels"
    else:
        what = f"{pixels:,} pixels" if pixels is not None else "too large for PIL to open"
    raise DataError(f"image {str(path)!r} is {what}; expected at most {MAX_PIXELS:,} pixels (MAX_PIXELS) in a folder dataset")


def _image_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(root: Path) -> list[Path]:
    return sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))


def _read_folder_dir(root: Path, image_size) -> Raw:
    from PIL import Image, UnidentifiedImageError

    split_roots = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
    if not ("train" in split_roots and "test" in split_roots):
        split_roots = {"train": root}
    classes = [folder.name for folder in _class_folders(split_roots["train"])]
    if not classes:
        raise DataError(f"data path {str(root)!r} has no class folders; expected {LAYOUTS['folder']}")
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
                with warnings.catch_warnings():  # PIL warns past 89 megapixels; MAX_PIXELS is checked here
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    image = Image.open(path)  # reads the header only
                with image:
                    check_pixels(path, image.size)
                    image.load()
                    pictures[split].append(image.copy())
                    modes.add(image.mode)
            except Image.DecompressionBombError as error:  # over twice PIL's limit: refused by Image.open
                found = re.search(r"\(([0-9]+) pixels\)", str(error))
                check_pixels(path, None, int(found.group(1)) if found else None)
                raise  # not reached: check_pixels raises
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
        return tensor if image_size is None else resize(tensor, image_size)

    def stack(split: str):
        if not files[split]:
            return None
        images = torch.cat([to_tensor(path, image) for (path, _), image in zip(files[split], pictures[split])])
        return images, torch.tensor([label for _, label in files[split]], dtype=torch.int64)

    channels = 1 if mode == "L" else 3
    return Raw(
        name="",
        train=stack("train"),
        test=stack("test") if "test" in files else None,
        val=stack("val") if "val" in files else None,
        num_classes=len(classes),
        classes=tuple(classes),
        augment={"crop": True, "padding": max(1, min(reference[1]) // 8), "flip": True,
                 "color": 0.1 if channels == 3 else 0.0},
    )  # fmt: skip


READERS = {"idx": _read_idx_dir, "cifar": _read_cifar_dir, "folder": _read_folder_dir}
LAYOUTS = {
    "idx": "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz], optionally t10k-* for the test split",
    "cifar": "data_batch_1..5 and test_batch (CIFAR-10) or train and test (CIFAR-100) python batches",
    "folder": "one sub-folder of images per class, or train/ and test/ each laid out that way",
}
