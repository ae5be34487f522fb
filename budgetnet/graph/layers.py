"""Layer specs: frozen dataclasses that describe one layer or one block of an :class:`~budgetnet.Arch`.

Leaf layers are :class:`Conv`, :class:`Pool`, :class:`SPP`, :class:`Flatten` and :class:`FC`.
Two blocks hold branches of leaf layers (or of further blocks):

* :class:`Residual` adds its ``body`` to a shortcut (identity, or a 1x1 projection when the
  shapes differ: ResNet option B), then applies its activation;
* :class:`Concat` concatenates the channels of its branches (an empty branch passes its
  input through, as in DenseNet).

:class:`Add` and :class:`Cat` are the join nodes of a hand-made ``networkx`` graph; an Arch
turns them into the blocks above (see :mod:`budgetnet.graph.dag`).

Example:
    >>> block = Residual((Conv(1, 64, norm="batch"), Conv(3, 64, norm="batch"), Conv(1, 256, norm="batch", activation="none")))
    >>> block.kind, len(block.body)
    ('res', 3)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable, Sequence, Union

from budgetnet.checks import check_shape, is_int
from budgetnet.errors import ArchError, LayerSpecError

POOL_MODES = ("max", "avg")
#: Activations a conv (or a residual add) may end with; ``"none"`` is linear.
ACTIVATIONS = ("relu", "relu6", "silu", "hardswish", "gelu", "none")
#: Normalizations a conv may carry between the conv and its activation.
NORMS = (None, "batch")
PAPER_SPP_LEVELS = (6, 3, 2, 1)
PAPER_FC_UNITS = 4096
PAPER_DROPOUT = 0.5


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


def _check_choice(layer: str, field: str, value, choices) -> None:
    if value not in choices:
        raise LayerSpecError(layer, field, value, f"one of {choices}")


@dataclass(frozen=True)
class Conv:
    """A square convolution, optionally batch-normalized, then its activation.

    Args:
        kernel_size: filter side ``s``.
        out_channels: number of filters ``n`` (the paper's "width").
        stride: subsampling factor.
        padding: pixels on each side, or ``None`` to follow the paper's rules.
        groups: grouped convolution (ResNeXt's cardinality); in and out channels must divide.
        depthwise: one group per input channel (MobileNet); ``out_channels`` is then a
            multiple of the input channels (the channel multiplier). Shape inference sets
            ``groups`` to the input channels.
        activation: one of :data:`ACTIVATIONS` (``"none"``: linear).
        norm: ``None`` or ``"batch"`` (BatchNorm between the conv and the activation).

    Example:
        >>> Conv(3, 256)
        Conv(kernel_size=3, out_channels=256, stride=1, padding=None, groups=1, depthwise=False, activation='relu', norm=None)
    """

    kernel_size: int
    out_channels: int
    stride: int = 1
    padding: int | None = None
    groups: int = 1
    depthwise: bool = False
    activation: str = "relu"
    norm: str | None = None

    kind = "conv"

    def __post_init__(self):
        check_int("conv", "kernel_size", self.kernel_size, 1)
        check_int("conv", "out_channels", self.out_channels, 1)
        check_int("conv", "stride", self.stride, 1)
        if self.padding is not None:
            check_int("conv", "padding", self.padding, 0)
        check_int("conv", "groups", self.groups, 1)
        if not isinstance(self.depthwise, bool):
            raise LayerSpecError("conv", "depthwise", self.depthwise, "True or False")
        if self.out_channels % self.groups:
            raise LayerSpecError(
                "conv", "groups", self.groups, f"a divisor of out_channels={self.out_channels}"
            )
        _check_choice("conv", "activation", self.activation, ACTIVATIONS)
        _check_choice("conv", "norm", self.norm, NORMS)


@dataclass(frozen=True)
class Pool:
    """A square max or average pooling window; ``stride`` defaults to ``kernel_size``.

    Example:
        >>> Pool(3)
        Pool(kernel_size=3, stride=3, padding=0, mode='max')
    """

    kernel_size: int
    stride: int | None = None
    padding: int = 0
    mode: str = "max"

    kind = "pool"

    def __post_init__(self):
        check_int("pool", "kernel_size", self.kernel_size, 1)
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size)
        check_int("pool", "stride", self.stride, 1)
        check_int("pool", "padding", self.padding, 0)
        if self.padding * 2 > self.kernel_size:
            raise LayerSpecError("pool", "padding", self.padding, "at most half the kernel size")
        _check_choice("pool", "mode", self.mode, POOL_MODES)


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
    """A hidden fully-connected layer with ReLU and dropout (the classifier is implicit).

    Example:
        >>> FC(4096)
        FC(out_features=4096, dropout=0.5)
    """

    out_features: int
    dropout: float = PAPER_DROPOUT

    kind = "fc"

    def __post_init__(self):
        check_int("fc", "out_features", self.out_features, 1)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not (
            0.0 <= self.dropout < 1.0
        ):
            raise LayerSpecError("fc", "dropout", self.dropout, "a number in [0, 1)")
        object.__setattr__(self, "dropout", float(self.dropout))


def _check_branch(block: str, field: str, branch, allow_empty: bool) -> tuple:
    if isinstance(branch, (str, bytes)) or not isinstance(branch, Iterable):
        raise LayerSpecError(block, field, branch, "a list of conv, pool or block specs")
    branch = tuple(branch)
    if not branch and not allow_empty:
        raise LayerSpecError(block, field, branch, "at least one layer (a block with no layers does nothing)")
    for layer in branch:
        if not isinstance(layer, FEATURE_LAYERS):
            raise LayerSpecError(block, field, layer, "conv, pool, res or concat specs only (no head layers)")
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
        _check_choice("res", "activation", self.activation, ACTIVATIONS)


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
class Add:
    """The join node of a residual add in a hand-made graph (two inputs), then ``activation``."""

    activation: str = "relu"

    kind = "add"

    def __post_init__(self):
        _check_choice("add", "activation", self.activation, ACTIVATIONS)


@dataclass(frozen=True)
class Cat:
    """The join node of a channel concatenation in a hand-made graph (inputs in edge order)."""

    kind = "cat"


Layer = Union[Conv, Pool, SPP, Flatten, FC, Residual, Concat]
BLOCKS = (Residual, Concat)
FEATURE_LAYERS = (Conv, Pool, Residual, Concat)
REDUCERS = (SPP, Flatten)
JOINS = (Add, Cat)
LAYER_TYPES = {cls.kind: cls for cls in (Conv, Pool, SPP, Flatten, FC, Residual, Concat)}
#: Conv fields left out of JSON and fingerprints when they hold their default, so the
#: specs and fingerprints of plain nets stay what they were before these fields existed.
_OPTIONAL_FIELDS = {"groups": 1, "depthwise": False, "activation": "relu", "norm": None}


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
    for field in fields(layer):
        value = getattr(layer, field.name)
        if isinstance(layer, Conv) and field.name in _OPTIONAL_FIELDS and value == _OPTIONAL_FIELDS[field.name]:
            continue
        if isinstance(layer, Residual) and field.name == "shortcut" and value is not None:
            value = [layer_to_dict(item) for item in value]
        elif isinstance(layer, Residual) and field.name == "body":
            value = [layer_to_dict(item) for item in value]
        elif isinstance(layer, Concat):
            value = [[layer_to_dict(item) for item in branch] for branch in value]
        elif isinstance(value, tuple):
            value = list(value)
        data[field.name] = value
    return data


def layer_from_dict(item, where: str) -> Layer:
    """The spec :func:`layer_to_dict` wrote; ``where`` names the place for messages.

    Example:
        >>> layer_from_dict({"type": "res", "body": [{"type": "conv", "kernel_size": 3, "out_channels": 8}]}, "x")
        Residual(body=(Conv(kernel_size=3, out_channels=8, stride=1, padding=None, groups=1, depthwise=False, activation='relu', norm=None),), shortcut=None, activation='relu')
    """
    if not isinstance(item, dict) or not isinstance(item.get("type"), str) or item["type"] not in LAYER_TYPES:
        raise ArchError(
            f"arch JSON: {where}={item!r}; expected an object with type one of {sorted(LAYER_TYPES)}"
        )
    cls = LAYER_TYPES[item["type"]]
    known = {field.name for field in fields(cls)}
    unknown = sorted(set(item) - known - {"type"})
    if unknown:
        raise ArchError(f"arch JSON: {where} has unknown fields {unknown}; expected {sorted(known)}")
    arguments = {key: value for key, value in item.items() if key != "type"}

    def branch(value, name):
        if not isinstance(value, list):
            raise ArchError(f"arch JSON: {where}.{name}={value!r}; expected a list of layer objects")
        return tuple(layer_from_dict(sub, f"{where}.{name}[{i}]") for i, sub in enumerate(value))

    if cls is SPP and isinstance(arguments.get("levels"), list):
        arguments["levels"] = tuple(arguments["levels"])
    if cls is Residual:
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
    "Add",
    "Cat",
    "Concat",
    "Conv",
    "FC",
    "Flatten",
    "Layer",
    "NORMS",
    "Pool",
    "Residual",
    "SPP",
    "layer_from_dict",
    "layer_to_dict",
    "default_head",
    "paper_head",
]
