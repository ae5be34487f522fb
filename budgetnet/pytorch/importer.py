"""torch module -> :class:`~budgetnet.Arch` through torch.fx (``budgetnet.Arch.from_module``).

The module is traced with ``torch.fx`` in eval mode, every node's output shape propagated
on the meta device. Its forward may branch and merge, as residual, Inception, DenseNet,
ShuffleNet and squeeze-excitation networks do. The graph is read as series-parallel blocks
(each fork closed by one add, concatenation or gate product; see :mod:`budgetnet.graph.dag`);
a region that is not (Res2Net's hierarchical split, RexNet's add into a slice, DPN's dual
paths, DLA's tree aggregation) is carried through as a chain of concatenations of the maps
it still needs (:mod:`budgetnet.graph.carry`), with the same layers, weights and Eqn. (1).
What it takes (:data:`SUPPORTED`; :mod:`budgetnet.pytorch.fx_ops` reads each node):

* convs (``Conv2d``: any kernel and padding, as Inception's 1x7 and 7x1, a square stride and
  dilation, any groups; timm's ``Conv2dSame`` where its TensorFlow padding is even), batch
  norm (any ``eps``, ``momentum``, ``affine``), ``GroupNorm``, layer norm over the channels
  (``LayerNorm2d``, or ``LayerNorm`` and ``F.layer_norm`` on a channels-last map), ConvNeXt
  V2's global response norm, timm's RMS norms (``RmsNorm2d``, ``SimpleNorm2d``), timm's norm +
  activation modules, activations as modules, functions or methods (ReLU, ReLU6, LeakyReLU,
  SiLU, Hardswish, Hardsigmoid, Sigmoid, GELU, Mish, Tanh), max and average pools
  (``ceil_mode``, ``count_include_pad``), global pooling anywhere (``AdaptiveAvgPool2d(1)``,
  ``x.mean((2, 3), keepdim=True)``), residual adds, ``torch.cat`` on the channels, channel
  splits (``chunk``, ``split``, ``x[:, a:b]``) and shuffles, gates (``x * gate(x)``:
  squeeze-excitation), layer scale (a per-channel parameter times the map; HGNetV2's scalar
  scale and shift as a scale with a shift), stochastic depth (``DropPath``,
  ``StochasticDepth``), a channels-last stretch (``permute``, ``LayerNorm``, ``Linear`` as a
  1x1 conv: ConvNeXt), ``Identity`` and ``Dropout``;
* the reducer: global pooling or ``AdaptiveAvgPool2d(n)`` / ``AdaptiveMaxPool2d(n)``
  (``SPP``; one with ``n`` above the map's side, as VGG's ``AdaptiveAvgPool2d(7)`` on a 32
  px input, only repeats or averages pixels and becomes ``flat``, folded into the first
  ``Linear``'s weights), budgetnet's ``SpatialPyramidPool``, or a flatten;
* the head: ``Linear`` layers with an activation and ``Dropout`` between them; the last
  ``Linear`` is the classifier. Without a ``Linear`` the pooled map is the logits (SqueezeNet:
  an Arch with ``classifier=False``, notation ``... gap nofc``). A ``Dropout`` before the first
  Linear (or among the feature layers) has no place in an Arch: it is left out with a warning
  (the logits in eval mode are unchanged).

A batch norm is fused into the conv before it, and an activation into that conv or the
residual add before it, only where nothing else in the whole graph reads the map between
them; otherwise each stays a layer of its own (pre-activation blocks, a shortcut or a
concatenation that reads a conv's raw output). Paddings are imported as written. A residual
shortcut that equals the automatic one is stored as automatic, so a torchvision ResNet
imports equal to the same net written in the notation.

Anything else raises :class:`~budgetnet.errors.UnsupportedModuleError` naming the feature in
words and the module path: self-attention, upsampling, explicit padding, a 1-D conv outside
an ECA gate (timm's ``EcaModule`` imports as ``gate[gpool chconv(k) sigmoid]``), circular ECA,
CondConv, EvoNorm, blur pools, data-dependent control flow (fx cannot trace it), regions that
are not series-parallel and whose carried maps differ in size, and channel counts that do not
chain. Convs, norms and pools whose output nothing reads (timm's DLA computes some) are
dropped first. After the import every leaf's output shape is checked against the Arch's shape inference, and (unless ``verify=False``)
the model built from the Arch with the module's own weights must compute the module's
outputs, layer by layer, within a relative error of 1e-4 (:mod:`budgetnet.pytorch.verify`);
a mismatch of either is an :class:`~budgetnet.errors.ArchError`, so an import is never
accepted and rebuilt wrong. The work is split: :mod:`~budgetnet.pytorch.fx_trace`
(tracing, shapes), :mod:`~budgetnet.pytorch.fx_ops` (each node as an operation),
:mod:`~budgetnet.pytorch.fx_graph` (assembly into an Arch, fusion, the shape check),
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
from budgetnet.pytorch.fx_graph import Imported, ImportedLayer
from budgetnet.pytorch.fx_ops import SUPPORTED
from budgetnet.pytorch.verify import check_import
from budgetnet.pytorch.weights import copy_weights

__all__ = [
    "SUPPORTED",
    "Imported",
    "ImportedLayer",
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
        >>> [layer.name for layer in import_module(net, (1, 6, 6)).layers]
        ["'0' (Conv2d)"]
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

