"""Arch -> ``torch.nn.Module`` (``budgetnet.build``; the module is named builder so the
function keeps the public name).

The builder asks :mod:`budgetnet.arch` for every shape and padding; it computes none.

Example:
    >>> import torch, budgetnet
    >>> arch = budgetnet.parse("(3,8) 2/2 (2,16)x2 gap", input_shape=(1, 8, 8), num_classes=10)
    >>> budgetnet.build(arch)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from budgetnet.arch import FC, SPP, Arch, Conv, Flatten, Pool
from budgetnet.errors import ArchError

NORMS = (None, "batch")


class SpatialPyramidPool(nn.Module):
    """Max (or average) pooling into an ``l x l`` grid per level, concatenated (Sec. 5).

    Each level is an adaptive pool, which equals the paper's sliding window of size
    ``ceil(a / l)`` and stride ``floor(a / l)`` whenever ``l`` divides the map side ``a``
    (as it does for the paper's 18 and 6) and stays defined for every map size.
    """

    def __init__(self, levels: Sequence[int], mode: str = "max"):
        super().__init__()
        self.levels = tuple(levels)
        self.mode = mode
        self._pool = nn.functional.adaptive_max_pool2d if mode == "max" else nn.functional.adaptive_avg_pool2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._pool(x, level).flatten(1) for level in self.levels], dim=1)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, mode={self.mode!r}"


class BudgetNet(nn.Module):
    """The module :func:`build` returns: ``features`` (convs, ReLUs, pools), ``pool``
    (SPP, global pooling or flatten) and ``classifier`` (fc layers). ``arch`` is kept."""

    def __init__(self, arch: Arch, features: nn.Sequential, pool: nn.Module, classifier: nn.Sequential):
        super().__init__()
        self.arch = arch
        self.features = features
        self.pool = pool
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def build(arch: Arch, num_classes: int | None = None, norm: str | None = None) -> BudgetNet:
    """Build ``arch`` as a ``torch.nn.Module``.

    Args:
        arch: the architecture; its hidden fc layers (``fc4096`` ...) set the fc widths.
        num_classes: classifier width; defaults to ``arch.num_classes``.
        norm: ``None`` (the paper: conv + ReLU) or ``"batch"`` (conv + BatchNorm + ReLU).

    Weights follow Sec. 5: zero-mean Gaussian (He et al.'s std ``sqrt(2 / fan_in)``, the
    paper's reference [7] scaled for ReLU), zero biases.

    Example:
        >>> import budgetnet
        >>> from search_spaces.paper import MODELS
        >>> model = budgetnet.build(MODELS["A"], num_classes=10)
        >>> model.classifier[-1].out_features
        10
    """
    if not isinstance(arch, Arch):
        raise ArchError(f"build: arch={arch!r} is not a budgetnet.Arch; expected budgetnet.parse(...) or an Arch")
    if norm not in NORMS:
        raise ArchError(f"build: norm={norm!r} is invalid; expected one of {NORMS}")
    if num_classes is not None and num_classes != arch.num_classes:
        arch = arch.with_input(num_classes=num_classes)
    features: list[nn.Module] = []
    pool: nn.Module = nn.Flatten()
    classifier: list[nn.Module] = []
    for info in arch.shapes:
        layer = info.layer
        if isinstance(layer, Conv):
            features.append(
                nn.Conv2d(
                    info.in_shape[0],
                    layer.out_channels,
                    layer.kernel_size,
                    layer.stride,
                    layer.padding,
                    bias=norm is None,
                )
            )
            if norm == "batch":
                features.append(nn.BatchNorm2d(layer.out_channels))
            features.append(nn.ReLU(inplace=True))
        elif isinstance(layer, Pool):
            cls = nn.MaxPool2d if layer.mode == "max" else nn.AvgPool2d
            features.append(cls(layer.kernel_size, layer.stride, layer.padding))
        elif isinstance(layer, SPP):
            pool = SpatialPyramidPool(layer.levels, layer.mode)
        elif isinstance(layer, Flatten):
            pool = nn.Flatten()
        elif isinstance(layer, FC):
            classifier += [nn.Linear(info.in_shape[0], layer.out_features), nn.ReLU(inplace=True)]
            if layer.dropout:
                classifier.append(nn.Dropout(layer.dropout))
    classifier.append(nn.Linear(arch.shapes[-1].out_shape[0], arch.num_classes))
    model = BudgetNet(arch, nn.Sequential(*features), pool, nn.Sequential(*classifier))
    init_weights(model)
    return model


def init_weights(model: nn.Module) -> None:
    """Zero-mean Gaussian weights (std ``sqrt(2 / fan_in)``) and zero biases (Sec. 5)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_in))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
