"""Augmentation, after Sec. 5 of the paper: batched tensor ops on whatever device the batch is on.

:meth:`~budgetnet.training.data.Dataset.augment_batch` applies them to a training batch: a
random crop (from the image padded by ``padding`` pixels, or from a larger stored image when
``crop_size`` is given), a horizontal flip of half the images where the dataset allows it
(not for digits), and AlexNet's PCA colour altering for RGB images.
:meth:`~budgetnet.training.data.Dataset.views` gives the test views: the centre, or the
paper's 10 views (centre and four corners, and their flips). :func:`check_augment` checks
the ``augment`` options a dataset carries and :func:`color_pca` estimates the colour PCA.

Example:
    >>> center_crop(torch.zeros(2, 3, 8, 8), (6, 6)).shape
    torch.Size([2, 3, 6, 6])
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from budgetnet.errors import DataError

AUGMENT_KEYS = ("crop", "padding", "flip", "color")
#: Training images sampled to estimate the colour PCA of :func:`pca_lighting`.
PCA_SAMPLE_IMAGES = 2000


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


def color_pca(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour PCA of :func:`pca_lighting`: standard deviations and eigenvectors of the pixels."""
    sample = images[:PCA_SAMPLE_IMAGES].transpose(0, 1).reshape(images.shape[1], -1).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(sample))
    return eigenvalues.clamp_min(0).sqrt().float(), eigenvectors.float()


def check_augment(augment) -> dict:
    """The ``augment`` overrides checked against :data:`AUGMENT_KEYS` and their types (``{}`` for None)."""
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

