"""Layer specs and :class:`Arch`, the architecture graph, with shape inference.

This module is the one source of truth for feature-map shapes. An :class:`Arch` is a
networkx ``DiGraph`` whose nodes carry frozen layer specs (:class:`Conv`, :class:`Pool`,
:class:`SPP`, :class:`Flatten`, :class:`FC`), chained from a single input of shape
``(channels, height, width)``. A final classifier of ``num_classes`` units always follows.

Shapes use PyTorch's floor rule, ``out = floor((m + 2p - k) / stride) + 1``. A conv whose
``padding`` is ``None`` gets it from the paper's rules (Sec. 5, and ``docs/notation.md``):

* odd kernels keep the map: 1 -> 0, 3 -> 1, 5 -> 2; the paper's stem 7x7 takes 0;
* even kernels alternate: shrink by one pixel (pad ``k/2 - 1``) when the map is at its
  stage's target size, grow back (pad ``k/2``) when it is below it, so consecutive 2x2
  convs take pads 0, 1, 0, 1;
* a strided conv takes the pad that brings its output closest to the stage's target size
  (one less when an odd number of 2x2 convs follow, so the stage ends on its target). With
  delayed subsampling (a stride-1 pool, then a strided conv) the target is what the pool
  would give with the conv's stride, so stages keep the sizes they had before.

Example:
    >>> from budgetnet import Arch, Conv, Pool
    >>> arch = Arch([Conv(3, 16), Pool(2), Conv(2, 32), Conv(2, 32)], input_shape=(1, 8, 8))
    >>> [info.out_shape for info in arch.shapes if info.kind == "conv"]
    [(16, 8, 8), (32, 3, 3), (32, 4, 4)]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Iterable, Sequence, Union

import networkx as nx

from budgetnet.errors import ArchError, LayerSpecError, ShapeError

POOL_MODES = ("max", "avg")
PAPER_SPP_LEVELS = (6, 3, 2, 1)
PAPER_FC_UNITS = 4096
PAPER_DROPOUT = 0.5
JSON_FORMAT = "budgetnet.arch"
JSON_VERSION = 1


def _check_int(layer: str, field: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LayerSpecError(layer, field, value, f"an integer >= {minimum}")


@dataclass(frozen=True)
class Conv:
    """A square convolution followed by ReLU.

    Args:
        kernel_size: filter side ``s``.
        out_channels: number of filters ``n`` (the paper's "width").
        stride: subsampling factor.
        padding: pixels on each side, or ``None`` to follow the paper's rules.

    Example:
        >>> Conv(3, 256)
        Conv(kernel_size=3, out_channels=256, stride=1, padding=None)
    """

    kernel_size: int
    out_channels: int
    stride: int = 1
    padding: int | None = None

    kind = "conv"

    def __post_init__(self):
        _check_int("conv", "kernel_size", self.kernel_size, 1)
        _check_int("conv", "out_channels", self.out_channels, 1)
        _check_int("conv", "stride", self.stride, 1)
        if self.padding is not None:
            _check_int("conv", "padding", self.padding, 0)


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
        _check_int("pool", "kernel_size", self.kernel_size, 1)
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size)
        _check_int("pool", "stride", self.stride, 1)
        _check_int("pool", "padding", self.padding, 0)
        if self.padding * 2 > self.kernel_size:
            raise LayerSpecError("pool", "padding", self.padding, "at most half the kernel size")
        if self.mode not in POOL_MODES:
            raise LayerSpecError("pool", "mode", self.mode, f"one of {POOL_MODES}")


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
            _check_int("spp", "levels", level, 1)
        object.__setattr__(self, "levels", levels)
        if self.mode not in POOL_MODES:
            raise LayerSpecError("spp", "mode", self.mode, f"one of {POOL_MODES}")

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
        _check_int("fc", "out_features", self.out_features, 1)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not (
            0.0 <= self.dropout < 1.0
        ):
            raise LayerSpecError("fc", "dropout", self.dropout, "a number in [0, 1)")
        object.__setattr__(self, "dropout", float(self.dropout))


Layer = Union[Conv, Pool, SPP, Flatten, FC]
LAYER_TYPES = {cls.kind: cls for cls in (Conv, Pool, SPP, Flatten, FC)}
_LAYER_CLASSES = tuple(LAYER_TYPES.values())
FEATURE_LAYERS = (Conv, Pool)
REDUCERS = (SPP, Flatten)


def paper_head() -> tuple[Layer, ...]:
    """The head of every model in Tables 1-2: SPP {6,3,2,1}, then fc 4096, fc 4096.

    Example:
        >>> [layer.kind for layer in paper_head()]
        ['spp', 'fc', 'fc']
    """
    return (SPP(PAPER_SPP_LEVELS), FC(PAPER_FC_UNITS), FC(PAPER_FC_UNITS))


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """PyTorch's floor rule for one side of a conv or pool output.

    Example:
        >>> conv_output_size(224, 7, 2, 0)
        109
    """
    return (size + 2 * padding - kernel_size) // stride + 1


def default_padding(kernel_size: int) -> int:
    """The paper's padding for an odd kernel (Sec. 5): 7 -> 0, otherwise ``(k - 1) // 2``.

    Example:
        >>> [default_padding(k) for k in (1, 3, 5, 7)]
        [0, 1, 2, 0]
    """
    return 0 if kernel_size == 7 else (kernel_size - 1) // 2


@dataclass(frozen=True)
class LayerShape:
    """One layer after shape inference.

    ``layer`` has its padding resolved; ``in_shape`` and ``out_shape`` are ``(C, H, W)``
    for feature layers and ``(features,)`` after the map is pooled or flattened. ``stage``
    counts from 1 and grows after every pool; head layers have stage ``None``.
    """

    index: int
    node: int
    name: str
    layer: Layer
    stage: int | None
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def kind(self) -> str:
        return self.layer.kind


class Arch:
    """A single-path CNN as a networkx ``DiGraph`` of frozen layer specs.

    Args:
        layers: conv and pool layers, then optionally one reducer (:class:`SPP` or
            :class:`Flatten`) and hidden :class:`FC` layers. Without a reducer a
            :class:`Flatten` is appended.
        input_shape: ``(channels, height, width)`` of one input image.
        num_classes: width of the final classifier that follows the last layer.

    Arch objects are immutable: edits such as :meth:`replace` return a new one. Equality
    and :meth:`fingerprint` compare the resolved layers (paddings chosen), the input shape
    and the class count, never node ids.

    Example:
        >>> import budgetnet
        >>> a = budgetnet.parse("(7,64)/2 3/3 (5,128) 2/2 (3,256)x3")
        >>> a.depth, a.shapes[-1].name
        (5, 'fc2')
        >>> a == budgetnet.Arch.from_json(a.to_json())
        True
    """

    def __init__(
        self,
        layers: Iterable[Layer] | nx.DiGraph,
        input_shape: Sequence[int] = (3, 224, 224),
        num_classes: int = 1000,
    ):
        if isinstance(layers, nx.DiGraph):
            graph = layers.copy()
            order = _chain_order(graph)
        else:
            try:
                layers = list(layers)
            except TypeError:
                raise ArchError(
                    f"arch layers={layers!r} is invalid; expected a list of layer specs or a graph"
                ) from None
            graph = nx.DiGraph()
            for node, layer in enumerate(layers):
                graph.add_node(node, layer=layer)
                if node:
                    graph.add_edge(node - 1, node)
            order = list(range(len(layers)))
            _check_layer_types(layers)
        self._input_shape = _check_input_shape(input_shape)
        _check_int("arch", "num_classes", num_classes, 1)
        self._num_classes = num_classes
        if not any(isinstance(graph.nodes[node]["layer"], REDUCERS) for node in order):
            head = next(
                (i for i, node in enumerate(order) if isinstance(graph.nodes[node]["layer"], FC)),
                len(order),
            )
            new = _fresh_node(order)
            graph.add_node(new, layer=Flatten())
            if head > 0:
                graph.add_edge(order[head - 1], new)
            if head < len(order):
                if head > 0:
                    graph.remove_edge(order[head - 1], order[head])
                graph.add_edge(new, order[head])
            order = order[:head] + [new] + order[head:]
        graph.graph.clear()
        nx.freeze(graph)
        self._graph = graph
        self._order = tuple(order)
        self._layers = tuple(graph.nodes[node]["layer"] for node in order)
        _check_order(self._layers)
        self._shapes = _infer_shapes(self._layers, self._order, self._input_shape)
        self._key = (self._input_shape, self._num_classes, self.resolved_layers)

    # -- views -------------------------------------------------------------------------
    @property
    def graph(self) -> nx.DiGraph:
        """The frozen graph; node attribute ``layer`` holds the spec as written."""
        return self._graph

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Layer specs in order, as written (``padding=None`` where the rules choose)."""
        return self._layers

    @property
    def nodes(self) -> tuple[int, ...]:
        """Graph node ids in layer order."""
        return self._order

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._input_shape

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def shapes(self) -> tuple[LayerShape, ...]:
        """Every layer after shape inference, in order."""
        return self._shapes

    @property
    def resolved_layers(self) -> tuple[Layer, ...]:
        """Layer specs with every padding chosen."""
        return tuple(info.layer for info in self._shapes)

    @property
    def convs(self) -> tuple[LayerShape, ...]:
        return tuple(info for info in self._shapes if info.kind == "conv")

    @property
    def depth(self) -> int:
        """Number of conv layers (the paper's ``d``)."""
        return len(self.convs)

    @property
    def features(self) -> tuple[LayerShape, ...]:
        """The conv and pool layers (everything before the head)."""
        return tuple(info for info in self._shapes if info.stage is not None)

    @property
    def head(self) -> tuple[Layer, ...]:
        """The reducer and hidden fc layers as written."""
        return tuple(layer for layer in self._layers if not isinstance(layer, FEATURE_LAYERS))

    @property
    def stages(self) -> tuple[tuple[LayerShape, ...], ...]:
        """Conv layers grouped by stage (the layers between two pools), stage 1 first."""
        count = max((info.stage for info in self.features), default=0)
        return tuple(
            tuple(info for info in self.convs if info.stage == stage)
            for stage in range(1, count + 1)
        )

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the map that enters the head."""
        features = self.features
        return features[-1].out_shape if features else self._input_shape

    # -- edits ---------------------------------------------------------------------------
    def replace(self, start: int, stop: int, new_layers: Sequence[Layer]) -> "Arch":
        """A new Arch with layers ``start:stop`` replaced by ``new_layers``.

        Implemented as a subgraph replacement: the old nodes are removed and the new ones
        are wired between the neighbours, which keep their node ids.

        Example:
            >>> import budgetnet
            >>> a = budgetnet.parse("(3,16) 2/2 (3,32)", input_shape=(1, 8, 8))
            >>> str(a.replace(2, 3, [budgetnet.Conv(2, 32)] * 2))
            '(3,16) 2/2 (2,32)x2 spp(2,1)'
        """
        count = len(self._layers)
        if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start <= stop <= count):
            raise ArchError(
                f"replace: start={start!r}, stop={stop!r} is invalid; expected "
                f"0 <= start <= stop <= {count}"
            )
        graph = nx.DiGraph(self._graph)
        graph.remove_nodes_from(self._order[start:stop])
        before = self._order[start - 1] if start > 0 else None
        after = self._order[stop] if stop < count else None
        next_id = _fresh_node(self._order)
        previous = before
        for layer in new_layers:
            graph.add_node(next_id, layer=layer)
            if previous is not None:
                graph.add_edge(previous, next_id)
            previous, next_id = next_id, next_id + 1
        if previous is not None and after is not None:
            graph.add_edge(previous, after)
        return Arch(graph, self._input_shape, self._num_classes)

    def with_layers(self, layers: Sequence[Layer]) -> "Arch":
        """A new Arch with the same input shape and class count."""
        return Arch(layers, self._input_shape, self._num_classes)

    def with_input(self, input_shape: Sequence[int] | None = None, num_classes: int | None = None):
        """A new Arch on another input shape and/or class count.

        Example:
            >>> import budgetnet
            >>> budgetnet.parse("(3,8) 2/2").with_input((1, 28, 28), 10).feature_shape
            (8, 14, 14)
        """
        return Arch(
            self._graph,
            self._input_shape if input_shape is None else input_shape,
            self._num_classes if num_classes is None else num_classes,
        )

    # -- identity ------------------------------------------------------------------------
    def _canonical(self) -> dict:
        return {
            "input_shape": list(self._input_shape),
            "num_classes": self._num_classes,
            "layers": [layer_to_dict(layer) for layer in self.resolved_layers],
        }

    def __eq__(self, other) -> bool:
        return isinstance(other, Arch) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def fingerprint(self) -> str:
        """A stable 16-hex-digit digest of the resolved layers, input shape and classes.

        Example:
            >>> import budgetnet
            >>> len(budgetnet.parse("(3,8)").fingerprint())
            16
        """
        text = json.dumps(self._canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- text and JSON -------------------------------------------------------------------
    def notation(self) -> str:
        """The paper's table notation (see :func:`budgetnet.parse`)."""
        from budgetnet.notation import format_arch

        return format_arch(self)

    def __str__(self) -> str:
        return self.notation()

    def __repr__(self) -> str:
        return f"Arch('{self.notation()}', input_shape={self._input_shape}, num_classes={self._num_classes})"

    def to_dict(self) -> dict:
        """A JSON-ready dict; layers as written, so automatic paddings stay automatic."""
        return {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "notation": self.notation(),
            "input_shape": list(self._input_shape),
            "num_classes": self._num_classes,
            "layers": [layer_to_dict(layer) for layer in self._layers],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | Path) -> Path:
        """Write the JSON spec to ``path`` and return it."""
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def from_dict(cls, data) -> "Arch":
        """Rebuild an Arch from :meth:`to_dict` output; anything else is an ArchError."""
        if not isinstance(data, dict):
            raise ArchError(f"arch JSON: top level is {type(data).__name__}; expected an object")
        if data.get("format", JSON_FORMAT) != JSON_FORMAT:
            raise ArchError(f"arch JSON: format={data.get('format')!r}; expected {JSON_FORMAT!r}")
        for key in ("input_shape", "layers"):
            if key not in data:
                raise ArchError(f"arch JSON: field {key!r} is missing; expected an Arch spec")
        layers = data["layers"]
        if not isinstance(layers, list):
            raise ArchError(f"arch JSON: layers={layers!r}; expected a list of layer objects")
        return cls(
            [_layer_from_dict(item, i) for i, item in enumerate(layers)],
            data["input_shape"],
            data.get("num_classes", 1000),
        )

    @classmethod
    def from_json(cls, text: str) -> "Arch":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as error:
            raise ArchError(f"arch JSON: not valid JSON ({error})") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> "Arch":
        """Read an Arch JSON file written by :meth:`save`."""
        path = Path(path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise ArchError(f"arch file {str(path)!r} cannot be read: {error}") from None
        try:
            return cls.from_json(text)
        except ArchError as error:
            raise ArchError(f"{path}: {error}") from None

    @classmethod
    def from_module(cls, module, input_shape: Sequence[int]) -> "Arch":
        """Import a sequential torch CNN (see :func:`budgetnet.importer.arch_from_module`)."""
        from budgetnet.importer import arch_from_module

        return arch_from_module(module, input_shape)


# -- helpers -------------------------------------------------------------------------------
def _check_input_shape(input_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (
        shape is None
        or len(shape) != 3
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape)
    ):
        raise ArchError(
            f"input_shape={input_shape!r} is invalid; expected (channels, height, width), "
            "three integers >= 1"
        )
    return shape


def _fresh_node(nodes: Iterable) -> int:
    """An integer node id above every integer id in use (other ids never collide with it)."""
    return max((n for n in nodes if isinstance(n, int) and not isinstance(n, bool)), default=-1) + 1


def _chain_order(graph: nx.DiGraph) -> list[int]:
    if graph.number_of_nodes() == 0:
        return []
    unlabeled = [node for node, data in graph.nodes(data=True) if "layer" not in data]
    if unlabeled:
        raise ArchError(f"arch graph: every node needs a 'layer' attribute; nodes {unlabeled} have none")
    bad = [n for n in graph if graph.in_degree(n) > 1 or graph.out_degree(n) > 1]
    starts = [n for n in graph if graph.in_degree(n) == 0]
    order = []
    if not bad and len(starts) == 1:
        order.append(starts[0])
        for _ in range(graph.number_of_nodes() - 1):
            successors = list(graph.successors(order[-1]))
            if not successors:
                break
            order.append(successors[0])
    if len(order) != graph.number_of_nodes():
        raise ArchError(
            "arch graph: expected a single path from one input (single-path CNNs only); "
            f"branching nodes {bad}, start nodes {starts}"
        )
    _check_layer_types(graph.nodes[n]["layer"] for n in order)
    return order


def _check_layer_types(layers: Iterable) -> None:
    for layer in layers:
        if not isinstance(layer, _LAYER_CLASSES):
            raise ArchError(
                f"arch layer {layer!r} is not a budgetnet layer spec; expected Conv, Pool, SPP, Flatten or FC"
            )


def _check_order(layers: Sequence[Layer]) -> None:
    phase = 0  # 0: features, 1: after the reducer
    for index, layer in enumerate(layers):
        if isinstance(layer, FEATURE_LAYERS):
            if phase:
                raise ArchError(
                    f"layer {index + 1} ({layer.kind}) comes after the map was pooled or "
                    "flattened; expected conv and pool layers before spp/gap/flat"
                )
        elif isinstance(layer, REDUCERS):
            if phase:
                raise ArchError(
                    f"layer {index + 1} ({layer.kind}): only one spp/gap/flat is allowed; expected a single "
                    "reducer between the conv/pool layers and the fc layers"
                )
            phase = 1
        elif isinstance(layer, FC) and not phase:
            raise ArchError(
                f"layer {index + 1} (fc) comes before spp/gap/flat; expected fc layers after the map is "
                "pooled or flattened"
            )


def _following_even_convs(layers: Sequence[Layer], index: int) -> int:
    count = 0
    for layer in layers[index + 1 :]:
        if (
            isinstance(layer, Conv)
            and layer.stride == 1
            and layer.padding is None
            and layer.kernel_size % 2 == 0
        ):
            count += 1
        else:
            break
    return count


def _infer_shapes(
    layers: Sequence[Layer], nodes: Sequence[int], input_shape: tuple[int, int, int]
) -> tuple[LayerShape, ...]:
    channels, height, width = input_shape
    target = [height, width]  # the stage's dominant size, per side
    stage = 1
    delayed = False  # a stride-1 pool already set the target for this strided conv
    counters: dict[str, int] = {}
    shapes = []
    shape: tuple[int, ...] = input_shape
    for index, (layer, node) in enumerate(zip(layers, nodes)):
        counters[layer.kind] = counters.get(layer.kind, 0) + 1
        name = f"{layer.kind}{counters[layer.kind]}"
        in_shape = shape
        layer_stage = stage if isinstance(layer, FEATURE_LAYERS) else None
        if isinstance(layer, Conv):
            size = [height, width]
            kernel, stride = layer.kernel_size, layer.stride
            padding = layer.padding
            if stride == 1:
                if padding is None:
                    if kernel % 2:
                        padding = default_padding(kernel)
                    else:
                        padding = kernel // 2 - 1 if height >= target[0] else kernel // 2
                if kernel % 2 or layer.padding is not None:
                    target = [conv_output_size(t, kernel, 1, padding) for t in target]
            else:
                if not delayed:
                    guess = default_padding(kernel) if kernel % 2 else kernel // 2 - 1
                    guess = guess if padding is None else padding
                    target = [conv_output_size(t, kernel, stride, guess) for t in target]
                if padding is None:
                    desired = target[0] - (_following_even_convs(layers, index) % 2)
                    padding = _closest_padding(height, kernel, stride, desired)
            delayed = False
            _check_window(name, layer, size, kernel, padding)
            height, width = (conv_output_size(m, kernel, stride, padding) for m in size)
            channels = layer.out_channels
            if layer.padding != padding:
                layer = replace(layer, padding=padding)
            shape = (channels, height, width)
        elif isinstance(layer, Pool):
            size = [height, width]
            _check_window(name, layer, size, layer.kernel_size, layer.padding)
            height, width = (
                conv_output_size(m, layer.kernel_size, layer.stride, layer.padding) for m in size
            )
            following = layers[index + 1] if index + 1 < len(layers) else None
            delayed = layer.stride == 1 and isinstance(following, Conv) and following.stride > 1
            step = following.stride if delayed else layer.stride
            target = [conv_output_size(t, layer.kernel_size, step, layer.padding) for t in target]
            shape = (channels, height, width)
            stage += 1
        elif isinstance(layer, SPP):
            shape = (channels * layer.bins,)
        elif isinstance(layer, Flatten):
            shape = (channels * height * width,)
        elif isinstance(layer, FC):
            shape = (layer.out_features,)
        shapes.append(LayerShape(index, node, name, layer, layer_stage, in_shape, shape))
    return tuple(shapes)


def _closest_padding(size: int, kernel: int, stride: int, desired: int) -> int:
    """The smallest pad in ``[0, kernel)`` whose output side is closest to ``desired``.

    The output grows with the pad, so only the pads up to the first one that reaches
    ``desired`` can win; trying just those keeps a huge kernel from a scan of every pad.
    """
    reach = -(-((desired - 1) * stride + kernel - size) // 2)  # first pad giving >= desired
    high = min(max(reach, 0), kernel - 1)
    return min(
        range(max(high - stride - 1, 0), high + 1),
        key=lambda p: (abs(conv_output_size(size, kernel, stride, p) - desired), p),
    )


def _check_window(name: str, layer: Layer, size: Sequence[int], kernel: int, padding: int) -> None:
    # By the floor rule this is also the only way a map can shrink below 1 pixel.
    for side in size:
        if side + 2 * padding < kernel:
            raise ShapeError(
                f"{name} ({_describe(layer)}): kernel_size={kernel} is larger than the padded "
                f"map ({side} + 2*{padding} = {side + 2 * padding}), so the feature map would "
                f"shrink below 1 pixel; expected a kernel of at most {side + 2 * padding}"
            )


def _describe(layer: Layer) -> str:
    from budgetnet.notation import format_layer

    return format_layer(layer)


def layer_to_dict(layer: Layer) -> dict:
    """A JSON-ready dict for one layer spec.

    Example:
        >>> layer_to_dict(Conv(3, 8))
        {'type': 'conv', 'kernel_size': 3, 'out_channels': 8, 'stride': 1, 'padding': None}
    """
    data = {"type": layer.kind}
    for field in fields(layer):
        value = getattr(layer, field.name)
        data[field.name] = list(value) if isinstance(value, tuple) else value
    return data


def _layer_from_dict(item, index: int) -> Layer:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str) or item["type"] not in LAYER_TYPES:
        raise ArchError(
            f"arch JSON: layers[{index}]={item!r}; expected an object with type one of "
            f"{sorted(LAYER_TYPES)}"
        )
    cls = LAYER_TYPES[item["type"]]
    known = {field.name for field in fields(cls)}
    unknown = sorted(set(item) - known - {"type"})
    if unknown:
        raise ArchError(f"arch JSON: layers[{index}] has unknown fields {unknown}; expected {sorted(known)}")
    arguments = {key: value for key, value in item.items() if key != "type"}
    if cls is SPP and isinstance(arguments.get("levels"), list):
        arguments["levels"] = tuple(arguments["levels"])
    try:
        return cls(**arguments)
    except TypeError as error:
        raise ArchError(f"arch JSON: layers[{index}]: {error}") from None


__all__ = [
    "Arch",
    "Conv",
    "Pool",
    "SPP",
    "Flatten",
    "FC",
    "Layer",
    "LayerShape",
    "conv_output_size",
    "default_head",
    "default_padding",
    "layer_to_dict",
    "paper_head",
]


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
    _, height, width = _check_input_shape(input_shape)
    return paper_head() if min(height, width) >= PAPER_HEAD_MIN_SIZE else (SPP(SMALL_HEAD_LEVELS),)
