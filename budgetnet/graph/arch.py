""":class:`Arch`, the architecture: top-level layers and blocks of a CNN, their shapes, identity
and JSON.

An Arch holds a chain of top-level specs from :mod:`budgetnet.graph.layers` (convs, pools, residual
and concat blocks, then a reducer and hidden fc layers), from a single input of shape
``(channels, height, width)``; a final classifier of ``num_classes`` units follows, unless the
Arch is made with ``classifier=False`` (SqueezeNet's logits are its last conv's channels, pooled):
then the head's output is the logits and ``num_classes`` is its width.
``arch.graph`` is that chain as a networkx ``DiGraph``; ``arch.dag()`` draws every layer and
join. Shapes and resolved paddings come from :mod:`budgetnet.graph.shapes` (the paper's padding
rules live there).

Example:
    >>> from budgetnet import Arch, Conv, Pool, Residual
    >>> arch = Arch([Conv(3, 16), Pool(2), Conv(2, 32), Conv(2, 32)], input_shape=(1, 8, 8))
    >>> [info.out_shape for info in arch.shapes if info.kind == "conv"]
    [(16, 8, 8), (32, 3, 3), (32, 4, 4)]
    >>> arch = Arch([Conv(3, 16), Residual((Conv(3, 32, stride=2), Conv(3, 32)))], input_shape=(1, 8, 8))
    >>> [info.name for info in arch.convs], arch.feature_shape
    (['conv1', 'res1.conv1', 'res1.conv2', 'res1.short.conv1'], (32, 4, 4))
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import networkx as nx

from budgetnet.checks import check_shape
from budgetnet.graph.dag import from_graph, is_chain, to_graph
from budgetnet.errors import ArchError
from budgetnet.files import write_text
from budgetnet.graph.layers import (
    ACTIVATIONS,
    BLOCKS,
    ELEMENTWISE,
    FC,
    FEATURE_LAYERS,
    LAYER_TYPES,
    MAX_NESTING,
    NORMS,
    REDUCERS,
    SPP,
    Add,
    Cat,
    Concat,
    Conv,
    Flatten,
    GlobalPool,
    Layer,
    Pool,
    Residual,
    check_int,
    default_head,
    layer_from_dict,
    layer_to_dict,
    paper_head,
)
from budgetnet.graph.printing import format_arch
from budgetnet.graph.shapes import LayerShape, conv_output_size, default_padding, infer_shapes

JSON_FORMAT = "budgetnet.arch"
JSON_VERSION = 1
_LAYER_CLASSES = tuple(LAYER_TYPES.values())


class Arch:
    """A single-path CNN as a networkx ``DiGraph`` of frozen layer specs.

    Args:
        layers: conv and pool layers, then optionally one reducer (:class:`SPP` or
            :class:`Flatten`) and hidden :class:`FC` layers. Without a reducer a
            :class:`Flatten` is appended.
        input_shape: ``(channels, height, width)`` of one input image.
        num_classes: width of the final classifier that follows the last layer (1000 by
            default). With ``classifier=False``, the number of values the head gives, which
            are the logits (by default that number; any other is an ArchError).
        classifier: ``False`` for a net without a final classifier (SqueezeNet): the last
            layer's output is the logits.

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
        num_classes: int | None = None,
        classifier: bool = True,
    ):
        if isinstance(layers, nx.DiGraph) and is_chain(layers):
            graph = layers.copy()
            order = _chain_order(graph)
            layers = [graph.nodes[node]["layer"] for node in order]
        else:
            if isinstance(layers, nx.DiGraph):
                layers = from_graph(layers)
            try:
                layers = list(layers)
            except TypeError:
                raise ArchError(
                    f"arch layers={layers!r} is invalid; expected a list of layer specs or a graph"
                ) from None
            graph = None  # the chain graph is built on first use (see :attr:`graph`)
            order = list(range(len(layers)))
            _check_layer_types(layers)
        self._input_shape = check_shape(ArchError, input_shape)
        if classifier is not True and classifier is not False:
            raise ArchError(f"arch classifier={classifier!r} is invalid; expected True or False")
        if num_classes is not None or classifier:
            check_int("arch", "num_classes", 1000 if num_classes is None else num_classes, 1)
        if not any(isinstance(layer, REDUCERS) for layer in layers):
            head = next((i for i, layer in enumerate(layers) if isinstance(layer, FC)), len(layers))
            new = _fresh_node(order)
            if graph is not None:
                _insert_node(graph, order, head, new, Flatten())
            order = order[:head] + [new] + order[head:]
            layers = layers[:head] + [Flatten()] + layers[head:]
        if graph is not None:
            graph.graph.clear()
            nx.freeze(graph)
        self._graph = graph
        self._order = tuple(order)
        self._layers = tuple(layers)
        _check_order(self._layers)
        self._shapes = infer_shapes(self._layers, self._input_shape, self._order)
        self._resolved = tuple(info.layer for info in self._shapes)
        self._classifier = classifier
        self._num_classes = _logit_count(self._shapes, num_classes, classifier)
        self._key = (self._input_shape, self._num_classes, classifier, self._resolved)
        self._fingerprint: str | None = None
        self._convs: tuple[LayerShape, ...] | None = None

    # -- views -------------------------------------------------------------------------
    @property
    def graph(self) -> nx.DiGraph:
        """The frozen chain of top-level layers (a block is one node); node attribute
        ``layer`` holds the spec as written. :meth:`dag` draws every layer and join.

        Built on first use for an Arch made from a list of layers (a walk over variants
        builds many Archs and reads few graphs); node ids are the list positions, and an
        appended :class:`Flatten` takes the next id.

        Example:
            >>> import budgetnet
            >>> arch = budgetnet.parse("(3,8) 2/2 fc10", input_shape=(1, 8, 8))
            >>> list(arch.graph.edges), arch.nodes
            ([(0, 1), (1, 3), (3, 2)], (0, 1, 3, 2))
        """
        if self._graph is None:
            graph = nx.DiGraph()
            for node, layer in sorted(zip(self._order, self._layers), key=lambda item: item[0]):
                graph.add_node(node, layer=layer)
            nx.add_path(graph, self._order)
            self._graph = nx.freeze(graph)
        return self._graph

    def dag(self) -> nx.DiGraph:
        """The graph this Arch computes: every conv, pool and head layer, an ``Add`` per
        residual add and a ``Cat`` per concatenation, from an ``"input"`` node (resolved
        specs; see :mod:`budgetnet.graph.dag`). ``Arch(arch.dag(), ...)`` gives back an equal Arch.

        Example:
            >>> import budgetnet
            >>> arch = budgetnet.parse("(3,8) res[(3,8)x2] gap", input_shape=(1, 8, 8))
            >>> arch.dag().number_of_nodes()  # input, conv, two convs, add, gap
            6
        """
        return to_graph(self)

    def walk(self) -> Iterator[LayerShape]:
        """Every layer and block after shape inference, depth first (a block, then its layers).

        Example:
            >>> import budgetnet
            >>> arch = budgetnet.parse("(3,8) res[(3,16)x2] gap", input_shape=(1, 8, 8))
            >>> [info.name for info in arch.walk()]
            ['conv1', 'res1', 'res1.conv1', 'res1.conv2', 'res1.short.conv1', 'spp1']
        """
        for info in self._shapes:
            yield from info.walk()

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
        """The number of logits: the classifier's width, or without one the head's output width."""
        return self._num_classes

    @property
    def classifier(self) -> bool:
        """Whether a final classifier of ``num_classes`` units follows the last layer."""
        return self._classifier

    @property
    def shapes(self) -> tuple[LayerShape, ...]:
        """Every layer after shape inference, in order."""
        return self._shapes

    @property
    def resolved_layers(self) -> tuple[Layer, ...]:
        """Layer specs with every padding chosen."""
        return self._resolved

    @property
    def convs(self) -> tuple[LayerShape, ...]:
        """Every conv, inside blocks and shortcuts too, in execution order."""
        if self._convs is None:
            self._convs = tuple(info for info in self.walk() if info.kind == "conv")
        return self._convs

    @property
    def depth(self) -> int:
        """Number of conv layers off the shortcuts (the paper's ``d``; 49 for ResNet-50, whose
        name also counts the classifier)."""
        return sum(1 for info in self.convs if not info.shortcut)

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
        """Top-level conv layers and blocks grouped by stage (a stage ends at a pool or at a
        block that shrinks the map), stage 1 first."""
        count = max((info.stage for info in self.features), default=0)
        return tuple(
            tuple(info for info in self._shapes if info.stage == stage and info.kind != "pool")
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
        graph = nx.DiGraph(self.graph)
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
        return Arch(graph, self._input_shape, self._num_classes, self._classifier)

    def with_layers(self, layers: Sequence[Layer]) -> "Arch":
        """A new Arch with the same input shape, class count and classifier."""
        return Arch(layers, self._input_shape, self._num_classes, self._classifier)

    def with_input(self, input_shape: Sequence[int] | None = None, num_classes: int | None = None):
        """A new Arch on another input shape and/or class count.

        An Arch without a classifier (SqueezeNet) gives another number of logits when its
        last conv does: that conv gets ``num_classes`` filters if only activations, norms,
        pools and global pooling follow it (its logits are then its pooled channels), else
        another count is an ArchError.

        Example:
            >>> import budgetnet
            >>> budgetnet.parse("(3,8) 2/2").with_input((1, 28, 28), 10).feature_shape
            (8, 14, 14)
            >>> str(budgetnet.parse("(3,8) (1,1000)@relu gap nofc").with_input(num_classes=10))
            '(3,8) + (1,10) gap nofc'
        """
        layers = self.graph
        if num_classes is not None and not self._classifier and num_classes != self._num_classes:
            layers = _with_logit_count(self, num_classes)
        return Arch(
            layers,
            self._input_shape if input_shape is None else input_shape,
            self._num_classes if num_classes is None else num_classes,
            self._classifier,
        )

    # -- identity ------------------------------------------------------------------------
    def __eq__(self, other) -> bool:
        return isinstance(other, Arch) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def fingerprint(self) -> str:
        """A stable 16-hex-digit digest of the resolved layers, input shape and classes.

        The digest is SHA-256 of the compact, key-sorted JSON of ``{"input_shape": ...,
        "layers": [layer_to_dict(layer) for each resolved layer], "num_classes": ...}`` (and
        ``"classifier": false`` last for an Arch without one);
        it is worked out once per Arch, from each layer's JSON text (kept per layer spec,
        since a walk over variants meets the same blocks in many Archs).

        Example:
            >>> import budgetnet
            >>> len(budgetnet.parse("(3,8)").fingerprint())
            16
        """
        if self._fingerprint is None:
            layers = ",".join(_layer_json(layer) for layer in self.resolved_layers)
            shape = ",".join(str(side) for side in self._input_shape)
            extra = "" if self._classifier else ',"classifier":false'
            text = f'{{"input_shape":[{shape}],"layers":[{layers}],"num_classes":{self._num_classes}{extra}}}'
            self._fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self._fingerprint

    # -- text and JSON -------------------------------------------------------------------
    def notation(self) -> str:
        """The paper's table notation (see :func:`budgetnet.parse`)."""

        return format_arch(self)

    def __str__(self) -> str:
        return self.notation()

    def __repr__(self) -> str:
        extra = "" if self._classifier else ", classifier=False"
        return f"Arch('{self.notation()}', input_shape={self._input_shape}, num_classes={self._num_classes}{extra})"

    def to_dict(self) -> dict:
        """A JSON-ready dict; layers as written, so automatic paddings stay automatic
        (``"classifier": false`` only for an Arch without a final classifier)."""
        data = {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "notation": self.notation(),
            "input_shape": list(self._input_shape),
            "num_classes": self._num_classes,
        }
        if not self._classifier:
            data["classifier"] = False
        data["layers"] = [layer_to_dict(layer) for layer in self._layers]
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | Path) -> Path:
        """Write the JSON spec to ``path`` (whole or not at all, :mod:`budgetnet.files`) and return it."""
        return write_text(path, self.to_json() + "\n", what="architecture")

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
            [layer_from_dict(item, f"layers[{i}]") for i, item in enumerate(layers)],
            data["input_shape"],
            data.get("num_classes"),
            data.get("classifier", True),
        )

    @classmethod
    def from_json(cls, text: str) -> "Arch":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as error:
            raise ArchError(f"arch JSON: not valid JSON ({error})") from None
        except RecursionError:  # the C decoder's own guard, near 1000 nested lists or objects
            raise ArchError(
                f"arch JSON: nested too deep for the JSON reader; expected at most {MAX_NESTING} nested blocks"
            ) from None
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
    def from_module(cls, module, input_shape: Sequence[int], verify: bool = True) -> "Arch":
        """Import a torch CNN, residual and branching ones too (see :func:`budgetnet.pytorch.importer.arch_from_module`).

        With ``verify`` (the default) the model built from the Arch with the module's weights
        must compute the module's outputs (eval mode, a seeded random image, relative error at
        most 1e-4, layer by layer), else an ArchError names the first layer that differs;
        ``verify=False`` skips that numeric check (the output shapes are still checked).

        Example:
            >>> import torch.nn as nn
            >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
            >>> str(Arch.from_module(net, (1, 6, 6))), str(Arch.from_module(net, (1, 6, 6), verify=False))
            ('(3,4)p0@none flat', '(3,4)p0@none flat')
        """
        from budgetnet.pytorch.importer import arch_from_module

        return arch_from_module(module, input_shape, verify=verify)


# -- helpers -------------------------------------------------------------------------------
def _fresh_node(nodes: Iterable) -> int:
    """An integer node id above every integer id in use (other ids never collide with it)."""
    return max((n for n in nodes if isinstance(n, int) and not isinstance(n, bool)), default=-1) + 1


def _logit_count(shapes: Sequence[LayerShape], num_classes: int | None, classifier: bool) -> int:
    """``num_classes`` for an Arch with a classifier (1000 if not given); without one, the
    width of the head's output, which ``num_classes`` must equal if given."""
    if classifier:
        return 1000 if num_classes is None else num_classes
    width = shapes[-1].out_shape[0]
    if num_classes is not None and num_classes != width:
        raise ArchError(
            f"arch num_classes={num_classes!r} does not match an Arch without a classifier, whose logits are "
            f"the {width} values of its last layer {shapes[-1].name}; expected num_classes={width} (or a "
            "classifier, or a last conv of that many filters)"
        )
    return width


def _with_logit_count(arch: Arch, num_classes: int):
    """The layers of ``arch`` (no classifier) with its last conv's filters set to
    ``num_classes``, when that conv's pooled channels are the logits; else ``arch.graph``
    unchanged (the count then fails in :func:`_logit_count` with its reason)."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        return arch.graph
    layers = list(arch.layers)
    if any(isinstance(layer, FC) for layer in layers) or arch.shapes[-1].out_shape[0] != arch.feature_shape[0]:
        return arch.graph
    for position in reversed(range(len(layers))):
        layer = layers[position]
        if isinstance(layer, Conv) and layer.groups == 1 and not layer.depthwise:
            layers[position] = replace(layer, out_channels=num_classes)
            return layers
        if not isinstance(layer, (*ELEMENTWISE, Pool, GlobalPool, *REDUCERS)):
            return arch.graph
    return arch.graph


@lru_cache(maxsize=16384)
def _layer_json(layer: Layer) -> str:
    """The compact, key-sorted JSON of one layer spec (for :meth:`Arch.fingerprint`).

    Cached by value: equal specs have equal fields, and every field is checked to be an
    int, a bool, a str, ``None`` or a tuple of those (``FC.dropout`` is made a float), so
    equal specs print the same.
    """
    return json.dumps(layer_to_dict(layer), sort_keys=True, separators=(",", ":"))


def _insert_node(graph: nx.DiGraph, order: list, position: int, node: int, layer: Layer) -> None:
    """Wire ``node`` into the chain ``graph`` (layers in ``order``) before ``order[position]``."""
    graph.add_node(node, layer=layer)
    if position > 0:
        graph.add_edge(order[position - 1], node)
    if position < len(order):
        if position > 0:
            graph.remove_edge(order[position - 1], order[position])
        graph.add_edge(node, order[position])


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
                f"arch layer {layer!r} is not a budgetnet layer spec; expected one of "
                + ", ".join(cls.__name__ for cls in _LAYER_CLASSES)
            )


def _check_order(layers: Sequence[Layer]) -> None:
    phase = 0  # 0: features, 1: after the reducer
    for index, layer in enumerate(layers):
        if isinstance(layer, FEATURE_LAYERS):
            if phase:
                raise ArchError(
                    f"layer {index + 1} ({layer.kind}) comes after the map was pooled or "
                    "flattened; expected feature layers (conv, pool, norm, ..., blocks) before spp/gap/flat"
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


__all__ = [
    "ACTIVATIONS",
    "BLOCKS",
    "FEATURE_LAYERS",
    "REDUCERS",
    "NORMS",
    "Add",
    "Arch",
    "Cat",
    "Concat",
    "Residual",
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

