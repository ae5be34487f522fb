"""Graph assembly of the importer: the traced steps into a DAG of layer specs and joins, read
back as an Arch (:func:`import_module`), then a check of every layer's output shape against the
Arch's shape inference. The numeric check is :mod:`budgetnet.pytorch.verify`.

Example:
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    >>> imported = import_module(net, (1, 6, 6))
    >>> str(imported.arch), [conv.name for conv in imported.convs]
    ('(3,4)p0 flat', ['0'])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Sequence

import networkx as nx
import torch
import torch.nn.functional as F
from torch import fx, nn

from budgetnet.graph.arch import BLOCKS, FC, SPP, Arch, Concat, Conv, Flatten, Layer, Residual
from budgetnet.checks import check_shape
from budgetnet.graph.dag import INPUT, read_graph
from budgetnet.errors import ArchError, BudgetNetError, UnsupportedModuleError
from budgetnet.graph.layers import Add, Cat
from budgetnet.graph.shapes import infer_shapes
from budgetnet.pytorch.fx_trace import (
    SUPPORTED,
    Step,
    check_norm,
    is_shape_query,
    origin_of,
    pool_layer,
    reducer_spec,
    square,
    step_of,
    tensor_inputs,
    trace,
    where_of,
)
from budgetnet.pytorch.modules import SpatialPyramidPool


@dataclass
class ImportedConv:
    """A conv of the imported module: qualified names and modules of the conv and its norm."""

    name: str
    conv: nn.Conv2d
    norm_name: str | None = None
    norm: nn.BatchNorm2d | None = None
    activation: str = "none"
    last: fx.Node | None = None  # the fx node whose output is this layer's (after norm, activation)


@dataclass
class Imported:
    """What :func:`import_module` found: the Arch, the convs in ``arch.convs`` order, the
    Linear layers (hidden fc layers, then the classifier) with their qualified names."""

    arch: Arch
    convs: list[ImportedConv]
    linears: list[tuple[str, nn.Linear]] = field(default_factory=list)
    #: An adaptive pool finer than its map, imported as ``flat``: the (bins x pixels) matrix
    #: that pools the map, folded into the first Linear's weights by :func:`copy_weights`.
    fold: torch.Tensor | None = None
    #: The traced module, and each pool's qualified name and fx node in ``arch.walk()`` order:
    #: what :mod:`budgetnet.pytorch.verify` compares the rebuilt model against.
    graph_module: fx.GraphModule | None = None
    pools: list[tuple[str, fx.Node]] = field(default_factory=list)
    #: The import's DAG (see :mod:`budgetnet.graph.dag`), the DAG node of each conv (in
    #: ``convs`` order) and pool (in ``pools`` order), and of each add or concatenation its
    #: name for messages and the fx node whose output is the join's (after a fused activation).
    dag: nx.DiGraph | None = None
    conv_nodes: list = field(default_factory=list)
    pool_nodes: list = field(default_factory=list)
    joins: dict = field(default_factory=dict)

    def conv_names(self) -> list[str]:
        """Each conv as messages name it: ``'layer1.0.conv1' (Conv2d) + 'layer1.0.bn1' + relu``."""
        return [
            f"{conv.name!r} (Conv2d)"
            + (f" + {conv.norm_name!r} (BatchNorm2d)" if conv.norm is not None else "")
            + (f" + {conv.activation}" if conv.activation != "none" else "")
            for conv in self.convs
        ]



def import_module(module: nn.Module, input_shape: Sequence[int]) -> Imported:
    """:func:`arch_from_module` with the torch modules behind each conv and Linear."""
    if not isinstance(module, nn.Module):
        raise UnsupportedModuleError(
            f"module={type(module).__name__} is not a torch.nn.Module; expected a torch CNN "
            "such as an nn.Sequential of Conv2d, ReLU, MaxPool2d, Flatten and Linear"
        )
    input_shape = check_shape(ArchError, input_shape)
    graph_module = trace(module)
    return _Importer(graph_module, input_shape).run(module)


class _Importer:
    """Walks the traced graph once: features into a DAG of specs and joins, then the head."""

    def __init__(self, graph_module: fx.GraphModule, input_shape):
        self.root = graph_module
        self.input_shape = input_shape
        self.graph = nx.DiGraph()
        self.graph.add_node(INPUT, layer=None)
        self.value: dict[fx.Node, object] = {}  # fx tensor -> the DAG node that gives it
        self.convs: dict[object, ImportedConv] = {}  # DAG node -> its conv
        self.adds: dict[object, str] = {}  # DAG node of an add -> activation
        self.add_last: dict[object, fx.Node] = {}  # DAG node of an add -> fx node of its output
        self.joins: dict[object, str] = {}  # DAG node of an add or cat -> its name in messages
        self.cat_last: dict[object, fx.Node] = {}  # DAG node of a cat -> its fx node
        self.pools: dict[object, tuple[Layer, Step]] = {}
        self.users: dict[object, int] = {}  # DAG node -> how many fx nodes read it
        self.head: list[Step] = []
        self.count = 0

    def run(self, module: nn.Module) -> Imported:
        nodes = list(self.root.graph.nodes)
        inputs = [n for n in nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise UnsupportedModuleError(
                f"the forward of {type(self.root).__name__} takes {len(inputs)} inputs "
                f"{[n.target for n in inputs]}; expected one image tensor"
            )
        self.value[inputs[0]] = INPUT
        for node in nodes:
            if node.op in ("placeholder", "get_attr") or is_shape_query(node):
                continue
            if node.op == "output":
                self._output(node)
                break
            step = step_of(node, where_of(node, self.root), self.root)
            if self.head or step.kind in ("reducer", "flatten", "linear"):
                self._head_step(step)
            else:
                self._feature_step(step)
        layers, leaves = self._features()
        feature_shape = Arch(layers, self.input_shape).feature_shape if layers else tuple(self.input_shape)
        head_layers, linears, fold = _head_layers(self.head, feature_shape)
        imported_convs = [self.convs[node] for node in leaves if node in self.convs]
        arch = Arch(layers + head_layers, self.input_shape, linears[-1][1].out_features)
        arch = _automatic_shortcuts(arch)
        pools = [self.pools[node][1] for node in leaves if node in self.pools]
        result = Imported(arch, imported_convs, linears, fold, self.root, [(step.where, step.node) for step in pools])
        result.dag = self.graph
        result.conv_nodes = [node for node in leaves if node in self.convs]
        result.pool_nodes = [node for node in leaves if node in self.pools]
        ends = {**self.add_last, **self.cat_last}
        result.joins = {node: (f"the output of {name}", ends[node]) for node, name in self.joins.items()}
        _check_widths(result, self.input_shape)
        _verify(module, self.root, result, pools)
        return result

    # -- fusing a norm or an activation into the layer before it ---------------------------
    def _readers(self, node: fx.Node) -> list[fx.Node]:
        """Every fx node anywhere in the graph that reads ``node``'s output (through Identity
        and Dropout, which pass it on), shape queries such as ``x.size()`` left out."""
        found: list[fx.Node] = []
        for user in node.users:
            if is_shape_query(user):
                continue
            if user.op == "call_module" and isinstance(self.root.get_submodule(user.target), (nn.Identity, nn.Dropout)):
                found += [reader for reader in self._readers(user) if reader not in found]
            elif user not in found:
                found.append(user)
        return found

    def _check_fusable(self, step: Step, producer: fx.Node) -> None:
        """``step`` (a norm or activation) may fuse into ``producer`` only if it alone reads the
        producer's raw output: another reader would get the fused (normed, activated) map."""
        others = [reader for reader in self._readers(producer) if reader is not step.node]
        if others:
            readers = ", ".join(where_of(reader, self.root) for reader in others)
            feature = "a batch norm" if step.kind == "norm" else "an activation"
            raise _standalone(step, f": {feature} whose input {where_of(producer, self.root)} is also read raw by {readers} "
                                    "(a pre-activation or shared output)")

    # -- features ------------------------------------------------------------------------
    def _source(self, step: Step, count: int | None = 1) -> list:
        tensors = tensor_inputs(step.node)
        missing = [tensor for tensor in tensors if tensor not in self.value]
        if missing or (count is not None and len(tensors) != count):
            origins = "; ".join(origin_of(tensor, self.root) for tensor in tensors)
            raise UnsupportedModuleError(
                f"{step.where} reads {len(tensors)} tensors ({origins}); expected "
                f"{'one feature map' if count == 1 else 'feature maps of this network'}; {SUPPORTED}"
            )
        sources = [self.value[tensor] for tensor in tensors]
        for source in sources:
            self.users[source] = self.users.get(source, 0) + 1
        return sources

    def _new(self, layer, sources: list) -> int:
        node = self.count
        self.count += 1
        self.graph.add_node(node, layer=layer)
        for source in sources:
            self.graph.add_edge(source, node)
        return node

    def _feature_step(self, step: Step) -> None:
        kind = step.kind
        if kind in ("identity", "dropout"):
            (source,) = self._source(step)
            self.users[source] -= 1
            self.value[step.node] = source
        elif kind == "conv":
            (source,) = self._source(step)
            node = self._new(None, [source])
            self.convs[node] = ImportedConv(step.node.target, step.module, last=step.node)
            self.value[step.node] = node
        elif kind == "pool":
            (source,) = self._source(step)
            try:
                spec = pool_layer(step.module, step.where)
            except UnsupportedModuleError:
                raise
            except BudgetNetError as error:
                raise UnsupportedModuleError(f"{step.where}: {error}") from None
            node = self._new(spec, [source])
            self.pools[node] = (self.graph.nodes[node]["layer"], step)
            self.value[step.node] = node
        elif kind == "norm":
            (source,) = self._source(step)
            conv = self.convs.get(source)
            if conv is None or conv.norm is not None or conv.activation != "none":
                raise _standalone(step, " does not directly follow a Conv2d; "
                                        "expected BatchNorm2d right after its conv")
            self._check_fusable(step, conv.last)
            check_norm(step)
            conv.norm_name, conv.norm, conv.last = step.node.target, step.module, step.node
            self.users[source] -= 1
            self.value[step.node] = source
        elif kind == "act":
            (source,) = self._source(step)
            conv = self.convs.get(source)
            if conv is not None and conv.activation == "none":
                self._check_fusable(step, conv.last)
                conv.activation, conv.last = step.activation, step.node
            elif source in self.adds and self.adds[source] == "none":
                self._check_fusable(step, self.add_last[source])
                self.adds[source], self.add_last[source] = step.activation, step.node
            else:
                raise _standalone(step, ": an activation that does not directly follow a conv (or its BatchNorm2d) or a residual "
                                        "add; expected conv -> [BatchNorm2d] -> activation")
            self.users[source] -= 1
            self.value[step.node] = source
        elif kind == "add":
            sources = self._source(step, count=2)
            node = self._new(None, sources)
            self.adds[node] = "none"
            self.add_last[node] = step.node
            self.joins[node] = step.where
            self.value[step.node] = node
        elif kind == "cat":
            sources = self._source(step, count=None)
            node = self._new(Cat(), sources)
            self.joins[node], self.cat_last[node] = step.where, step.node
            self.value[step.node] = node
        else:
            raise UnsupportedModuleError(f"{step.where} is not supported in the feature maps; {SUPPORTED}")

    def _features(self) -> tuple[list[Layer], list]:
        for node, conv in self.convs.items():
            self.graph.nodes[node]["layer"] = _conv_spec(conv)
        for node, activation in self.adds.items():
            self.graph.nodes[node]["layer"] = Add(activation)
        try:
            return read_graph(self.graph)
        except ArchError as error:
            raise UnsupportedModuleError(
                f"the forward of {type(self.root).__name__} is not a series-parallel graph of layers "
                f"({error}); expected every fork to close at one add or torch.cat"
            ) from None

    # -- head ----------------------------------------------------------------------------
    def _head_step(self, step: Step) -> None:
        if step.kind not in ("reducer", "flatten", "linear", "dropout", "act", "identity"):
            raise UnsupportedModuleError(
                f"{step.where} comes after the map was pooled or flattened; expected Linear, ReLU and "
                "Dropout layers in the head (a pooled vector fed back into the features, as in "
                "squeeze-excitation, has no place in an Arch)"
            )
        tensors = tensor_inputs(step.node)
        expected = self.head[-1].node if self.head else None
        if expected is None:
            if len(tensors) != 1 or self.value.get(tensors[0], "?") != self._last_feature():
                raise UnsupportedModuleError(
                    f"{step.where} does not read the last feature map; expected the head to follow the features"
                )
        elif tensors != [expected]:
            raise UnsupportedModuleError(
                f"{step.where} reads {', '.join(origin_of(t, self.root) for t in tensors) or 'no tensor'}; "
                "expected the head (pooling, flatten, Linear layers) to be one unbranched chain"
            )
        self.head.append(step)

    def _last_feature(self):
        ends = [node for node in self.graph if self.users.get(node, 0) == 0]
        return ends[0] if len(ends) == 1 else None

    def _output(self, node: fx.Node) -> None:
        if not any(step.kind == "linear" for step in self.head):
            raise UnsupportedModuleError(
                f"the forward of {type(self.root).__name__} ends without a Linear classifier; expected the last "
                f"layer to be an nn.Linear giving the logits; {SUPPORTED}"
            )
        tensors = tensor_inputs(node)
        last = self.head[-1].node if self.head else None
        if last is None or tensors != [last] or node.args[0] is not last:
            raise UnsupportedModuleError(
                f"the forward of {type(self.root).__name__} returns {node.args[0]!r}; expected the output "
                "of the last Linear, a single tensor of logits"
            )


def _standalone(step: Step, problem: str) -> UnsupportedModuleError:
    """The one refusal of a batch norm or activation that cannot fuse into the layer before it.

    The IR has no standalone norm or activation layer yet; when it has, such a step becomes
    one here instead of this error.
    """
    layer = "batch norm" if step.kind == "norm" else "activation"
    return UnsupportedModuleError(f"{step.where}{problem}; budgetnet cannot express a standalone {layer} yet")


def _conv_spec(conv: ImportedConv) -> Conv:
    m, where = conv.conv, repr(conv.name) + " (Conv2d)"
    if tuple(m.dilation) != (1, 1):
        raise UnsupportedModuleError(f"{where}: dilation={tuple(m.dilation)} (a dilated conv); expected dilation=1")
    if m.padding_mode != "zeros":
        raise UnsupportedModuleError(f"{where}: padding_mode={m.padding_mode!r}; expected 'zeros'")
    kernel = square(where, "kernel_size", m.kernel_size)
    stride = square(where, "stride", m.stride)
    padding = m.padding
    if padding == "valid":
        padding = 0
    elif padding == "same":
        if kernel % 2 == 0:
            raise UnsupportedModuleError(
                f"{where}: padding='same' with kernel_size={kernel} pads unevenly; expected an odd kernel "
                "or an integer padding"
            )
        padding = kernel // 2
    depthwise = m.groups == m.in_channels and m.groups > 1
    try:
        return Conv(
            kernel,
            m.out_channels,
            stride,
            square(where, "padding", padding),
            groups=1 if depthwise else m.groups,
            depthwise=depthwise,
            activation=conv.activation,
            norm="batch" if conv.norm is not None else None,
        )
    except BudgetNetError as error:
        raise UnsupportedModuleError(f"{where}: {error}") from None



def _head_layers(steps: list[Step], feature_shape) -> tuple[list[Layer], list[tuple[str, nn.Linear]], torch.Tensor | None]:
    """The reducer and hidden fc layers of the head, its Linear modules (the forward's output
    was checked to be a Linear's), and the fold of an adaptive pool finer than its map."""
    layers: list[Layer] = []
    linears: list[tuple[str, nn.Linear]] = []
    dropouts: dict[int, float] = {}
    pooled = False
    fold = None
    for step in steps:
        if step.kind == "reducer":
            if layers or linears:
                raise UnsupportedModuleError(
                    f"{step.where} comes after the map was already pooled or flattened; expected one "
                    "adaptive pool or flatten between the conv layers and the Linear layers"
                )
            spec = reducer_spec(step)
            if not isinstance(step.module, SpatialPyramidPool) and spec.levels[0] > min(feature_shape[1:]):
                spec, fold = Flatten(), _fold(step, spec, feature_shape[1:])
            layers.append(spec)
            pooled = not isinstance(step.module, SpatialPyramidPool)
        elif step.kind == "flatten":
            if not layers:
                layers.append(Flatten())
            pooled = False
        elif step.kind == "linear":
            if pooled or not layers:
                raise UnsupportedModuleError(
                    f"{step.where} reads a feature map; expected a Flatten (or torch.flatten / "
                    "view) or an adaptive pool followed by a flatten before the first Linear"
                )
            linears.append((f"{step.node.target!r} (Linear)", step.module))
        elif step.kind == "dropout":
            index = len(linears) - 1
            if index < 0:
                warnings.warn(
                    f"{step.where}: a Dropout before the first Linear has no place in an Arch and is left "
                    "out (logits in eval mode are unchanged)",
                    stacklevel=3,
                )
            elif index in dropouts:
                raise UnsupportedModuleError(
                    f"{step.where}: a second Dropout after {linears[-1][0]} cannot be expressed; expected at "
                    "most one Dropout between two Linear layers (it becomes that fc's dropout)"
                )
            else:
                dropouts[index] = step.module.p
        elif step.kind == "act" and step.activation != "relu":
            raise UnsupportedModuleError(f"{step.where}: activation {step.activation!r} in the head; expected ReLU")
    last = max(index for index, step in enumerate(steps) if step.kind == "linear")
    tail = [step for step in steps[last + 1 :] if step.kind != "identity"]
    if tail:
        raise UnsupportedModuleError(
            f"{tail[0].where} follows the classifier {linears[-1][0]}; expected the last "
            "Linear to give the logits (no ReLU, Dropout or softmax after it)"
        )
    for index, (name, linear) in enumerate(linears[:-1]):
        layers.append(FC(linear.out_features, dropouts.get(index, 0.0)))
    return layers, linears, fold


def _fold(step: Step, spec: SPP, size: tuple[int, int]) -> torch.Tensor:
    """The (bins x pixels) matrix of an adaptive pool with more bins per side than its map has
    pixels (VGG's ``AdaptiveAvgPool2d(7)`` on a 32 px input's 1x1 map): it only repeats or
    averages pixels, a linear map that the first Linear absorbs, so it imports as ``flat``."""
    level, pixels = spec.levels[0], size[0] * size[1]
    basis = torch.eye(pixels).view(pixels, 1, *size)
    matrix = F.adaptive_avg_pool2d(basis, level).view(pixels, level * level).T.contiguous()
    if spec.mode == "max" and not bool(((matrix == 1).sum(dim=1) == 1).all()):
        raise UnsupportedModuleError(
            f"{step.where}: AdaptiveMaxPool2d({level}) on a {size[0]}x{size[1]} map takes the maximum of "
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
        if shortcut or layer.shortcut is None:
            return replace(layer, body=body, shortcut=None)
        return replace(layer, body=body, shortcut=tuple(_automatic(item, shortcut) for item in layer.shortcut))
    if isinstance(layer, Concat):
        return replace(layer, branches=tuple(tuple(_automatic(item, shortcut) for item in b) for b in layer.branches))
    return layer


# -- checks against the Arch's shape inference -------------------------------------------------------
def _check_widths(result: Imported, input_shape) -> None:
    """Every Conv2d, BatchNorm2d and Linear must take the channels the Arch gives it."""
    for info, conv in zip(result.arch.convs, result.convs):
        where = f"{conv.name!r} (Conv2d)"
        if conv.conv.in_channels != info.in_shape[0]:
            if info.in_shape == tuple(input_shape):
                raise UnsupportedModuleError(
                    f"{where}: in_channels={conv.conv.in_channels} but input_shape {tuple(input_shape)} has "
                    f"{input_shape[0]} channels; expected an input_shape with {conv.conv.in_channels} channels"
                )
            raise UnsupportedModuleError(
                f"{where}: in_channels={conv.conv.in_channels} does not match the {info.in_shape[0]} "
                f"channels/features that the layer before it gives; expected in_channels={info.in_shape[0]}"
            )
        if conv.norm is not None and conv.norm.num_features != conv.conv.out_channels:
            raise UnsupportedModuleError(
                f"{conv.norm_name!r} (BatchNorm2d): num_features={conv.norm.num_features} does not match the "
                f"{conv.conv.out_channels} channels of {where}; expected num_features={conv.conv.out_channels}"
            )
    features = [info.out_shape[0] for info in result.arch.shapes if info.stage is None and info.kind != "fc"]
    if result.fold is not None:  # the first Linear reads the pooled map, not the flat one
        features[0] = features[0] // result.fold.shape[1] * result.fold.shape[0]
    widths = features + [layer.out_features for layer in result.arch.head if isinstance(layer, FC)]
    for (name, linear), width in zip(result.linears, widths):
        if linear.in_features != width:
            raise UnsupportedModuleError(
                f"{name}: in_features={linear.in_features} does not match the {width} channels/features that "
                f"the layer before it gives; expected in_features={width}"
            )


def _verify(module: nn.Module, graph_module: fx.GraphModule, result: Imported, pools: list[Step]):
    """One forward pass of zeros: each layer's real output shape must be the Arch's.

    The pass runs on the meta device (shapes without arithmetic: ResNet-152 at 224 px in
    milliseconds instead of seconds), with the module's parameters swapped for meta tensors
    through ``torch.func.functional_call``; a module that fails there runs again for real, so
    the error the user sees is the one their module raises.
    """
    arch = result.arch
    parameter = next(module.parameters(), None)
    options = {} if parameter is None else {"dtype": parameter.dtype, "device": parameter.device}
    recorder = _ShapeRecorder(graph_module)
    training = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with torch.no_grad():
            try:
                _run_on_meta(recorder, (1, *arch.input_shape), options.get("dtype"))
            except Exception:  # an op without a meta kernel, or the module's own error: run for real
                recorder.shapes.clear()
                recorder.run(torch.zeros((1, *arch.input_shape), **options))
    except Exception as error:  # the user's module on a valid input: report, do not leak a traceback
        problem = str(error).split("\n\nWhile executing")[0]
        where = where_of(recorder.node, graph_module) if recorder.node is not None else type(module).__name__
        raise ArchError(
            f"{where} fails on a zero input of shape {(1, *arch.input_shape)} "
            f"({type(error).__name__}: {problem}); expected a module that runs on input_shape {arch.input_shape}"
        ) from None
    finally:
        for m, mode in training.items():
            m.training = mode
    checks = [
        (conv.last, where_of(conv.last, graph_module), info.name, info.out_shape)
        for info, conv in zip(arch.convs, result.convs)
    ]
    leaves = [info for info in arch.walk() if info.kind == "pool"]
    checks += [(step.node, step.where, info.name, info.out_shape) for info, step in zip(leaves, pools)]
    classifier = next(n for n in graph_module.graph.nodes if n.op == "output").args[0]
    checks.append((classifier, result.linears[-1][0], "classifier", (arch.num_classes,)))
    for node, where, name, expected in checks:
        actual = recorder.shapes.get(node)
        if actual != (1, *expected):
            raise ArchError(
                f"{where}: torch gives an output of shape {actual} but the imported Arch infers "
                f"{(1, *expected)} for {name}; expected them to agree (the module's forward does "
                "something an Arch does not express)"
            )


class _Runner(nn.Module):
    """Holds a GraphModule as a submodule, so ``functional_call`` can swap its parameters,
    and runs it through a recorder."""

    def __init__(self, recorder: "_ShapeRecorder"):
        super().__init__()
        self.graph_module = recorder.module
        self.recorder = recorder

    def forward(self, x):
        return self.recorder.run(x)


def _run_on_meta(recorder: "_ShapeRecorder", shape: tuple[int, ...], dtype) -> None:
    runner = _Runner(recorder)
    tensors = {**dict(runner.named_parameters()), **dict(runner.named_buffers())}
    meta = {name: torch.empty_like(tensor, device="meta") for name, tensor in tensors.items()}
    image = torch.zeros(shape, device="meta", dtype=dtype or torch.float32)
    torch.func.functional_call(runner, meta, (image,), strict=False)


class _ShapeRecorder(fx.Interpreter):
    """Runs a GraphModule and records each tensor node's output shape."""

    def __init__(self, graph_module: fx.GraphModule):
        super().__init__(graph_module)
        self.shapes: dict[fx.Node, tuple[int, ...]] = {}
        self.node: fx.Node | None = None

    def run_node(self, n: fx.Node):
        self.node = n
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            self.shapes[n] = tuple(result.shape)
        return result
