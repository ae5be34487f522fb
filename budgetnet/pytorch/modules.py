"""The one description of an Arch in torch, shared by :func:`budgetnet.build` and the
standalone ``.py`` export.

:func:`feature_specs` turns the inferred layers into :class:`ModuleSpec` trees
(``nn.Conv2d(...)``, ``nn.BatchNorm2d(...)``, an activation, pools, :class:`Residual`,
:class:`Concat`); :func:`instantiate` makes the modules and :func:`render` writes the same
tree as Python source, so a state dict of one loads into the other. The helper modules below
are written into exported files with ``inspect.getsource``: they import only torch.

Example:
    >>> import budgetnet
    >>> arch = budgetnet.parse("(3,8)bn res[(3,8)bn (3,8)bn@none] gap", input_shape=(1, 8, 8))
    >>> [render(spec) for spec in feature_specs(arch)][:3]
    ['nn.Conv2d(1, 8, kernel_size=3, stride=1, padding=1, bias=False)', 'nn.BatchNorm2d(8)', 'nn.ReLU(inplace=True)']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from budgetnet.graph.arch import FC, SPP, Arch, Conv, LayerShape, Pool, Residual as ResidualSpec

#: norm values :func:`feature_specs` takes: ``None`` keeps each conv's own, ``"batch"`` adds
#: batch norm to every conv.
NORMS = (None, "batch")


class SpatialPyramidPool(nn.Module):
    """Max (or average) pooling into an ``l x l`` grid per level, concatenated (Sec. 5).

    Each level is an adaptive pool, which equals the paper's sliding window of size
    ``ceil(a / l)`` and stride ``floor(a / l)`` whenever ``l`` divides the map side ``a``
    (as it does for the paper's 18 and 6) and stays defined for every map size.
    """

    def __init__(self, levels, mode="max"):
        super().__init__()
        self.levels = tuple(levels)
        self.mode = mode
        self.pool = nn.functional.adaptive_max_pool2d if mode == "max" else nn.functional.adaptive_avg_pool2d

    def forward(self, x):
        return torch.cat([self.pool(x, level).flatten(1) for level in self.levels], dim=1)

    def extra_repr(self):
        return f"levels={self.levels}, mode={self.mode!r}"


class Residual(nn.Module):
    """``activation(body(x) + shortcut(x))``; an empty ``shortcut`` is the identity."""

    def __init__(self, body, shortcut, activation=None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x):
        return self.activation(self.body(x) + self.shortcut(x))


class Concat(nn.Module):
    """The branches' outputs concatenated along the channels; an empty branch passes x on."""

    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def init_weights(model):
    """Zero-mean Gaussian weights (std ``sqrt(2 / fan_in)``, the paper's Sec. 5) and zero
    biases; batch norms start at scale 1, shift 0."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / module.weight[0].numel()))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


#: The helper modules a standalone file needs, by the name a spec uses.
HELPERS = {"SpatialPyramidPool": SpatialPyramidPool, "Residual": Residual, "Concat": Concat}
_ACTIVATIONS = {
    "relu": ("nn.ReLU", {"inplace": True}),
    "relu6": ("nn.ReLU6", {"inplace": True}),
    "silu": ("nn.SiLU", {"inplace": True}),
    "hardswish": ("nn.Hardswish", {}),
    "gelu": ("nn.GELU", {}),
}


@dataclass(frozen=True)
class ModuleSpec:
    """One torch module to make: ``name`` (``"nn.Conv2d"`` or a helper), its arguments
    (literals, ModuleSpecs, or tuples of ModuleSpecs that become ``nn.Sequential``), and a
    comment for the exported source."""

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    comment: str = ""


def activation_spec(activation: str) -> ModuleSpec | None:
    """The module of an activation name, ``None`` for ``"none"``.

    Example:
        >>> render(activation_spec("relu6"))
        'nn.ReLU6(inplace=True)'
    """
    if activation == "none":
        return None
    name, kwargs = _ACTIVATIONS[activation]
    return ModuleSpec(name, (), dict(kwargs))


def _shape_text(info: LayerShape) -> str:
    return f"{info.name}: " + "x".join(map(str, info.in_shape)) + " -> " + "x".join(map(str, info.out_shape))


def _layer_specs(info: LayerShape, norm: str | None) -> list[ModuleSpec]:
    layer = info.layer
    if isinstance(layer, Conv):
        batch = layer.norm == "batch" or norm == "batch"
        kwargs = {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": layer.padding}
        if layer.groups != 1:
            kwargs["groups"] = layer.groups
        if batch:
            kwargs["bias"] = False
        specs = [ModuleSpec("nn.Conv2d", (info.in_shape[0], layer.out_channels), kwargs, _shape_text(info))]
        if batch:
            specs.append(ModuleSpec("nn.BatchNorm2d", (layer.out_channels,)))
        activation = activation_spec(layer.activation)
        return specs + ([activation] if activation else [])
    if isinstance(layer, Pool):
        name = "nn.MaxPool2d" if layer.mode == "max" else "nn.AvgPool2d"
        kwargs = {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": layer.padding}
        return [ModuleSpec(name, (), kwargs, _shape_text(info))]
    children = _children(info, norm)
    if isinstance(layer, ResidualSpec):
        body, shortcut = children[: len(layer.body)], children[len(layer.body) :]
        args = (_flat(body), _flat(shortcut))
        activation = activation_spec(layer.activation)
        return [ModuleSpec("Residual", args + ((activation,) if activation else ()), {}, _shape_text(info))]
    branches, position = [], 0
    for branch in layer.branches:
        branches.append(_flat(children[position : position + len(branch)]))
        position += len(branch)
    return [ModuleSpec("Concat", tuple(branches), {}, _shape_text(info))]


def _children(info: LayerShape, norm) -> list[list[ModuleSpec]]:
    return [_layer_specs(child, norm) for child in info.inner]


def _flat(groups: Sequence[Sequence[ModuleSpec]]) -> tuple[ModuleSpec, ...]:
    return tuple(spec for group in groups for spec in group)


def feature_specs(arch: Arch, norm: str | None = None) -> list[ModuleSpec]:
    """The modules of ``arch``'s convs, pools and blocks, in order (``model.features``)."""
    return [spec for info in arch.features for spec in _layer_specs(info, norm)]


def pool_spec(arch: Arch) -> ModuleSpec:
    """The reducer between the features and the classifier (``model.pool``)."""
    for layer in arch.head:
        if isinstance(layer, SPP):
            return ModuleSpec("SpatialPyramidPool", (tuple(layer.levels), layer.mode))
    return ModuleSpec("nn.Flatten")


def classifier_specs(arch: Arch) -> list[ModuleSpec]:
    """Hidden fc layers (Linear, ReLU, Dropout) and the final classifier (``model.classifier``)."""
    specs = []
    for info in arch.shapes:
        if isinstance(info.layer, FC):
            specs += [ModuleSpec("nn.Linear", (info.in_shape[0], info.layer.out_features)), activation_spec("relu")]
            if info.layer.dropout:
                specs.append(ModuleSpec("nn.Dropout", (info.layer.dropout,)))
    specs.append(ModuleSpec("nn.Linear", (arch.shapes[-1].out_shape[0], arch.num_classes)))
    return specs


def _make(value):
    if isinstance(value, ModuleSpec):
        return instantiate(value)
    if isinstance(value, tuple) and all(isinstance(item, ModuleSpec) for item in value):
        return nn.Sequential(*(instantiate(item) for item in value))
    return value


def instantiate(spec: ModuleSpec) -> nn.Module:
    """The torch module a spec describes.

    Example:
        >>> instantiate(ModuleSpec("nn.Conv2d", (3, 8), {"kernel_size": 3}))
        Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))
    """
    if spec.name.startswith("nn."):
        cls = getattr(nn, spec.name[3:])
    else:
        cls = HELPERS[spec.name]
    return cls(*(_make(arg) for arg in spec.args), **{key: _make(value) for key, value in spec.kwargs.items()})


def _source(value, indent: str) -> str:
    if isinstance(value, ModuleSpec):
        return render(value, indent)
    if isinstance(value, tuple) and all(isinstance(item, ModuleSpec) for item in value):
        if not value:
            return "nn.Sequential()"
        inner = indent + "    "
        return "nn.Sequential(\n" + "".join(f"{inner}{render(item, inner)},\n" for item in value) + f"{indent})"
    return repr(value)


def render(spec: ModuleSpec, indent: str = "") -> str:
    """Python source that makes the module (nested specs indented below ``indent``).

    Example:
        >>> render(ModuleSpec("nn.Conv2d", (3, 8), {"kernel_size": 3}))
        'nn.Conv2d(3, 8, kernel_size=3)'
    """
    parts = [_source(arg, indent) for arg in spec.args]
    parts += [f"{key}={_source(value, indent)}" for key, value in spec.kwargs.items()]
    return f"{spec.name}({', '.join(parts)})"


def helpers_used(specs: Sequence[ModuleSpec]) -> list[str]:
    """Names of the helper classes the specs (and their children) need, in HELPERS order."""
    found = set()

    def visit(value):
        if isinstance(value, ModuleSpec):
            if value.name in HELPERS:
                found.add(value.name)
            for item in (*value.args, *value.kwargs.values()):
                visit(item)
        elif isinstance(value, tuple):
            for item in value:
                visit(item)

    for spec in specs:
        visit(spec)
    return [name for name in HELPERS if name in found]
