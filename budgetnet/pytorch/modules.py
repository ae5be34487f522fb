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
from budgetnet.graph.layers import Act, Concat as ConcatSpec, DropPath as DropPathSpec, Gate as GateSpec
from budgetnet.graph.layers import ChannelConv as ChannelConvSpec, GlobalPool, Norm, Pad, Scale, Shuffle, Slice
from budgetnet.graph.layers import activation_slope

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


class Gate(nn.Module):
    """``x * body(x)``: squeeze-excitation and its relatives (the body ends with the gate)."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x * self.body(x)


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of each pixel of an NCHW map (ConvNeXt's)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt V2's global response norm of an NCHW map: ``x + weight * x * n + bias``, with
    ``n`` each channel's L2 norm over the map divided by the mean of those norms."""

    def __init__(self, channels, eps=1e-05, affine=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None

    def forward(self, x):
        norms = x.norm(p=2, dim=(2, 3), keepdim=True)
        response = x * (norms / (norms.mean(dim=1, keepdim=True) + self.eps))
        if self.weight is None:
            return x + response
        return x + torch.addcmul(self.bias.view(1, -1, 1, 1), self.weight.view(1, -1, 1, 1), response)


class RmsNorm2d(nn.Module):
    """RMS norm over each pixel's channels of an NCHW map: ``x / sqrt(mean(x^2) + eps) * weight``;
    with ``variance``, the channels' unbiased variance in place of the mean square (timm's
    SimpleNorm2d)."""

    def __init__(self, channels, eps=1e-05, affine=True, variance=False):
        super().__init__()
        self.eps, self.variance = eps, variance
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None

    def forward(self, x):
        spread = x.var(dim=1, keepdim=True) if self.variance else x.pow(2).mean(dim=1, keepdim=True)
        x = x * torch.rsqrt(spread + self.eps)
        return x if self.weight is None else x * self.weight.view(1, -1, 1, 1)


class LayerScale(nn.Module):
    """A learned multiplier per channel, starting at ``init`` (layer scale); with ``shift``, a
    learned shift per channel too, starting at 0."""

    def __init__(self, channels, init=1.0, shift=False):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), float(init)))
        self.beta = nn.Parameter(torch.zeros(channels)) if shift else None

    def forward(self, x):
        if self.beta is None:
            return x * self.gamma.view(1, -1, 1, 1)
        return torch.addcmul(self.beta.view(1, -1, 1, 1), x, self.gamma.view(1, -1, 1, 1))


class DropPath(nn.Module):
    """Stochastic depth: drops a whole sample with probability ``rate`` in training (the
    others scaled by ``1 / (1 - rate)``); the identity in eval mode."""

    def __init__(self, rate=0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self):
        return f"rate={self.rate}"


class ChannelSlice(nn.Module):
    """The channels ``start:stop`` of the map."""

    def __init__(self, start, stop):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x):
        return x[:, self.start : self.stop]

    def extra_repr(self):
        return f"start={self.start}, stop={self.stop}"


class ChannelConv(nn.Module):
    """ECA's conv along the channels of each pixel of an NCHW map: a ``Conv1d`` with one input
    and one output channel, zero padding ``(kernel_size - 1) // 2``, that slides over the
    channels (``conv.weight`` has timm's ``EcaModule`` shape, ``(1, 1, kernel_size)``)."""

    def __init__(self, kernel_size, bias=False):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=bias)

    def forward(self, x):
        batch, channels, height, width = x.shape
        y = x.permute(0, 2, 3, 1).reshape(batch * height * width, 1, channels)
        y = self.conv(y)
        return y.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


def init_weights(model):
    """Zero-mean Gaussian weights (std ``sqrt(2 / fan_in)``, the paper's Sec. 5) and zero
    biases; batch norms start at scale 1, shift 0."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv1d, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / module.weight[0].numel()))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


#: The helper modules a standalone file needs, by the name a spec uses.
HELPERS = {
    "SpatialPyramidPool": SpatialPyramidPool,
    "Residual": Residual,
    "Concat": Concat,
    "Gate": Gate,
    "LayerNorm2d": LayerNorm2d,
    "GlobalResponseNorm": GlobalResponseNorm,
    "RmsNorm2d": RmsNorm2d,
    "LayerScale": LayerScale,
    "DropPath": DropPath,
    "ChannelSlice": ChannelSlice,
    "ChannelConv": ChannelConv,
}
#: Each activation's module; ``inplace`` is set only where the input is the layer's own
#: (after its conv or norm, or after an add), never where a branch may share it.
_ACTIVATIONS = {
    "relu": ("nn.ReLU", {"inplace": True}),
    "relu6": ("nn.ReLU6", {"inplace": True}),
    "leaky_relu": ("nn.LeakyReLU", {"inplace": True}),
    "silu": ("nn.SiLU", {"inplace": True}),
    "hardswish": ("nn.Hardswish", {}),
    "gelu": ("nn.GELU", {}),
    "gelu_tanh": ("nn.GELU", {"approximate": "tanh"}),
    "mish": ("nn.Mish", {}),
    "tanh": ("nn.Tanh", {}),
    "sigmoid": ("nn.Sigmoid", {}),
    "hardsigmoid": ("nn.Hardsigmoid", {}),
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


def activation_spec(activation: str, inplace: bool = True) -> ModuleSpec | None:
    """The module of an activation name, ``None`` for ``"none"``; ``inplace=False`` where the
    input may be read elsewhere (an activation on its own, first in a branch).

    Example:
        >>> render(activation_spec("relu6")), render(activation_spec("leaky_relu(0.2)", inplace=False))
        ('nn.ReLU6(inplace=True)', 'nn.LeakyReLU(0.2)')
    """
    if activation == "none":
        return None
    slope = activation_slope(activation)
    name, kwargs = _ACTIVATIONS["leaky_relu" if slope is not None else activation]
    kwargs = {key: value for key, value in kwargs.items() if key != "inplace" or inplace}
    return ModuleSpec(name, (slope,) if slope is not None else (), kwargs)


def _norm_spec(norm: Norm, channels: int) -> ModuleSpec:
    options = {} if norm.eps == Norm.eps else {"eps": norm.eps}
    if norm.norm == "batch":
        if norm.momentum != Norm.momentum:
            options["momentum"] = norm.momentum
        if not norm.affine:
            options["affine"] = False
        return ModuleSpec("nn.BatchNorm2d", (channels,), options)
    if norm.norm == "group":
        return ModuleSpec("nn.GroupNorm", (norm.groups, channels), {**options, **({} if norm.affine else {"affine": False})})
    if norm.norm in ("rms", "simple"):
        variance = {"variance": True} if norm.norm == "simple" else {}
        return ModuleSpec("RmsNorm2d", (channels,), {**options, **({} if norm.affine else {"affine": False}), **variance})
    if norm.norm == "response":
        return ModuleSpec("GlobalResponseNorm", (channels,), {**options, **({} if norm.affine else {"affine": False})})
    return ModuleSpec("LayerNorm2d", (channels,), {**options, **({} if norm.affine else {"elementwise_affine": False})})


def _shape_text(info: LayerShape) -> str:
    return f"{info.name}: " + "x".join(map(str, info.in_shape)) + " -> " + "x".join(map(str, info.out_shape))


def _layer_specs(info: LayerShape, norm: str | None) -> list[ModuleSpec]:
    layer = info.layer
    channels = info.in_shape[0]
    if isinstance(layer, Conv):
        batch = layer.norm == "batch" or norm == "batch"
        kwargs = {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": layer.padding}
        if layer.dilation != 1:
            kwargs["dilation"] = layer.dilation
        if layer.groups != 1:
            kwargs["groups"] = layer.groups
        if batch:
            kwargs["bias"] = False
        specs = [ModuleSpec("nn.Conv2d", (channels, layer.out_channels), kwargs, _shape_text(info))]
        if batch:
            specs.append(_norm_spec(Norm("batch", layer.norm_eps, layer.norm_momentum), layer.out_channels))
        activation = activation_spec(layer.activation)
        return specs + ([activation] if activation else [])
    if isinstance(layer, Pool):
        name = "nn.MaxPool2d" if layer.mode == "max" else "nn.AvgPool2d"
        kwargs = {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": layer.padding}
        if layer.ceil_mode:
            kwargs["ceil_mode"] = True
        if not layer.count_include_pad:
            kwargs["count_include_pad"] = False
        return [ModuleSpec(name, (), kwargs, _shape_text(info))]
    if isinstance(layer, Norm):
        return [_norm_spec(layer, channels)]
    if isinstance(layer, Act):
        activation = activation_spec(layer.activation, inplace=False)
        return [activation] if activation else [ModuleSpec("nn.Identity")]
    if isinstance(layer, Scale):
        options = ({} if layer.init == 1.0 else {"init": layer.init}) | ({"shift": True} if layer.shift else {})
        return [ModuleSpec("LayerScale", (channels,), options)]
    if isinstance(layer, DropPathSpec):
        return [ModuleSpec("DropPath", (layer.rate,))]
    if isinstance(layer, Slice):
        return [ModuleSpec("ChannelSlice", (layer.start, layer.stop))]
    if isinstance(layer, Shuffle):
        return [ModuleSpec("nn.ChannelShuffle", (layer.groups,))]
    if isinstance(layer, Pad):
        return [ModuleSpec("nn.ZeroPad2d", ((layer.left, layer.right, layer.top, layer.bottom),))]
    if isinstance(layer, GlobalPool):
        return [ModuleSpec("nn.AdaptiveAvgPool2d" if layer.mode == "avg" else "nn.AdaptiveMaxPool2d", (1,))]
    if isinstance(layer, ChannelConvSpec):
        return [ModuleSpec("ChannelConv", (layer.kernel_size,), {"bias": True} if layer.bias else {}, _shape_text(info))]
    children = _children(info, norm)
    if isinstance(layer, ResidualSpec):
        body, shortcut = children[: len(layer.body)], children[len(layer.body) :]
        args = (_flat(body), _flat(shortcut))
        activation = activation_spec(layer.activation)
        return [ModuleSpec("Residual", args + ((activation,) if activation else ()), {}, _shape_text(info))]
    if isinstance(layer, GateSpec):
        return [ModuleSpec("Gate", (_flat(children),), {}, _shape_text(info))]
    assert isinstance(layer, ConcatSpec), layer
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
    """The modules of ``arch``'s feature layers and blocks, in order (``model.features``)."""
    return [spec for specs in layer_specs(arch, norm) for spec in specs]


def layer_specs(arch: Arch, norm: str | None = None) -> list[list[ModuleSpec]]:
    """:func:`feature_specs` per top-level feature layer (a conv with its norm and
    activation, a pool, a norm, a block, ...), in order.

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,8)bn 2/2 bn gap", input_shape=(1, 8, 8))
        >>> [[spec.name for spec in specs] for specs in layer_specs(arch)]
        [['nn.Conv2d', 'nn.BatchNorm2d', 'nn.ReLU'], ['nn.MaxPool2d'], ['nn.BatchNorm2d']]
    """
    return [_layer_specs(info, norm) for info in arch.features]


def pool_spec(arch: Arch) -> ModuleSpec:
    """The reducer between the features and the classifier (``model.pool``)."""
    for layer in arch.head:
        if isinstance(layer, SPP):
            return ModuleSpec("SpatialPyramidPool", (tuple(layer.levels), layer.mode))
    return ModuleSpec("nn.Flatten")


def classifier_specs(arch: Arch) -> list[ModuleSpec]:
    """Hidden fc layers (Linear, ReLU, Dropout) and the final classifier (``model.classifier``;
    none for an Arch made with ``classifier=False``)."""
    specs = []
    for info in arch.shapes:
        if isinstance(info.layer, FC):
            specs.append(ModuleSpec("nn.Linear", (info.in_shape[0], info.layer.out_features)))
            activation = activation_spec(info.layer.activation)
            specs += [activation] if activation else []
            if info.layer.dropout:
                specs.append(ModuleSpec("nn.Dropout", (info.layer.dropout,)))
    if arch.classifier:
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


def built_layers(arch: Arch, model: nn.Module) -> tuple[list, list]:
    """The modules :func:`budgetnet.build` made for each layer of ``arch``: ``(leaves,
    blocks)``, ``leaves`` a list of ``(LayerShape, [modules])`` for every leaf feature layer
    (a conv with its norm and activation, a pool, a norm, ...) and ``blocks`` a list of
    ``(LayerShape, module)``, both in :meth:`Arch.walk` order.

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,8)bn res[(3,8) | id] gap", input_shape=(1, 8, 8))
        >>> leaves, blocks = built_layers(arch, budgetnet.build(arch))
        >>> [(info.name, len(modules)) for info, modules in leaves], [info.name for info, _ in blocks]
        ([('conv1', 3), ('res1.conv1', 2)], ['res1'])
    """
    leaves: list = []
    blocks: list = []

    def visit(infos, modules) -> None:
        position = 0
        for info in infos:
            layer = info.layer
            if isinstance(layer, (ResidualSpec, ConcatSpec, GateSpec)):
                block = modules[position]
                position += 1
                blocks.append((info, block))
                if isinstance(layer, ResidualSpec):
                    visit(info.inner[: len(layer.body)], list(block.body))
                    visit(info.inner[len(layer.body) :], list(block.shortcut))
                elif isinstance(layer, GateSpec):
                    visit(info.inner, list(block.body))
                else:
                    start = 0
                    for branch, built in zip(layer.branches, block.branches):
                        visit(info.inner[start : start + len(branch)], list(built))
                        start += len(branch)
            else:
                count = 1 + (isinstance(layer, Conv) and layer.norm == "batch") + (
                    isinstance(layer, Conv) and layer.activation != "none"
                )
                leaves.append((info, modules[position : position + count]))
                position += count

    visit(arch.features, list(model.features))
    return leaves, blocks
