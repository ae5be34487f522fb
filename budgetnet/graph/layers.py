"""Layer specs: frozen dataclasses that describe one layer or one block of an :class:`~budgetnet.Arch`.

Leaf layers are :class:`Conv`, :class:`Pool`, :class:`SPP`, :class:`Flatten` and :class:`FC`,
and the layers of today's CNNs that keep the map's size: :class:`Norm` (batch, group or
channel layer norm), :class:`Act` (an activation on its own), :class:`Scale` (layer scale),
:class:`DropPath` (stochastic depth), :class:`Slice` and :class:`Shuffle` (channel
operations), :class:`GlobalPool` (the map pooled to 1x1 inside the features) and
:class:`ChannelConv` (ECA's 1-D conv along the channels of each pixel). Three
blocks hold branches of leaf layers (or of further blocks):

* :class:`Residual` adds its ``body`` to a shortcut (identity, or a 1x1 projection when the
  shapes differ: ResNet option B), then applies its activation;
* :class:`Concat` concatenates the channels of its branches (an empty branch passes its
  input through, as in DenseNet);
* :class:`Gate` multiplies its input by what its ``body`` makes of it (squeeze-excitation:
  global pooling, two 1x1 convs, a sigmoid).

:class:`Add`, :class:`Cat` and :class:`Mul` are the join nodes of a hand-made ``networkx``
graph; an Arch turns them into the blocks above (see :mod:`budgetnet.graph.dag`).

Example:
    >>> block = Residual((Conv(1, 64, norm="batch"), Conv(3, 64, norm="batch"), Conv(1, 256, norm="batch", activation="none")))
    >>> block.kind, len(block.body)
    ('res', 3)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Iterable, Sequence, Union

from budgetnet.checks import check_shape, is_int
from budgetnet.errors import ArchError, LayerSpecError

POOL_MODES = ("max", "avg")
#: Activations a conv, an fc, a residual add or an :class:`Act` may apply; ``"none"`` is
#: linear. ``"leaky_relu"`` has slope 0.01; ``"leaky_relu(0.2)"`` names another slope.
ACTIVATIONS = (
    "relu", "relu6", "leaky_relu", "silu", "hardswish", "gelu", "gelu_tanh", "mish", "tanh",
    "sigmoid", "hardsigmoid", "none",
)  # fmt: skip
#: Normalizations a conv may carry between the conv and its activation.
NORMS = (None, "batch")
#: What a :class:`Norm` normalizes over: batch statistics, channel groups, or the channels
#: of each pixel (ConvNeXt's ``LayerNorm2d``).
NORM_TYPES = ("batch", "group", "layer", "response", "rms", "simple")
#: torch's defaults for batch norm.
DEFAULT_EPS = 1e-5
DEFAULT_MOMENTUM = 0.1
_LEAKY = re.compile(r"leaky_relu\(([0-9.eE+-]+)\)")
PAPER_SPP_LEVELS = (6, 3, 2, 1)
PAPER_FC_UNITS = 4096
PAPER_DROPOUT = 0.5
#: Most blocks (``res[``, ``cat[``, ``gate[``) one inside another that the notation parser and
#: the JSON reader accept: deeper nesting is refused by name before Python's recursion limit
#: is reached (a 64-deep net still builds and runs; 150 does not).
MAX_NESTING = 64


def check_int(layer: str, field: str, value, minimum: int) -> None:
    """Raise :class:`LayerSpecError` unless ``value`` is an integer >= ``minimum``.

    Example:
        >>> check_int("conv", "groups", 0, 1)
        Traceback (most recent call last):
        ...
        budgetnet.errors.LayerSpecError: conv: groups=0 is invalid; expected an integer >= 1
    """
    if not is_int(value, minimum):
        raise LayerSpecError(layer, field, value, f"an integer >= {minimum}")


def _sides(layer: str, field: str, value, minimum: int):
    """An integer, or a pair ``(height, width)`` of integers (one integer when they are equal)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or not all(is_int(side, minimum) for side in value):
            raise LayerSpecError(layer, field, value, f"an integer >= {minimum} or a pair (height, width) of them")
        return value[0] if value[0] == value[1] else (value[0], value[1])
    check_int(layer, field, value, minimum)
    return value


def _check_choice(layer: str, field: str, value, choices) -> None:
    if value not in choices:
        raise LayerSpecError(layer, field, value, f"one of {choices}")


def activation_slope(activation: str) -> float | None:
    """The negative slope of a leaky ReLU activation name, ``None`` for the others.

    Example:
        >>> activation_slope("leaky_relu"), activation_slope("leaky_relu(0.2)"), activation_slope("relu")
        (0.01, 0.2, None)
    """
    if activation == "leaky_relu":
        return 0.01
    match = _LEAKY.fullmatch(activation) if isinstance(activation, str) else None
    return float(match.group(1)) if match else None


def check_activation(layer: str, field: str, value) -> None:
    """Raise :class:`LayerSpecError` unless ``value`` is one of :data:`ACTIVATIONS` or a
    leaky ReLU with a slope, ``"leaky_relu(0.2)"``.

    Example:
        >>> check_activation("act", "activation", "swish")
        Traceback (most recent call last):
        ...
        budgetnet.errors.LayerSpecError: act: activation='swish' is invalid; expected one of ACTIVATIONS (relu, relu6, leaky_relu, silu, hardswish, gelu, gelu_tanh, mish, tanh, sigmoid, hardsigmoid, none) or leaky_relu(SLOPE)
    """
    if value in ACTIVATIONS:
        return
    try:
        slope = activation_slope(value)
    except ValueError:
        slope = None
    if slope is None or not math.isfinite(slope):
        raise LayerSpecError(layer, field, value, f"one of ACTIVATIONS ({', '.join(ACTIVATIONS)}) or leaky_relu(SLOPE)")


def _check_number(layer: str, field: str, value, low: float, high: float | None = None, low_open: bool = True) -> None:
    """A real number in ``(low, high]`` (``[low, high]`` when not ``low_open``)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>' if low_open else '>='} {low:g}" + ("" if high is None else f" and <= {high:g}")
        raise LayerSpecError(layer, field, value, f"a number {bound}")


def _repr(self) -> str:
    """The dataclass repr without the optional fields that hold their default (so the specs
    of plain nets read as they did before those fields existed)."""
    hidden = _REPR_HIDDEN.get(type(self), ())
    optional = _OPTIONAL.get(type(self), {})
    parts = [
        f"{f.name}={getattr(self, f.name)!r}"
        for f in fields(self)
        if not (f.name in hidden and getattr(self, f.name) == optional[f.name])
    ]
    return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(frozen=True)
class Conv:
    """A convolution, optionally batch-normalized, then its activation.

    Args:
        kernel_size: filter side ``s``, or ``(height, width)`` for a non-square filter
            (Inception's 1x7 and 7x1; stored as one number when the sides are equal).
        out_channels: number of filters ``n`` (the paper's "width").
        stride: subsampling factor.
        padding: pixels on each side, ``(rows, columns)`` for a non-square filter, or ``None``
            to follow the paper's rules (a non-square filter: each odd side padded to keep the map).
        groups: grouped convolution (ResNeXt's cardinality); in and out channels must divide.
        depthwise: one group per input channel (MobileNet); ``out_channels`` is then a
            multiple of the input channels (the channel multiplier). Shape inference sets
            ``groups`` to the input channels.
        activation: one of :data:`ACTIVATIONS` (``"none"``: linear).
        norm: ``None`` or ``"batch"`` (BatchNorm between the conv and the activation).
        dilation: spacing of the kernel's taps (``d > 1``: a dilated conv, field
            ``d * (k - 1) + 1`` wide); Eqn. (1) counts the ``k x k`` taps.
        norm_eps, norm_momentum: the batch norm's ``eps`` and ``momentum`` (torch's
            defaults 1e-5 and 0.1; TensorFlow-born nets use 1e-3 and 0.01).

    Example:
        >>> Conv(3, 256)
        Conv(kernel_size=3, out_channels=256, stride=1, padding=None, groups=1, depthwise=False, activation='relu', norm=None)
        >>> Conv(3, 32, norm="batch", norm_eps=1e-3, dilation=2)
        Conv(kernel_size=3, out_channels=32, stride=1, padding=None, groups=1, depthwise=False, activation='relu', norm='batch', dilation=2, norm_eps=0.001)
        >>> Conv((1, 7), 192, padding=(0, 3)).kernel_hw, Conv((3, 3), 8).kernel_size
        ((1, 7), 3)
    """

    kernel_size: int | tuple[int, int]
    out_channels: int
    stride: int = 1
    padding: int | tuple[int, int] | None = None
    groups: int = 1
    depthwise: bool = False
    activation: str = "relu"
    norm: str | None = None
    dilation: int = 1
    norm_eps: float = DEFAULT_EPS
    norm_momentum: float = DEFAULT_MOMENTUM

    kind = "conv"
    __repr__ = _repr

    def __post_init__(self):
        object.__setattr__(self, "kernel_size", _sides("conv", "kernel_size", self.kernel_size, 1))
        check_int("conv", "out_channels", self.out_channels, 1)
        check_int("conv", "stride", self.stride, 1)
        if self.padding is not None:
            object.__setattr__(self, "padding", _sides("conv", "padding", self.padding, 0))
        check_int("conv", "groups", self.groups, 1)
        if not isinstance(self.depthwise, bool):
            raise LayerSpecError("conv", "depthwise", self.depthwise, "True or False")
        if self.out_channels % self.groups:
            raise LayerSpecError(
                "conv", "groups", self.groups, f"a divisor of out_channels={self.out_channels}"
            )
        check_activation("conv", "activation", self.activation)
        _check_choice("conv", "norm", self.norm, NORMS)
        check_int("conv", "dilation", self.dilation, 1)
        _check_number("conv", "norm_eps", self.norm_eps, 0.0)
        _check_number("conv", "norm_momentum", self.norm_momentum, 0.0, 1.0, low_open=False)
        if self.norm is None and (self.norm_eps, self.norm_momentum) != (DEFAULT_EPS, DEFAULT_MOMENTUM):
            raise LayerSpecError("conv", "norm_eps", self.norm_eps, "the defaults without norm='batch'")

    @property
    def square(self) -> bool:
        """True for a conv that treats rows and columns alike: a square filter and padding
        (every rewrite rule's conv; a 1x7, or a 3x3 padded ``(1, 0)``, is not)."""
        return isinstance(self.kernel_size, int) and not isinstance(self.padding, tuple)

    @property
    def kernel_hw(self) -> tuple[int, int]:
        """The filter's ``(height, width)``."""
        return self.kernel_size if isinstance(self.kernel_size, tuple) else (self.kernel_size, self.kernel_size)

    @property
    def field(self) -> int:
        """The side of the input window one output pixel sees, ``dilation * (k - 1) + 1``
        (square filters; :attr:`field_hw` gives both sides of any filter)."""
        if isinstance(self.kernel_size, tuple):
            raise ArchError(f"conv kernel_size={self.kernel_size} is not square; expected field_hw for its two sides")
        return self.dilation * (self.kernel_size - 1) + 1

    @property
    def field_hw(self) -> tuple[int, int]:
        """The input window one output pixel sees, ``(height, width)``."""
        return tuple(self.dilation * (k - 1) + 1 for k in self.kernel_hw)


@dataclass(frozen=True)
class Pool:
    """A square max or average pooling window; ``stride`` defaults to ``kernel_size``.

    ``ceil_mode`` rounds the output side up (torch's ``ceil_mode=True``, GoogLeNet's pools);
    ``count_include_pad=False`` averages over the pixels inside the map only.

    Example:
        >>> Pool(3)
        Pool(kernel_size=3, stride=3, padding=0, mode='max')
        >>> Pool(2, 2, mode="avg", ceil_mode=True, count_include_pad=False)
        Pool(kernel_size=2, stride=2, padding=0, mode='avg', ceil_mode=True, count_include_pad=False)
    """

    kernel_size: int
    stride: int | None = None
    padding: int = 0
    mode: str = "max"
    ceil_mode: bool = False
    count_include_pad: bool = True

    kind = "pool"
    __repr__ = _repr

    def __post_init__(self):
        check_int("pool", "kernel_size", self.kernel_size, 1)
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size)
        check_int("pool", "stride", self.stride, 1)
        check_int("pool", "padding", self.padding, 0)
        if self.padding * 2 > self.kernel_size:
            raise LayerSpecError("pool", "padding", self.padding, "at most half the kernel size")
        _check_choice("pool", "mode", self.mode, POOL_MODES)
        _check_choice("pool", "ceil_mode", self.ceil_mode, (False, True))
        _check_choice("pool", "count_include_pad", self.count_include_pad, (True, False))


@dataclass(frozen=True)
class SPP:
    """Spatial pyramid pooling: one ``l x l`` grid of bins per level, concatenated.

    The paper's is ``SPP((6, 3, 2, 1))``, 50 bins. ``SPP((1,), "avg")`` is global average
    pooling.

    Example:
        >>> SPP().bins
        50
    """

    levels: tuple[int, ...] = PAPER_SPP_LEVELS
    mode: str = "max"

    kind = "spp"

    def __post_init__(self):
        levels = self.levels
        if isinstance(levels, int) or not isinstance(levels, Iterable):
            raise LayerSpecError("spp", "levels", levels, "a non-empty list of integers >= 1")
        levels = tuple(levels)
        if not levels:
            raise LayerSpecError("spp", "levels", levels, "a non-empty list of integers >= 1")
        for level in levels:
            check_int("spp", "levels", level, 1)
        object.__setattr__(self, "levels", levels)
        _check_choice("spp", "mode", self.mode, POOL_MODES)

    @property
    def bins(self) -> int:
        return sum(level * level for level in self.levels)


@dataclass(frozen=True)
class Flatten:
    """Flatten the feature map into a vector without pooling."""

    kind = "flatten"


@dataclass(frozen=True)
class FC:
    """A hidden fully-connected layer with its activation (ReLU unless named) and dropout
    (the classifier is implicit).

    Example:
        >>> FC(4096)
        FC(out_features=4096, dropout=0.5)
        >>> FC(1280, 0.2, "hardswish")
        FC(out_features=1280, dropout=0.2, activation='hardswish')
    """

    out_features: int
    dropout: float = PAPER_DROPOUT
    activation: str = "relu"

    kind = "fc"
    __repr__ = _repr

    def __post_init__(self):
        check_int("fc", "out_features", self.out_features, 1)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not (
            0.0 <= self.dropout < 1.0
        ):
            raise LayerSpecError("fc", "dropout", self.dropout, "a number in [0, 1)")
        object.__setattr__(self, "dropout", float(self.dropout))
        check_activation("fc", "activation", self.activation)


@dataclass(frozen=True)
class Norm:
    """A normalization on its own (not fused into a conv): batch norm anywhere (pre-activation,
    after a pool or a concat), group norm, layer norm over each pixel's channels, or ConvNeXt
    V2's global response norm (``"response"``: ``x + gamma * x * N(x) + beta``, ``N(x)`` each
    channel's L2 norm over the map divided by its mean over the channels), or an RMS norm over
    each pixel's channels (``"rms"``: ``x / sqrt(mean(x^2) + eps) * gamma``; ``"simple"``,
    timm's SimpleNorm: the channels' unbiased variance in place of the mean square).

    Args:
        norm: one of :data:`NORM_TYPES`.
        eps, momentum: torch's ``eps`` and (batch norm) ``momentum``.
        affine: a learned scale and shift per channel (the response norm's ``gamma``, ``beta``;
            the RMS norms have the scale only).
        groups: the channel groups of a group norm (it must divide the channels).

    Example:
        >>> Norm("group", groups=32)
        Norm(norm='group', eps=1e-05, momentum=0.1, affine=True, groups=32)
    """

    norm: str = "batch"
    eps: float = DEFAULT_EPS
    momentum: float = DEFAULT_MOMENTUM
    affine: bool = True
    groups: int | None = None

    kind = "norm"

    def __post_init__(self):
        _check_choice("norm", "norm", self.norm, NORM_TYPES)
        _check_number("norm", "eps", self.eps, 0.0)
        _check_number("norm", "momentum", self.momentum, 0.0, 1.0, low_open=False)
        _check_choice("norm", "affine", self.affine, (True, False))
        if self.norm == "group":
            check_int("norm", "groups", self.groups, 1)
        elif self.groups is not None:
            raise LayerSpecError("norm", "groups", self.groups, "None unless norm='group'")


@dataclass(frozen=True)
class Act:
    """An activation on its own: after a pool, a norm or a concat, or first in a branch.

    Example:
        >>> Act("leaky_relu(0.1)")
        Act(activation='leaky_relu(0.1)')
    """

    activation: str = "relu"

    kind = "act"

    def __post_init__(self):
        check_activation("act", "activation", self.activation)


@dataclass(frozen=True)
class Scale:
    """Layer scale: a learned multiplier per channel, starting at ``init`` (ConvNeXt: 1e-6);
    with ``shift``, a learned shift per channel too, starting at 0 (HGNetV2's learnable affine).

    Example:
        >>> Scale(1e-6).init, Scale(shift=True).shift
        (1e-06, True)
    """

    init: float = 1.0
    shift: bool = False

    kind = "scale"
    __repr__ = _repr

    def __post_init__(self):
        _check_number("scale", "init", self.init, 0.0, low_open=False)
        _check_choice("scale", "shift", self.shift, (False, True))


@dataclass(frozen=True)
class DropPath:
    """Stochastic depth: in training, a whole sample's branch is dropped with probability
    ``rate`` (and the rest scaled by ``1 / (1 - rate)``); the identity in eval mode.

    Example:
        >>> DropPath(0.1).rate
        0.1
    """

    rate: float = 0.0

    kind = "droppath"

    def __post_init__(self):
        ok = not isinstance(self.rate, bool) and isinstance(self.rate, (int, float)) and 0.0 <= self.rate < 1.0
        if not ok:
            raise LayerSpecError("droppath", "rate", self.rate, "a number in [0, 1)")
        object.__setattr__(self, "rate", float(self.rate))


@dataclass(frozen=True)
class Slice:
    """The channels ``start:stop`` of the map (a split or chunk of the channels, as in
    ShuffleNetV2, GhostNet and CSP nets).

    Example:
        >>> Slice(0, 58).channels
        58
    """

    start: int
    stop: int

    kind = "slice"

    def __post_init__(self):
        check_int("slice", "start", self.start, 0)
        check_int("slice", "stop", self.stop, self.start + 1)

    @property
    def channels(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Shuffle:
    """Channel shuffle (ShuffleNet): the channels, seen as ``groups`` rows, read by columns.

    Example:
        >>> Shuffle(2).groups
        2
    """

    groups: int

    kind = "shuffle"

    def __post_init__(self):
        check_int("shuffle", "groups", self.groups, 2)


@dataclass(frozen=True)
class Pad:
    """Zero padding of the map, ``left, right, top, bottom`` pixels: TensorFlow's "same"
    padding where it pads one side more than the other (timm's ``tf_*`` models), before a
    conv or pool with no padding of its own.

    Example:
        >>> Pad(0, 1, 0, 1).kind
        'pad'
    """

    left: int
    right: int
    top: int
    bottom: int

    kind = "pad"

    def __post_init__(self):
        for name in ("left", "right", "top", "bottom"):
            check_int("pad", name, getattr(self, name), 0)


@dataclass(frozen=True)
class GlobalPool:
    """The whole map pooled to 1x1 inside the features (a gate's squeeze; the pooling before
    timm's head conv). At the end of the features, ``gap`` (an SPP) says the same.

    Example:
        >>> GlobalPool().mode
        'avg'
    """

    mode: str = "avg"

    kind = "gpool"

    def __post_init__(self):
        _check_choice("gpool", "mode", self.mode, POOL_MODES)


@dataclass(frozen=True)
class ChannelConv:
    """A 1-D convolution along the channels of every pixel, with one input and one output
    channel: ECA's conv (Wang et al. 2020, "ECA-Net"), which mixes each channel with its
    ``kernel_size - 1`` nearest neighbours. Zero padding ``(kernel_size - 1) // 2`` keeps
    the shape. In a gate it reads the pooled channel vector: ``gate[gpool chconv(5) sigmoid]``.
    Eqn. (1) counts it as the conv it is, ``kernel_size * C * H * W`` multiply-adds (fvcore's
    count of torch's ``Conv1d``), not as a ``C x C`` 1x1 conv.

    Args:
        kernel_size: the taps along the channels, odd (so the padding is even on both sides).
        bias: a learned bias (one number; timm's ECA has none).

    Example:
        >>> ChannelConv(5)
        ChannelConv(kernel_size=5)
        >>> ChannelConv(3, bias=True).padding
        1
    """

    kernel_size: int
    bias: bool = False

    kind = "chconv"
    __repr__ = _repr

    def __post_init__(self):
        check_int("chconv", "kernel_size", self.kernel_size, 1)
        if self.kernel_size % 2 == 0:
            raise LayerSpecError(
                "chconv", "kernel_size", self.kernel_size, "an odd integer >= 1 (a padding of (k - 1) / 2 each side)"
            )
        if not isinstance(self.bias, bool):
            raise LayerSpecError("chconv", "bias", self.bias, "True or False")

    @property
    def padding(self) -> int:
        """The zeros added at each end of the channel axis, ``(kernel_size - 1) // 2``."""
        return (self.kernel_size - 1) // 2


def _check_branch(block: str, field: str, branch, allow_empty: bool) -> tuple:
    if isinstance(branch, (str, bytes)) or not isinstance(branch, Iterable):
        raise LayerSpecError(block, field, branch, "a list of feature layer specs (conv, pool, norm, act, ..., blocks)")
    branch = tuple(branch)
    if not branch and not allow_empty:
        raise LayerSpecError(block, field, branch, "at least one layer (a block with no layers does nothing)")
    for layer in branch:
        if not isinstance(layer, FEATURE_LAYERS):
            raise LayerSpecError(block, field, layer, "feature layer specs only (conv, pool, norm, act, ..., res, concat, gate; no head layers)")
    return branch


def _hash_once(self) -> int:
    """A block's hash, worked out once per object (it hashes every nested spec, and the
    caches of shape inference, notation and rewrites hash the same blocks many times).
    Consistent with the dataclass ``__eq__``: the hash of the tuple of the fields."""
    try:
        return self.__dict__["_hash"]
    except KeyError:
        value = hash(tuple(getattr(self, name) for name in self.__dataclass_fields__))
        object.__setattr__(self, "_hash", value)
        return value


def _state_without_hash(self) -> dict:
    """The state that copies and pickles carry: the fields, never the cached hash (a copy
    may get other field values; another process hashes strings differently)."""
    return {key: value for key, value in self.__dict__.items() if key != "_hash"}


@dataclass(frozen=True)
class Residual:
    """A residual block: ``activation(body(x) + shortcut(x))`` (He et al. 2016).

    Args:
        body: the layers of the residual branch, e.g. a bottleneck ``1x1, 3x3, 1x1``.
        shortcut: ``None`` derives it from the shapes: the identity when the body keeps the
            shape, else a 1x1 projection conv (stride = the body's, batch norm when the body
            has it, no activation; ResNet's option B). ``()`` forces the identity; a tuple of
            layers is taken as written.
        activation: applied after the add (``"none"`` for MobileNetV2's linear bottleneck).

    Example:
        >>> Residual((Conv(3, 64), Conv(3, 64, activation="none"))).shortcut is None
        True
    """

    body: tuple
    shortcut: tuple | None = None
    activation: str = "relu"

    kind = "res"
    __hash__ = _hash_once
    __getstate__ = _state_without_hash

    def __post_init__(self):
        object.__setattr__(self, "body", _check_branch("res", "body", self.body, allow_empty=False))
        if self.shortcut is not None:
            object.__setattr__(self, "shortcut", _check_branch("res", "shortcut", self.shortcut, allow_empty=True))
        check_activation("res", "activation", self.activation)


@dataclass(frozen=True)
class Concat:
    """Branches from one input whose outputs are concatenated along the channels.

    An empty branch is the identity (DenseNet's "keep the input").

    Example:
        >>> Concat(((Conv(1, 16),), (Conv(3, 16),))).kind
        'concat'
    """

    branches: tuple

    kind = "concat"
    __hash__ = _hash_once
    __getstate__ = _state_without_hash

    def __post_init__(self):
        branches = self.branches
        if isinstance(branches, (str, bytes)) or not isinstance(branches, Iterable):
            raise LayerSpecError("concat", "branches", branches, "a list of at least 2 branches")
        branches = tuple(_check_branch("concat", "branches", b, allow_empty=True) for b in branches)
        if len(branches) < 2:
            raise LayerSpecError("concat", "branches", len(branches), "at least 2 branches")
        if sum(1 for branch in branches if not branch) > 1:
            raise LayerSpecError(
                "concat", "branches", branches, "at most one identity (empty) branch; two would copy the input twice"
            )
        object.__setattr__(self, "branches", branches)


@dataclass(frozen=True)
class Gate:
    """``x * body(x)``: squeeze-excitation and its relatives (ECA, ESE, the gates of
    RegNetY, EfficientNet and MobileNetV3). The body usually pools globally, transforms the
    channel vector with 1x1 convs and ends with a gating activation; its output has the
    input's channels and either the input's size or 1x1 (broadcast over the map). The 1x1
    convs count in Eqn. (1) on their 1x1 map; the multiply is reported beside it.

    Example:
        >>> gate = Gate((GlobalPool(), Conv(1, 8), Conv(1, 32, activation="sigmoid")))
        >>> gate.kind, len(gate.body)
        ('gate', 3)
    """

    body: tuple

    kind = "gate"
    __hash__ = _hash_once
    __getstate__ = _state_without_hash

    def __post_init__(self):
        object.__setattr__(self, "body", _check_branch("gate", "body", self.body, allow_empty=False))


@dataclass(frozen=True)
class Add:
    """The join node of a residual add in a hand-made graph (two inputs), then ``activation``."""

    activation: str = "relu"

    kind = "add"

    def __post_init__(self):
        check_activation("add", "activation", self.activation)


@dataclass(frozen=True)
class Cat:
    """The join node of a channel concatenation in a hand-made graph (inputs in edge order)."""

    kind = "cat"


@dataclass(frozen=True)
class Mul:
    """The join node of a gate in a hand-made graph: the input times its gate branch."""

    kind = "mul"


Layer = Union[
    Conv, Pool, SPP, Flatten, FC, Norm, Act, Scale, DropPath, Slice, Shuffle, Pad, GlobalPool, ChannelConv, Residual,
    Concat, Gate,
]
BLOCKS = (Residual, Concat, Gate)
#: Leaf layers that keep the map's size and channels (a norm, an activation, a scale, a drop,
#: a conv along the channels).
ELEMENTWISE = (Norm, Act, Scale, DropPath, ChannelConv)
#: Leaf layers that keep the map's size but move or select channels.
CHANNEL_OPS = (Slice, Shuffle)
FEATURE_LAYERS = (Conv, Pool, Pad, GlobalPool, *ELEMENTWISE, *CHANNEL_OPS, *BLOCKS)
REDUCERS = (SPP, Flatten)
JOINS = (Add, Cat, Mul)
LAYER_TYPES = {
    cls.kind: cls
    for cls in (
        Conv, Pool, SPP, Flatten, FC, Norm, Act, Scale, DropPath, Slice, Shuffle, Pad, GlobalPool, ChannelConv, Residual,
        Concat, Gate,
    )  # fmt: skip
}
#: Fields left out of JSON, fingerprints and reprs when they hold their default, so the
#: specs and fingerprints of the nets written before these fields existed stay the same.
_OPTIONAL = {
    Conv: {"groups": 1, "depthwise": False, "activation": "relu", "norm": None, "dilation": 1,
           "norm_eps": DEFAULT_EPS, "norm_momentum": DEFAULT_MOMENTUM},
    Pool: {"ceil_mode": False, "count_include_pad": True},
    FC: {"activation": "relu"},
    Scale: {"shift": False},
    ChannelConv: {"bias": False},
}  # fmt: skip
#: The optional fields a repr leaves out at their default: those added after the first
#: release (a Conv's repr always showed its groups, depthwise, activation and norm).
_REPR_HIDDEN = {
    Conv: ("dilation", "norm_eps", "norm_momentum"), Pool: ("ceil_mode", "count_include_pad"), FC: ("activation",),
    Scale: ("shift",), ChannelConv: ("bias",),
}  # fmt: skip


def paper_head() -> tuple[Layer, ...]:
    """The head of every model in Tables 1-2: SPP {6,3,2,1}, then fc 4096, fc 4096.

    Example:
        >>> [layer.kind for layer in paper_head()]
        ['spp', 'fc', 'fc']
    """
    return (SPP(PAPER_SPP_LEVELS), FC(PAPER_FC_UNITS), FC(PAPER_FC_UNITS))


#: Inputs at least this many pixels on their shorter side get the paper's head by default.
PAPER_HEAD_MIN_SIZE = 64
#: The default head below that: SPP with 2x2 and 1x1 max bins (5 bins), then the classifier.
SMALL_HEAD_LEVELS = (2, 1)


def default_head(input_shape: Sequence[int]) -> tuple[Layer, ...]:
    """The head added to a notation without one: the paper's for inputs of at least
    :data:`PAPER_HEAD_MIN_SIZE` pixels, ``spp(2,1)`` (no hidden fc) for smaller ones.

    On the 16 px digits, ``(3,32) 2/2 (3,64) 2/2 (3,128)`` with ``spp fc4096 fc4096`` ended
    5 quick epochs near chance (0.10-0.20); with ``spp(2,1)`` it reaches 0.99
    (``bench/recipe.py``, ``docs/benchmarks.md``).

    Example:
        >>> [layer.kind for layer in default_head((3, 224, 224))]
        ['spp', 'fc', 'fc']
        >>> default_head((1, 16, 16))
        (SPP(levels=(2, 1), mode='max'),)
    """
    _, height, width = check_shape(ArchError, input_shape)
    return paper_head() if min(height, width) >= PAPER_HEAD_MIN_SIZE else (SPP(SMALL_HEAD_LEVELS),)


def layer_to_dict(layer: Layer) -> dict:
    """A JSON-ready dict for one layer spec (blocks nest their layers).

    Example:
        >>> layer_to_dict(Conv(3, 8))
        {'type': 'conv', 'kernel_size': 3, 'out_channels': 8, 'stride': 1, 'padding': None}
        >>> layer_to_dict(Residual((Conv(3, 8),)))["body"]
        [{'type': 'conv', 'kernel_size': 3, 'out_channels': 8, 'stride': 1, 'padding': None}]
    """
    data = {"type": layer.kind}
    optional = _OPTIONAL.get(type(layer), {})
    for field in fields(layer):
        value = getattr(layer, field.name)
        if field.name in optional and value == optional[field.name]:
            continue
        if isinstance(layer, Residual) and field.name == "shortcut" and value is not None:
            value = [layer_to_dict(item) for item in value]
        elif isinstance(layer, (Residual, Gate)) and field.name == "body":
            value = [layer_to_dict(item) for item in value]
        elif isinstance(layer, Concat):
            value = [[layer_to_dict(item) for item in branch] for branch in value]
        elif isinstance(value, tuple):
            value = list(value)
        data[field.name] = value
    return data


def layer_from_dict(item, where: str, depth: int = 0) -> Layer:
    """The spec :func:`layer_to_dict` wrote; ``where`` names the place for messages and
    ``depth`` counts the blocks around ``item`` (at most :data:`MAX_NESTING`).

    Example:
        >>> layer_from_dict({"type": "res", "body": [{"type": "conv", "kernel_size": 3, "out_channels": 8}]}, "x")
        Residual(body=(Conv(kernel_size=3, out_channels=8, stride=1, padding=None, groups=1, depthwise=False, activation='relu', norm=None),), shortcut=None, activation='relu')
    """
    if not isinstance(item, dict) or not isinstance(item.get("type"), str) or item["type"] not in LAYER_TYPES:
        raise ArchError(
            f"arch JSON: {where}={item!r}; expected an object with type one of {sorted(LAYER_TYPES)}"
        )
    cls = LAYER_TYPES[item["type"]]
    if cls in BLOCKS and depth >= MAX_NESTING:
        place = where if len(where) <= 100 else f"{where[:40]}...{where[-40:]}"
        raise ArchError(
            f"arch JSON: {place} is a block nested {depth + 1} deep; expected at most {MAX_NESTING} nested "
            "res, cat or gate blocks (MAX_NESTING)"
        )
    known = {field.name for field in fields(cls)}
    unknown = sorted(set(item) - known - {"type"})
    if unknown:
        raise ArchError(f"arch JSON: {where} has unknown fields {unknown}; expected {sorted(known)}")
    arguments = {key: value for key, value in item.items() if key != "type"}

    def branch(value, name):
        if not isinstance(value, list):
            raise ArchError(f"arch JSON: {where}.{name}={value!r}; expected a list of layer objects")
        return tuple(layer_from_dict(sub, f"{where}.{name}[{i}]", depth + 1) for i, sub in enumerate(value))

    if cls is SPP and isinstance(arguments.get("levels"), list):
        arguments["levels"] = tuple(arguments["levels"])
    if cls in (Residual, Gate):
        arguments["body"] = branch(arguments.get("body"), "body")
        if arguments.get("shortcut") is not None:
            arguments["shortcut"] = branch(arguments["shortcut"], "shortcut")
    if cls is Concat:
        branches = arguments.get("branches")
        if not isinstance(branches, list):
            raise ArchError(f"arch JSON: {where}.branches={branches!r}; expected a list of branches")
        arguments["branches"] = tuple(branch(b, f"branches[{i}]") for i, b in enumerate(branches))
    try:
        return cls(**arguments)
    except TypeError as error:
        raise ArchError(f"arch JSON: {where}: {error}") from None


__all__ = [
    "ACTIVATIONS",
    "Act",
    "Add",
    "Cat",
    "ChannelConv",
    "Concat",
    "Conv",
    "DropPath",
    "FC",
    "Flatten",
    "Gate",
    "GlobalPool",
    "Layer",
    "MAX_NESTING",
    "Mul",
    "NORMS",
    "NORM_TYPES",
    "Norm",
    "Pad",
    "Pool",
    "Residual",
    "SPP",
    "Scale",
    "Shuffle",
    "Slice",
    "activation_slope",
    "check_activation",
    "layer_from_dict",
    "layer_to_dict",
    "default_head",
    "paper_head",
]
