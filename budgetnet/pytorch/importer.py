"""torch module -> :class:`~budgetnet.Arch` through torch.fx (``budgetnet.Arch.from_module``).

The module is traced with ``torch.fx``; its forward may branch and merge, as residual and
Inception/DenseNet networks do, as long as the graph is series-parallel (each fork closed by
one add or concatenation; see :mod:`budgetnet.graph.dag`):

* features: ``Conv2d`` (square kernel, stride and padding, any ``groups``: a conv with one
  group per input channel is depthwise; no dilation, zero padding), each optionally followed
  by ``BatchNorm2d`` and an activation (``ReLU``, ``ReLU6``, ``SiLU``, ``Hardswish``,
  ``GELU``: modules or ``F.relu`` / ``torch.relu`` / ``Tensor.relu`` and friends);
  ``MaxPool2d`` / ``AvgPool2d`` (square, ``ceil_mode=False``) and their functional forms with
  constant arguments; residual adds (``+``, ``+=``, ``torch.add``, ``Tensor.add``) followed
  by an optional activation; ``torch.cat(..., dim=1)``; ``Identity`` and ``Dropout`` (no-ops
  in a feature map);
* the reducer: ``AdaptiveAvgPool2d(n)`` / ``AdaptiveMaxPool2d(n)`` (becomes ``SPP((n,),
  mode)``; ``AdaptiveAvgPool2d(1)`` is ``gap``; with ``n`` above the map's side, as VGG's
  ``AdaptiveAvgPool2d(7)`` on a 32 px input, it only repeats or averages pixels and becomes
  ``flat``, the pooling folded into the first ``Linear``'s weights by :func:`copy_weights`),
  budgetnet's own ``SpatialPyramidPool``, or a
  flatten (``nn.Flatten``, ``torch.flatten(x, 1)``, ``x.flatten(1)``,
  ``x.view(x.size(0), -1)``, ``x.reshape(x.shape[0], -1)``, ``x.view(-1, N)``);
* the head: ``Linear`` layers with ``ReLU`` and ``Dropout`` between them. The last
  ``Linear`` is the classifier (its width is ``num_classes``); each earlier one becomes an
  ``FC`` whose dropout is the ``Dropout`` that follows it or stands before the next Linear.
  A ``Dropout`` before the first Linear (AlexNet, MobileNetV2) has no place in an Arch: it
  is left out with a warning (the logits in eval mode are unchanged).

A conv's bias is dropped where batch norm follows (it is folded into the norm's running
mean when weights are copied). Paddings are imported as written, so the paper's automatic
padding rules do not apply. A residual shortcut that equals the automatic one (identity, or
the 1x1 projection with batch norm) is stored as automatic, so a torchvision ResNet imports
equal to the same net written in the notation.

Anything else raises :class:`~budgetnet.errors.UnsupportedModuleError` naming the module
(qualified name and type) and the operation: dilated or non-square convs, ``ceil_mode``
pools, squeeze-excitation (a product of two tensors), attention, recurrent layers, unknown
modules or functions, data-dependent control flow (fx cannot trace it), graphs that are not
series-parallel, and channel counts that do not chain. A batch norm or activation is fused
into the conv (or residual add) before it only where nothing else in the whole graph reads
that layer's raw output; otherwise (pre-activation blocks, a shortcut or concatenation that
reads the map before the norm or activation) it is refused by name, as the IR has no
standalone norm or activation layer yet.

After the import, one forward pass of a zero input (on the meta device) checks every layer's
output shape against the Arch's shape inference, and (unless ``verify=False``) the model
built from the Arch with the module's own weights must compute the module's outputs, layer by
layer, within a relative error of 1e-4 (:mod:`budgetnet.pytorch.verify`); a mismatch of either
is an :class:`~budgetnet.errors.ArchError`, so an import is never accepted and rebuilt wrong.

The work is split: :mod:`~budgetnet.pytorch.fx_trace` (tracing, each node as a step),
:mod:`~budgetnet.pytorch.fx_graph` (assembly into an Arch, the shape check),
:mod:`~budgetnet.pytorch.weights` (weight copying), :mod:`~budgetnet.pytorch.verify` (the
numeric check); this module is the public entry.

Example:
    >>> import torch.nn as nn, budgetnet
    >>> net = nn.Sequential(
    ...     nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
    ...     nn.Flatten(), nn.Linear(8 * 4 * 4, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10),
    ... )
    >>> arch = budgetnet.Arch.from_module(net, (1, 8, 8))
    >>> str(arch), arch.num_classes, budgetnet.conv_macs(arch)
    ('(3,8)p1bn 2/2 flat fc(32,0.2)', 10, 4608)
"""

from __future__ import annotations

import sys
import warnings
from typing import Sequence

import torch
from torch import nn

from budgetnet.graph.arch import Arch
from budgetnet.pytorch import fx_graph
from budgetnet.pytorch.fx_graph import Imported, ImportedConv
from budgetnet.pytorch.fx_trace import SUPPORTED
from budgetnet.pytorch.verify import check_import
from budgetnet.pytorch.weights import copy_weights

__all__ = [
    "SUPPORTED",
    "Imported",
    "ImportedConv",
    "arch_from_module",
    "copy_weights",
    "import_module",
    "import_torchvision",
]


def arch_from_module(module: nn.Module, input_shape: Sequence[int], verify: bool = True) -> Arch:
    """Import a torch CNN as an Arch (see the module docstring for what is supported).

    Args:
        module: a ``torch.nn.Module`` built from supported layers, residual adds and concatenations.
        input_shape: ``(channels, height, width)`` of one input image.
        verify: check numerically that ``build(arch, weights_from=module)`` computes the
            module's outputs (eval mode, one seeded random image, relative error at most 1e-4,
            layer by layer; :func:`budgetnet.pytorch.verify.check_import`). ``False`` skips
            that check (the output shapes are still checked); the module is never changed.

    Returns:
        The Arch, with explicit paddings, hidden fc layers and ``num_classes`` from the last
        ``Linear``; its inferred shapes are checked against one forward pass of the module.

    Raises:
        UnsupportedModuleError: a layer, function or graph shape that an Arch cannot express.
        ArchError: the module's real output shapes differ from the Arch's shape inference, or
            (with ``verify``) the rebuilt model computes other values, naming the first layer.

    Example:
        >>> import torch.nn as nn, budgetnet
        >>> net = nn.Sequential(nn.Conv2d(3, 16, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(16, 5))
        >>> str(budgetnet.Arch.from_module(net, (3, 32, 32)))
        '(5,16)/2p0 gap'
        >>> str(budgetnet.Arch.from_module(net, (3, 32, 32), verify=False))
        '(5,16)/2p0 gap'
    """
    return import_module(module, input_shape, verify=verify).arch


def import_module(module: nn.Module, input_shape: Sequence[int], verify: bool = True) -> Imported:
    """:func:`arch_from_module` with the torch modules behind each conv and Linear.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
        >>> [(conv.name, conv.norm_name) for conv in import_module(net, (1, 6, 6)).convs]
        [('0', None)]
    """
    imported = fx_graph.import_module(module, input_shape)
    if verify:
        check_import(module, imported)
    return imported


_LIBRARIES: list = []


def import_torchvision():
    """``import torchvision``, also where its compiled ops do not match the installed torch.

    PyPI's torchvision 0.28 is a CUDA build; beside a CPU build of torch its C++ ops fail to
    load and ``import torchvision`` dies registering a fake kernel for ``torchvision::nms``.
    The models are plain Python, so this declares the two op schemas that import needs
    (they stay without kernels: detection ops would fail, classification models work).

    Example:
        >>> tv = import_torchvision()
        >>> type(tv.models.resnet18()).__name__
        'ResNet'
    """
    try:
        import torchvision
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
            del sys.modules[name]
        library = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            try:
                library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            except RuntimeError:  # already declared by an earlier call
                pass
        _LIBRARIES.append(library)  # a Library object drops its definitions when collected
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torchvision
    return torchvision

