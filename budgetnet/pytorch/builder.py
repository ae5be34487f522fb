"""Arch -> ``torch.nn.Module`` (``budgetnet.build``; the module is named builder so the
function keeps the public name).

The modules come from :mod:`budgetnet.pytorch.modules`, the description the ``.py`` export
writes too; every shape and padding comes from :mod:`budgetnet.graph.shapes`.

Example:
    >>> import torch, budgetnet
    >>> arch = budgetnet.parse("(3,8) 2/2 (2,16)x2 gap", input_shape=(1, 8, 8), num_classes=10)
    >>> budgetnet.build(arch)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn

from budgetnet.graph.arch import Arch
from budgetnet.errors import ArchError
from budgetnet.pytorch.modules import (
    NORMS,
    SpatialPyramidPool,
    classifier_specs,
    feature_specs,
    init_weights,
    instantiate,
    pool_spec,
)

__all__ = ["BudgetNet", "NORMS", "SpatialPyramidPool", "assemble", "build", "init_weights"]


class BudgetNet(nn.Module):
    """The module :func:`build` returns: ``features`` (convs, norms, activations, pools,
    residual and concat blocks), ``pool`` (SPP, global pooling or flatten) and
    ``classifier`` (fc layers). ``arch`` is kept."""

    def __init__(self, arch: Arch, features: nn.Sequential, pool: nn.Module, classifier: nn.Sequential):
        super().__init__()
        self.arch = arch
        self.features = features
        self.pool = pool
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def build(arch: Arch, num_classes: int | None = None, norm: str | None = None, weights_from=None) -> BudgetNet:
    """Build ``arch`` as a ``torch.nn.Module``.

    Args:
        arch: the architecture; its hidden fc layers (``fc4096`` ...) set the fc widths.
        num_classes: classifier width; defaults to ``arch.num_classes``.
        norm: ``None`` (each conv as written: the paper's conv + ReLU, or ``bn`` where the
            notation says so) or ``"batch"`` (batch norm after every conv).
        weights_from: a torch module that ``Arch.from_module`` imports as this same Arch
            (a torchvision ResNet, say): its weights, biases and batch-norm statistics are
            copied, so the built model gives the same logits in eval mode.

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
    model = assemble(arch, norm)
    init_weights(model)
    if weights_from is not None:
        from budgetnet.pytorch.weights import copy_weights

        copy_weights(weights_from, model)
    return model


def assemble(arch: Arch, norm: str | None = None) -> BudgetNet:
    """The modules of :func:`build` with torch's own initial weights (no :func:`init_weights`,
    no ``weights_from``): for a caller that sets every weight itself, such as the numeric
    check after an import, which assembles on the meta device.

    Example:
        >>> import torch, budgetnet
        >>> arch = budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8), num_classes=10)
        >>> with torch.device("meta"):
        ...     model = assemble(arch)
        >>> model.features[0].weight.device.type
        'meta'
    """
    return BudgetNet(
        arch,
        nn.Sequential(*(instantiate(spec) for spec in feature_specs(arch, norm))),
        instantiate(pool_spec(arch)),
        nn.Sequential(*(instantiate(spec) for spec in classifier_specs(arch))),
    )
