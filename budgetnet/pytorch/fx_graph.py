"""Graph assembly of the importer: the traced operations into a DAG of layer specs and joins,
read back as an Arch (:func:`import_module`).

Every operation first becomes a layer of its own (a conv, a norm, an activation, ...), so a
pre-activation block, a shortcut that reads a map before its norm, or a concatenation of a
conv's raw output all import as written. Then, over the whole graph, a batch norm is fused
into the conv before it, and an activation into that conv or into the residual add before it,
only where nothing else reads the map between them: a fusion never changes what any other
layer sees. A concatenation that repeats an earlier one and adds a map (DenseNet's) is read as
``cat[id | ...]``; global pooling right before the flatten is the head's ``gap``.

Example:
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    >>> imported = import_module(net, (1, 6, 6))
    >>> str(imported.arch), [layer.name for layer in imported.layers]
    ('(3,4)p0bn flat', ["'0' (Conv2d) + '1' (BatchNorm2d) + relu"])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Sequence

import networkx as nx
import torch
import torch.nn.functional as F
from torch import fx, nn

from budgetnet.checks import check_shape
from budgetnet.errors import ArchError, BudgetNetError, UnsupportedModuleError
from budgetnet.graph.arch import BLOCKS, FC, SPP, Arch, Concat, Conv, Flatten, Layer, Residual
from budgetnet.graph.carry import carry_regions
from budgetnet.graph.dag import INPUT, read_graph_nodes
from budgetnet.graph.layers import Act, Add, Cat, ChannelConv, Gate, GlobalPool, Mul, Norm, Scale, Shuffle, Slice
from budgetnet.graph.printing import format_layer
from budgetnet.graph.shapes import infer_shapes
from budgetnet.pytorch.fx_ops import SUPPORTED, Op, op_of
from budgetnet.pytorch.fx_trace import is_parameter, is_shape_query, origin_of, propagate_shapes, refused_class, trace


@dataclass
class ImportedLayer:
    """A leaf layer of the imported Arch: its name in messages, the module's tensors it takes
    (``weight``, ``bias``, ``running_mean``, ... of a conv, ``norm_*`` of its fused batch norm,
    ``gamma`` of a layer scale), the fx node whose output is the layer's (after what was fused
    into it), and the layout the module computed it in (``"last"``: channels-last)."""

    name: str
    layer: Layer
    tensors: dict = field(default_factory=dict)
    last: fx.Node | None = None
    layout: str = "first"
    #: The qualified name of the module the layer came from (``None`` for a function).
    path: str | None = None


@dataclass
class Imported:
    """What :func:`import_module` found: the Arch; its leaf feature layers in ``arch.walk()``
    order; each block's name and output fx node in that order (``None`` for a block that no
    node of the traced graph computes, as an inner ``cat`` of VoVNet's); the Linear layers
    (hidden fc layers, then the classifier) with their names; the traced module."""

    arch: Arch
    layers: list[ImportedLayer]
    blocks: list[tuple[str, fx.Node]] = field(default_factory=list)
    linears: list[tuple[str, nn.Linear]] = field(default_factory=list)
    #: An adaptive pool finer than its map, imported as ``flat``: the (bins x pixels) matrix
    #: that pools the map, folded into the first Linear's weights by the weight copy.
    fold: torch.Tensor | None = None
    graph_module: fx.GraphModule | None = None


def import_module(module: nn.Module, input_shape: Sequence[int]) -> Imported:
    """The Arch of a torch module and the torch tensors behind each of its layers (see
    :func:`budgetnet.pytorch.importer.arch_from_module`; this is it without the numeric check).

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.SiLU(), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(64, 2))
        >>> str(import_module(net, (1, 6, 6)).arch)
        '(3,4)p0@silu + bn flat'
    """
    if not isinstance(module, nn.Module):
        raise UnsupportedModuleError(
            f"module={type(module).__name__} is not a torch.nn.Module; expected a torch CNN "
            "such as an nn.Sequential of Conv2d, ReLU, MaxPool2d, Flatten and Linear"
        )
    input_shape = check_shape(ArchError, input_shape)
    graph_module = trace(module)
    _refuse_known(graph_module)
    inputs = [n.target for n in graph_module.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise UnsupportedModuleError(
            f"the forward of {type(module).__name__} takes {len(inputs)} inputs {inputs}; expected one image tensor"
        )
    propagate_shapes(graph_module, (1, *input_shape))
    return _Importer(graph_module, input_shape).run()


#: Modules refused by what they are, before the module runs (recurrent layers would fail on a map).
_KNOWN = {
    nn.RNNBase: "a recurrent layer", nn.MultiheadAttention: "self-attention", nn.Transformer: "a transformer",
    nn.TransformerEncoderLayer: "a transformer layer", nn.Upsample: "upsampling", nn.ConvTranspose2d: "a transposed conv",
    nn.Conv1d: "a 1-D conv outside an ECA gate (timm's EcaModule imports whole)", nn.Conv3d: "a 3-D conv",
}  # fmt: skip


def _refuse_known(graph_module: fx.GraphModule) -> None:
    for node in graph_module.graph.nodes:
        if node.op != "call_module":
            continue
        module = graph_module.get_submodule(node.target)
        feature = refused_class(module) or next((what for cls, what in _KNOWN.items() if isinstance(module, cls)), None)
        if feature is not None:
            raise UnsupportedModuleError(
                f"{node.target!r} ({type(module).__name__}): {feature} has no place in an Arch; {SUPPORTED}"
            )


class _Importer:
    """Walks the traced graph once into a DAG of leaf layers and joins, then the head."""

    def __init__(self, graph_module: fx.GraphModule, input_shape):
        self.root = graph_module
        self.input_shape = input_shape
        self.graph = nx.DiGraph()
        self.graph.add_node(INPUT, layer=None)
        self.value: dict[fx.Node, object] = {}  # fx node -> the DAG node giving its map
        self.layout: dict[fx.Node, str] = {}  # fx node -> "first" or "last" (channels-last)
        self.records: dict[object, ImportedLayer] = {}  # DAG leaf -> its record
        self.joins: dict[object, tuple[str, fx.Node]] = {}  # DAG join -> (name, output fx node)
        self.splits: dict[fx.Node, Op] = {}
        #: fx node inside a channel shuffle -> (groups, the map being shuffled, steps so far)
        self.shuffles: dict[fx.Node, tuple[int, fx.Node, int]] = {}
        self.head: list[Op] = []
        self.count = 0

    def run(self) -> Imported:
        nodes = list(self.root.graph.nodes)
        inputs = [n for n in nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise UnsupportedModuleError(
                f"the forward of {type(self.root).__name__} takes {len(inputs)} inputs "
                f"{[n.target for n in inputs]}; expected one image tensor"
            )
        self.value[inputs[0]], self.layout[inputs[0]] = INPUT, "first"
        for node in nodes:
            if node.op in ("placeholder", "get_attr") or is_shape_query(node) or is_parameter(node):
                continue
            if node.op == "output":
                self._output(node)
                break
            op = op_of(node, self.root)
            if self.head or op.kind in ("reducer", "flatten") or self._is_head(node):
                self._head_op(op)
            else:
                self._feature_op(op)
        self._fuse()
        self._concatenations()
        self._chained_concatenations()
        try:
            layers, leaves, blocks = read_graph_nodes(self.graph)
        except ArchError:
            layers, leaves, blocks = self._carried_graph()
        head_layers, linears, fold = _head_layers(self.head, layers, self.input_shape)
        if fold is None and head_layers and isinstance(head_layers[0], Flatten) and layers and (
            isinstance(layers[-1], GlobalPool)
        ):  # global pooling, then the flatten: the head's gap
            layers, head_layers, leaves = layers[:-1], [SPP((1,), layers[-1].mode), *head_layers[1:]], leaves[:-1]
        try:
            classes = linears[-1][1].out_features if linears else None
            arch = Arch(layers + head_layers, self.input_shape, classes, classifier=bool(linears))
        except BudgetNetError as error:
            raise UnsupportedModuleError(f"the forward of {type(self.root).__name__}: {error}") from None
        arch = _automatic_shortcuts(arch)
        records = [self.records[leaf] for leaf in leaves if leaf in self.records]
        result = Imported(arch, records, [self.joins.get(node) for node in blocks], linears, fold, self.root)
        _check_shapes(result)
        return result

    # -- features ----------------------------------------------------------------------------
    def _is_head(self, node: fx.Node) -> bool:
        shape = node.meta.get("shape")
        return isinstance(shape, tuple) and len(shape) == 2 and all(isinstance(v, int) for v in shape)

    def _source(self, op: Op, node: fx.Node):
        if node not in self.value:
            raise UnsupportedModuleError(
                f"{op.where} reads {origin_of(node, self.root)}; expected a feature map of this network; {SUPPORTED}"
            )
        return self.value[node]

    def _new(self, layer, sources: list) -> int:
        node = self.count
        self.count += 1
        self.graph.add_node(node, layer=layer)
        for source in sources:
            self.graph.add_edge(source, node)
        return node

    def _carried_graph(self):
        """The graph as blocks after its regions that are not series-parallel are carried
        through concatenations (:mod:`budgetnet.graph.carry`), or a refusal saying why not."""
        uncarried = carry_regions(self.graph, self.input_shape, self._carried)
        try:
            return read_graph_nodes(self.graph)
        except ArchError as error:
            why = "" if uncarried is None else (
                f"; the branches that end at {self._name(uncarried[0])} cannot be carried through concatenations "
                f"either: {uncarried[1]}"
            )  # fmt: skip
            raise UnsupportedModuleError(
                f"the forward of {type(self.root).__name__} is not a series-parallel graph of layers "
                f"({error}){why}; expected every fork to close at one add, torch.cat or gate product"
            ) from None

    def _name(self, node) -> str:
        """A DAG node in words: the module or operation that gives its map."""
        if node in self.joins:
            return self.joins[node][0]
        return self.records[node].name if node in self.records else f"node {node}"

    def _carried(self, layer: Layer, sources: list) -> int:
        """A slice or concatenation that carries maps through a region that is not
        series-parallel (:mod:`budgetnet.graph.carry`): no module of the network computes it."""
        node = self._new(layer, sources)
        if isinstance(layer, Slice):
            self.records[node] = ImportedLayer(f"channels {layer.start}:{layer.stop} of the carried maps", layer)
        return node

    def _leaf(self, op: Op, source_node: fx.Node, layer: Layer, tensors: dict | None = None) -> int:
        node = self._new(layer, [self._source(op, source_node)])
        path = op.node.target if op.node.op == "call_module" else None
        self.records[node] = ImportedLayer(op.where, layer, dict(tensors or {}), op.node, self.layout[source_node], path)
        return node

    def _feature_op(self, op: Op) -> None:
        node, kind = op.node, op.kind
        layout = self.layout.get(op.inputs[0], "first") if op.inputs else "first"
        if kind == "dropout":  # an identity in eval mode, inside the features too
            if getattr(op.module, "p", 0.0):
                warnings.warn(
                    f"{op.where}: a Dropout among the feature layers has no place in an Arch and is left out "
                    "(logits in eval mode are unchanged; the built model trains without it)",
                    stacklevel=4,
                )
            kind = "pass"
        if kind == "pass" and op.inputs[0] in self.shuffles:  # .contiguous() inside a shuffle
            self.shuffles[node] = self.shuffles[op.inputs[0]]
        elif kind == "pass":
            self._alias(op, op.inputs[0])
        elif kind == "leaf":
            self._leaf_op(op, layout)
        elif kind == "linear":
            if layout != "last":
                raise UnsupportedModuleError(
                    f"{op.where} reads a feature map with its channels first; expected a Linear on the channels of "
                    f"a channels-last map (x.permute(0, 2, 3, 1)) or after a flatten; {SUPPORTED}"
                )
            linear = op.module
            layer = Conv(1, linear.out_features, 1, 0, activation="none")
            weight = linear.weight.view(*linear.weight.shape, 1, 1)
            self.value[node] = self._leaf(op, op.inputs[0], layer, {"weight": weight, "bias": linear.bias})
            self.layout[node] = "last"
        elif kind == "cat" and len(op.inputs) == 1:  # torch.cat of one map (DenseNet's first layer)
            self._alias(op, op.inputs[0])
        elif kind in ("add", "mul", "cat"):
            self._join(op, layout)
        elif kind == "gate":
            self._gate(op, layout)
        elif kind == "permute":
            if layout == op.to:
                raise UnsupportedModuleError(f"{op.where}: a permute to the layout the map is already in; {SUPPORTED}")
            self._alias(op, op.inputs[0], layout=op.to)
        elif kind == "split":
            self._source(op, op.inputs[0])
            self.splits[node] = op
        elif kind == "item":
            split = self.splits.get(op.inputs[0])
            if split is None:
                raise UnsupportedModuleError(f"{op.where}: an item of {origin_of(op.inputs[0], self.root)}; {SUPPORTED}")
            start, stop = split.parts[op.parts[0]]
            source = split.inputs[0]
            self.value[node] = self._leaf(op, source, Slice(start, stop))
            self.layout[node] = self.layout[source]
        elif kind == "view5":  # a channel shuffle: view to (b, g, c / g, h, w), transpose, view back
            self._source(op, op.inputs[0])
            self.shuffles[node] = (op.parts[0], op.inputs[0], 1)
        elif kind in ("transpose", "view4"):
            groups, source, steps = self.shuffles.get(op.inputs[0], (0, None, 0))
            if steps != (1 if kind == "transpose" else 2):
                raise UnsupportedModuleError(f"{op.where}: a {kind[:4]} that is not part of a channel shuffle; {SUPPORTED}")
            if kind == "transpose":
                self.shuffles[node] = (groups, source, 2)
            else:
                self.value[node] = self._leaf(op, source, Shuffle(groups))
                self.layout[node] = "first"
        else:  # a head step before the map was flattened
            raise UnsupportedModuleError(
                f"{op.where} reads a feature map; expected a flatten (or global pooling) before the Linear layers; {SUPPORTED}"
            )

    def _alias(self, op: Op, source: fx.Node, layout: str | None = None) -> None:
        self.value[op.node] = self._source(op, source)
        self.layout[op.node] = layout or self.layout[source]

    def _leaf_op(self, op: Op, layout: str) -> None:
        layer = op.layer
        if layout == "last" and not isinstance(layer, (Norm, Act, Scale)) or (
            isinstance(layer, Norm) and layer.norm == "layer" and layout == "first" and type(op.module).__name__
            not in ("LayerNorm2d", "LayerNormAct2d") and op.module is not None
        ) or (isinstance(layer, Norm) and layer.norm == "response" and layout != _grn_layout(op.module)):
            raise UnsupportedModuleError(
                f"{op.where} on a map with its channels {'last' if layout == 'last' else 'first'}; expected convs and "
                f"pools on channels-first maps, layer and response norms over the channels of the layout they "
                f"were made for; {SUPPORTED}"
            )
        source = op.inputs[0]
        if op.pad is not None:  # TensorFlow's uneven "same" padding: a layer of its own, before the conv
            padded = self._leaf(op, source, op.pad)
            self.records[padded].last, self.records[padded].name = None, op.where + " (its 'same' padding)"
            self.value[op.node] = padded
            node = self._new(layer, [padded])
            self.records[node] = ImportedLayer(op.where, layer, dict(op.tensors), op.node, layout, op.node.target)
        else:
            node = self._leaf(op, source, layer, op.tensors)
        if op.activation not in (None, "none"):  # timm's norm + activation modules: two layers
            record = self.records[node]
            node = self._new(Act(op.activation), [node])
            self.records[node] = ImportedLayer(op.where + f" ({op.activation})", Act(op.activation), {}, op.node,
                                               record.layout)  # fmt: skip
            record.last = None  # its own output is not a node of the traced graph
        self.value[op.node] = node
        self.layout[op.node] = layout

    def _gate(self, op: Op, layout: str) -> None:
        """A module kept whole that is a gate (timm's ECA): its body's layers, one after the
        other from the module's input, then the product with that input. No node of the
        traced graph gives the body's maps; the product's is the module's output."""
        if layout != "first":
            raise UnsupportedModuleError(f"{op.where} on a map with its channels last; {SUPPORTED}")
        source = op.inputs[0]
        node = self._source(op, source)
        for layer in op.layer.body:
            node = self._new(layer, [node])
            tensors = op.tensors if isinstance(layer, ChannelConv) else {}
            path = f"{op.node.target}.conv" if isinstance(layer, ChannelConv) else None
            self.records[node] = ImportedLayer(f"{op.where} ({format_layer(layer)})", layer, dict(tensors), None,
                                               layout, path)  # fmt: skip
        join = self._new(Mul(), [self.value[source], node])
        self.joins[join] = (f"the output of {op.where}", op.node)
        self.value[op.node] = join
        self.layout[op.node] = layout

    def _join(self, op: Op, layout: str) -> None:
        sources = [self._source(op, n) for n in op.inputs]
        if len({self.layout[n] for n in op.inputs}) > 1:
            raise UnsupportedModuleError(f"{op.where} joins channels-first and channels-last maps; {SUPPORTED}")
        if op.kind == "cat" and layout == "last":
            raise UnsupportedModuleError(f"{op.where}: a concatenation of channels-last maps; {SUPPORTED}")
        join = {"add": Add("none"), "mul": Mul(), "cat": Cat()}[op.kind]
        if op.kind != "cat" and len(sources) != 2:
            raise UnsupportedModuleError(f"{op.where} joins {len(sources)} maps; expected 2; {SUPPORTED}")
        node = self._new(join, [])
        for source in sources:  # a repeated input (x + x) needs its own edge: refuse it by name
            if self.graph.has_edge(source, node):
                raise UnsupportedModuleError(f"{op.where} reads the same map twice; {SUPPORTED}")
            self.graph.add_edge(source, node)
        self.joins[node] = (f"the output of {op.where}", op.node)
        self.value[op.node] = node
        self.layout[op.node] = layout

    # -- fusion, over the whole graph ------------------------------------------------------------
    def _fuse(self) -> None:
        """Fold each batch norm into the conv before it, and each activation into that conv or
        the residual add before it, where the earlier layer has no other reader."""
        for node in list(nx.topological_sort(self.graph)):
            if node not in self.graph:
                continue
            layer = self.graph.nodes[node]["layer"]
            if isinstance(layer, Conv) and layer.activation == "none":
                node = self._fuse_norm(node)
                self._fuse_activation(node)
            elif isinstance(layer, Add) and layer.activation == "none":
                self._fuse_activation(node)

    def _only_reader(self, node):
        readers = list(self.graph.successors(node))
        return readers[0] if len(readers) == 1 else None

    def _fuse_norm(self, node):
        conv = self.graph.nodes[node]["layer"]
        reader = self._only_reader(node)
        norm = self.graph.nodes[reader]["layer"] if reader is not None else None
        if not (isinstance(norm, Norm) and norm.norm == "batch" and norm.affine) or conv.norm is not None:
            return node
        if self.records[node].layout != "first":
            return node
        fused = replace(conv, norm="batch", norm_eps=norm.eps, norm_momentum=norm.momentum)
        self._merge(node, reader, fused, {f"norm_{key}": value for key, value in self.records[reader].tensors.items()})
        return node

    def _fuse_activation(self, node) -> None:
        layer = self.graph.nodes[node]["layer"]
        reader = self._only_reader(node)
        act = self.graph.nodes[reader]["layer"] if reader is not None else None
        if not isinstance(act, Act) or act.activation == "none":
            return
        self._merge(node, reader, replace(layer, activation=act.activation), {})

    def _merge(self, node, reader, layer, tensors: dict) -> None:
        """Put ``reader`` (a norm or activation) into ``node`` as ``layer``."""
        self.graph.nodes[node]["layer"] = layer
        for following in list(self.graph.successors(reader)):
            self._replace_edge(reader, following, node)
        later = self.records.pop(reader)
        if node in self.records:
            record = self.records[node]
            record.layer, record.last = layer, later.last
            record.name += " + " + (later.name if isinstance(later.layer, Norm) else layer.activation)
            record.tensors.update(tensors)
        else:  # an add: its output is now the activation's
            name, _ = self.joins[node]
            self.joins[node] = (name, later.last)
        self.graph.remove_node(reader)

    def _replace_edge(self, old, following, new) -> None:
        """Make ``new`` feed ``following`` where ``old`` did, keeping the order of its inputs."""
        inputs = list(self.graph.predecessors(following))
        for source in inputs:
            self.graph.remove_edge(source, following)
        for source in inputs:
            self.graph.add_edge(new if source == old else source, following)

    def _concatenations(self) -> None:
        """DenseNet's concatenations: ``cat(x, f1, f2)`` where ``cat(x, f1)`` exists becomes
        ``cat(cat(x, f1), f2)``, so that every map is read by one concatenation."""
        cats = [n for n in nx.topological_sort(self.graph) if isinstance(self.graph.nodes[n]["layer"], Cat)]
        inputs = {n: list(self.graph.predecessors(n)) for n in cats}  # as written, before any change
        for node in cats:
            mine = inputs[node]
            best = max(
                (other for other in cats if other != node and 2 <= len(inputs[other]) < len(mine)
                 and mine[: len(inputs[other])] == inputs[other] and not nx.has_path(self.graph, node, other)),
                key=lambda other: len(inputs[other]), default=None,
            )  # fmt: skip
            if best is None:
                continue
            for source in mine:
                self.graph.remove_edge(source, node)
            for source in [best, *mine[len(inputs[best]) :]]:
                self.graph.add_edge(source, node)

    def _chained_concatenations(self) -> None:
        """VoVNet's and HGNet's concatenations: ``cat(x, f1, f2, f3)`` where each ``f`` is made
        from the one before becomes ``cat(x, cat(f1, cat(f2, f3)))``, which is series-parallel
        (``cat[id | ... cat[id | ...]]``) and concatenates the same channels in the same order."""
        work = [n for n in self.graph if isinstance(self.graph.nodes[n]["layer"], Cat)]
        while work:
            node = work.pop()
            inputs = list(self.graph.predecessors(node))
            if len(inputs) < 3:
                continue
            rest = inputs[1:]
            if not all(source == rest[0] or nx.has_path(self.graph, rest[0], source) for source in rest[1:]):
                continue
            if any(nx.has_path(self.graph, inputs[0], source) and not nx.has_path(self.graph, rest[0], source)
                   for source in rest):  # fmt: skip
                continue
            inner = self._new(Cat(), rest)  # no node of the traced graph gives its output
            for source in inputs:
                self.graph.remove_edge(source, node)
            self.graph.add_edge(inputs[0], node)
            self.graph.add_edge(inner, node)
            work.append(inner)

    # -- head ----------------------------------------------------------------------------------
    def _head_op(self, op: Op) -> None:
        if op.kind not in ("reducer", "flatten", "linear", "dropout", "pass", "leaf"):
            raise UnsupportedModuleError(
                f"{op.where} comes after the map was pooled or flattened; expected Linear layers with their "
                "activations and dropout in the head (a pooled vector fed back into the features has no place here)"
            )
        if op.kind == "leaf" and not isinstance(op.layer, Act):
            raise UnsupportedModuleError(f"{op.where} in the head; expected Linear, activation and Dropout layers")
        expected = self.head[-1].node if self.head else None
        inputs = [n for n in op.inputs if n.op != "get_attr"]
        if expected is None:
            if len(inputs) != 1 or self.value.get(inputs[0], "?") != self._last_feature():
                raise UnsupportedModuleError(
                    f"{op.where} does not read the last feature map; expected the head to follow the features"
                )
            if self.layout.get(inputs[0]) == "last":
                raise UnsupportedModuleError(f"{op.where} flattens a channels-last map; {SUPPORTED}")
        elif inputs != [expected]:
            raise UnsupportedModuleError(
                f"{op.where} reads {', '.join(origin_of(t, self.root) for t in inputs) or 'no tensor'}; "
                "expected the head (pooling, flatten, Linear layers) to be one unbranched chain"
            )
        self.head.append(op)

    def _conv_classifier(self) -> None:
        """A 1x1 conv on the globally pooled map, then the flatten (timm's DLA and DPN): the
        classifier written as a conv, which is the Linear it computes."""
        last = self._last_feature()
        layer = self.graph.nodes[last]["layer"] if last is not None else None
        before = list(self.graph.predecessors(last)) if last is not None else []
        if not (isinstance(layer, Conv) and layer.kernel_size == 1 and layer.stride == 1 and layer.groups == 1
                and layer.norm is None and layer.activation == "none" and not layer.depthwise and len(before) == 1
                and isinstance(self.graph.nodes[before[0]]["layer"], GlobalPool)
                and [op.kind for op in self.head] == ["flatten"]):  # fmt: skip
            return
        record = self.records.pop(last)
        weight = record.tensors["weight"]
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=record.tensors.get("bias") is not None, device="meta")
        linear.weight = nn.Parameter(weight.detach().flatten(1), requires_grad=False)
        if record.tensors.get("bias") is not None:
            linear.bias = nn.Parameter(record.tensors["bias"].detach(), requires_grad=False)
        self.graph.remove_node(last)
        self.head.append(Op(self.head[0].node, record.name, "linear", [], module=linear))

    def _last_feature(self):
        ends = [node for node in self.graph if self.graph.out_degree(node) == 0]
        return ends[0] if len(ends) == 1 else None

    def _output(self, node: fx.Node) -> None:
        """The forward's result: the last Linear's output, or without a Linear the pooled map
        (SqueezeNet's logits are its last conv's channels, pooled: an Arch without a classifier)."""
        if not any(op.kind == "linear" for op in self.head):
            self._conv_classifier()
        if not self.head:
            raise UnsupportedModuleError(
                f"the forward of {type(self.root).__name__} returns a feature map, not logits; expected the last "
                f"map pooled or flattened, then optionally Linear layers; {SUPPORTED}"
            )
        last = self.head[-1].node
        if node.args[0] is not last:
            raise UnsupportedModuleError(
                f"the forward of {type(self.root).__name__} returns {node.args[0]!r}; expected the output "
                "of the last Linear (or of the pooling, without one), a single tensor of logits"
            )


def _grn_layout(module: nn.Module) -> str:
    """The layout timm's ``GlobalResponseNorm`` expects: its channels last or first."""
    return "last" if getattr(module, "channel_dim", 1) == -1 else "first"


def _head_layers(ops: list[Op], features: list[Layer], input_shape) -> tuple[list[Layer], list, torch.Tensor | None]:
    """The reducer and hidden fc layers of the head, its Linear modules and the fold of an
    adaptive pool finer than its map."""
    feature_shape = Arch(features, input_shape).feature_shape if features else tuple(input_shape)
    layers: list[Layer] = []
    linears: list[tuple[str, nn.Linear]] = []
    dropouts: dict[int, float] = {}
    activations: dict[int, str] = {}
    fold = None
    for op in ops:
        if op.kind == "reducer":
            if layers or linears:
                raise UnsupportedModuleError(
                    f"{op.where} comes after the map was already pooled or flattened; expected one "
                    "pooling or flatten between the feature layers and the Linear layers"
                )
            spec = op.layer
            if spec.levels != (1,) and op.module is not None and spec.levels[0] > min(feature_shape[1:]) and len(
                spec.levels
            ) == 1:
                spec, fold = Flatten(), _fold(op, spec, feature_shape[1:])
            layers.append(spec)
        elif op.kind == "flatten":
            if not layers:
                layers.append(Flatten())
        elif op.kind == "linear":
            if not layers:
                raise UnsupportedModuleError(f"{op.where} reads a feature map; expected a flatten before it")
            linears.append((f"{op.node.target!r} (Linear)" if op.node.op == "call_module" else op.where, op.module))
        elif op.kind in ("dropout", "pass"):
            index = len(linears) - 1
            p = getattr(op.module, "p", 0.0) if op.kind == "dropout" else 0.0
            if op.kind == "pass" or not p:
                continue
            if index < 0:
                warnings.warn(
                    f"{op.where}: a Dropout before the first Linear has no place in an Arch and is left "
                    "out (logits in eval mode are unchanged)",
                    stacklevel=4,
                )
            elif index in dropouts:
                raise UnsupportedModuleError(
                    f"{op.where}: a second Dropout after {linears[-1][0]} cannot be expressed; expected at most one "
                    "Dropout between two Linear layers (it becomes that fc's dropout)"
                )
            else:
                dropouts[index] = p
        elif op.kind == "leaf":  # an activation
            index = len(linears) - 1
            if index < 0 or index in activations:
                raise UnsupportedModuleError(
                    f"{op.where}: an activation {'before the first Linear' if index < 0 else 'after another'}; "
                    "expected one activation after each hidden Linear"
                )
            activations[index] = op.layer.activation
    if not linears:  # no classifier: the pooled map is the logits
        if fold is not None:
            raise UnsupportedModuleError(
                f"{ops[0].where} repeats pixels of its map with no Linear after it to absorb them; expected "
                "an output_size of at most the map's side, or a Linear classifier"
            )
        return layers, linears, fold
    last = max(index for index, op in enumerate(ops) if op.kind == "linear")
    tail = [op for op in ops[last + 1 :] if op.kind not in ("pass",) and not (op.kind == "dropout" and not op.module.p)]
    if tail:
        raise UnsupportedModuleError(
            f"{tail[0].where} follows the classifier {linears[-1][0]}; expected the last "
            "Linear to give the logits (no activation, Dropout or softmax after it)"
        )
    for index, (name, linear) in enumerate(linears[:-1]):
        layers.append(FC(linear.out_features, dropouts.get(index, 0.0), activations.get(index, "none")))
    return layers, linears, fold


def _fold(op: Op, spec: SPP, size: tuple[int, int]) -> torch.Tensor:
    """The (bins x pixels) matrix of an adaptive pool with more bins per side than its map has
    pixels (VGG's ``AdaptiveAvgPool2d(7)`` on a 32 px input's 1x1 map): it only repeats or
    averages pixels, a linear map that the first Linear absorbs, so it imports as ``flat``."""
    level, pixels = spec.levels[0], size[0] * size[1]
    basis = torch.eye(pixels).view(pixels, 1, *size)
    matrix = F.adaptive_avg_pool2d(basis, level).view(pixels, level * level).T.contiguous()
    if spec.mode == "max" and not bool(((matrix == 1).sum(dim=1) == 1).all()):
        raise UnsupportedModuleError(
            f"{op.where}: AdaptiveMaxPool2d({level}) on a {size[0]}x{size[1]} map takes the maximum of "
            f"overlapping pixel pairs, which an Arch cannot express; expected an output_size of at most "
            f"{min(size)}, a multiple of the map's side, or a larger input"
        )
    return matrix


def _automatic_shortcuts(arch: Arch) -> Arch:
    """Each top-level block as the notation would write it: paddings that the block rules
    choose anyway left automatic, and a shortcut that equals the automatic one (identity or
    1x1 projection) stored as automatic. Only what resolves to the same block changes."""
    layers = list(arch.layers)
    for info in arch.shapes:
        if not isinstance(info.layer, BLOCKS):
            continue
        written = arch.layers[info.index]
        for candidate in (_automatic(written, shortcut=True), _automatic(written, shortcut=False)):
            try:
                same = infer_shapes((candidate,), info.in_shape)[0].layer == info.layer
            except BudgetNetError:
                same = False
            if same:
                layers[info.index] = candidate
                break
    return arch.with_layers(layers) if layers != list(arch.layers) else arch


def _automatic(layer: Layer, shortcut: bool) -> Layer:
    """``layer`` with every conv padding inside it automatic (and the shortcut, if asked)."""
    if isinstance(layer, Conv):
        return replace(layer, padding=None)
    if isinstance(layer, Residual):
        body = tuple(_automatic(item, shortcut) for item in layer.body)
        short = None if shortcut else (
            None if layer.shortcut is None else tuple(_automatic(item, False) for item in layer.shortcut)
        )
        return replace(layer, body=body, shortcut=short if shortcut or layer.shortcut is None else short)
    if isinstance(layer, Concat):
        return replace(layer, branches=tuple(tuple(_automatic(item, shortcut) for item in b) for b in layer.branches))
    if isinstance(layer, Gate):
        return replace(layer, body=tuple(_automatic(item, shortcut) for item in layer.body))
    return layer


def _check_shapes(result: Imported) -> None:
    """Every leaf's output shape in the module (propagated on the meta device) must be the one
    the Arch infers, and every conv must take the channels the Arch gives it."""
    leaves = [info for info in result.arch.walk() if not isinstance(info.layer, BLOCKS) and info.stage is not None]
    for info, record in zip(leaves, result.layers):
        if record.last is None:
            continue
        actual = record.last.meta.get("shape")
        if record.layout == "last" and isinstance(actual, tuple) and len(actual) == 4:
            actual = (actual[0], actual[3], actual[1], actual[2])
        if actual != (1, *info.out_shape):
            raise ArchError(
                f"{record.name}: torch gives an output of shape {actual} but the imported Arch infers "
                f"{(1, *info.out_shape)} for {info.name}; expected them to agree (the module's forward does "
                "something an Arch does not express)"
            )
        weight = record.tensors.get("weight")
        if isinstance(info.layer, Conv) and weight is not None and weight.shape[1] * info.layer.groups != info.in_shape[0]:
            raise UnsupportedModuleError(
                f"{record.name}: in_channels={weight.shape[1] * info.layer.groups} does not match the "
                f"{info.in_shape[0]} channels that the layer before it gives; expected in_channels={info.in_shape[0]}"
            )
    width = next(info for info in result.arch.shapes if info.stage is None).out_shape[0]  # the reducer's
    if result.fold is not None:  # the first Linear reads the pooled map, not the flat one
        width = width // result.fold.shape[1] * result.fold.shape[0]
    widths = [width] + [layer.out_features for layer in result.arch.head if isinstance(layer, FC)]
    for (name, linear), expected in zip(result.linears, widths):
        if linear.in_features != expected:
            raise UnsupportedModuleError(
                f"{name}: in_features={linear.in_features} does not match the {expected} channels/features that "
                f"the layer before it gives; expected in_features={expected}"
            )


__all__ = ["Imported", "ImportedLayer", "import_module"]
