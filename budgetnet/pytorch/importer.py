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
series-parallel, and channel counts that do not chain. After the import, one forward pass
of a zero input (under ``torch.no_grad``, in eval mode) checks every layer's output shape
against the Arch's shape inference; a mismatch is an :class:`~budgetnet.errors.ArchError`.

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

import operator
import sys
import warnings
from dataclasses import dataclass, field, replace
from typing import Sequence

import networkx as nx
import torch
import torch.nn.functional as F
from torch import fx, nn

from budgetnet.graph.arch import BLOCKS, FC, SPP, Arch, Concat, Conv, Flatten, Layer, Pool, Residual
from budgetnet.checks import check_shape
from budgetnet.graph.dag import INPUT, read_graph
from budgetnet.errors import ArchError, BudgetNetError, UnsupportedModuleError
from budgetnet.graph.layers import Add, Cat
from budgetnet.graph.shapes import infer_shapes
from budgetnet.pytorch.modules import SpatialPyramidPool

SUPPORTED = (
    "supported: Conv2d (square, no dilation, zero padding, any groups) with optional BatchNorm2d "
    "and ReLU/ReLU6/SiLU/Hardswish/GELU, MaxPool2d/AvgPool2d (square, ceil_mode=False), residual "
    "adds, torch.cat on channels, Identity, Dropout, AdaptiveAvgPool2d/AdaptiveMaxPool2d (square), "
    "Flatten (or torch.flatten / view / reshape to (batch, -1)), Linear, in a series-parallel graph"
)

_ACTIVATION_MODULES = ((nn.ReLU, "relu"), (nn.ReLU6, "relu6"), (nn.SiLU, "silu"), (nn.Hardswish, "hardswish"))
_ACTIVATION_FUNCTIONS = {
    F.relu: "relu", F.relu_: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu6: "relu6",
    F.silu: "silu", F.hardswish: "hardswish", F.gelu: "gelu",
}  # fmt: skip
_ACTIVATION_METHODS = {"relu": "relu", "relu_": "relu"}
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
# Functional pools -> the module class and its parameter names after ``input``.
_FUNCTIONAL_POOLS = {
    F.max_pool2d: (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    F.avg_pool2d: (
        nn.AvgPool2d,
        ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    ),
    F.adaptive_max_pool2d: (nn.AdaptiveMaxPool2d, ("output_size", "return_indices")),
    F.adaptive_avg_pool2d: (nn.AdaptiveAvgPool2d, ("output_size",)),
}


@dataclass
class _Step:
    """One operation of the traced graph: ``kind`` and the module (or stand-in) it came from."""

    node: fx.Node
    where: str
    kind: str  # conv, pool, reducer, flatten, norm, act, identity, dropout, linear, add, cat
    module: nn.Module | None = None
    activation: str | None = None


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


def arch_from_module(module: nn.Module, input_shape: Sequence[int]) -> Arch:
    """Import a torch CNN as an Arch (see the module docstring for what is supported).

    Args:
        module: a ``torch.nn.Module`` built from supported layers, residual adds and concatenations.
        input_shape: ``(channels, height, width)`` of one input image.

    Returns:
        The Arch, with explicit paddings, hidden fc layers and ``num_classes`` from the last
        ``Linear``; its inferred shapes are checked against one forward pass of the module.

    Raises:
        UnsupportedModuleError: a layer, function or graph shape that an Arch cannot express.
        ArchError: the module's real output shapes differ from the Arch's shape inference.

    Example:
        >>> import torch.nn as nn, budgetnet
        >>> net = nn.Sequential(nn.Conv2d(3, 16, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(16, 5))
        >>> str(budgetnet.Arch.from_module(net, (3, 32, 32)))
        '(5,16)/2p0 gap'
    """
    return import_module(module, input_shape).arch


def import_module(module: nn.Module, input_shape: Sequence[int]) -> Imported:
    """:func:`arch_from_module` with the torch modules behind each conv and Linear."""
    if not isinstance(module, nn.Module):
        raise UnsupportedModuleError(
            f"module={type(module).__name__} is not a torch.nn.Module; expected a torch CNN "
            "such as an nn.Sequential of Conv2d, ReLU, MaxPool2d, Flatten and Linear"
        )
    input_shape = check_shape(ArchError, input_shape)
    graph_module = _trace(module)
    return _Importer(graph_module, input_shape).run(module)


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


# -- tracing ---------------------------------------------------------------------------------
class _Tracer(fx.Tracer):
    """torch.fx's tracer that keeps budgetnet's SPP whole and remembers where tracing failed."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []  # modules being traced, innermost last
        self.failed_in: str | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, SpatialPyramidPool) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):
        try:
            name = self.path_of_module(m)
        except NameError:
            name = "<unregistered>"
        self.calls.append(f"{name!r} ({type(m).__name__})")
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:
                self.failed_in = self.calls[-1]
            raise
        finally:
            self.calls.pop()


def _trace(module: nn.Module) -> fx.GraphModule:
    tracer = _Tracer()
    try:
        graph = tracer.trace(module)
    except Exception as error:  # the user's forward under fx: any failure is "cannot trace"
        where = tracer.failed_in or f"the forward of {type(module).__name__}"
        raise UnsupportedModuleError(
            f"{where}: torch.fx cannot trace it ({type(error).__name__}: {error}); expected a "
            f"forward that is a fixed chain of layers, without data-dependent control flow; {SUPPORTED}"
        ) from None
    return fx.GraphModule(tracer.root, graph, type(module).__name__)


def _where(node: fx.Node, root: nn.Module) -> str:
    """``'features.3' (Conv2d)`` for a module call; the function and its enclosing module otherwise."""
    if node.op == "call_module":
        return f"{node.target!r} ({type(root.get_submodule(node.target)).__name__})"
    if node.op == "call_method":
        what = f"Tensor.{node.target}()"
    elif node.op == "call_function":
        module = getattr(node.target, "__module__", None) or "builtins"
        what = f"{module}.{getattr(node.target, '__name__', node.target)}()"
        what = what.replace("torch._C._nn.", "torch.nn.functional.").replace("_operator.", "operator.")
    else:
        what = f"{node.op} {node.target}"
    stack = node.meta.get("nn_module_stack")
    if stack:
        name, cls = list(stack.values())[-1]
        return f"{what} in {name!r} ({getattr(cls, '__name__', cls)})"
    return f"{what} in the forward of {type(root).__name__}"


def _origin(node: fx.Node, root: nn.Module) -> str:
    """Where a tensor comes from, for messages."""
    if node.op == "placeholder":
        return "the input image"
    if node.op == "get_attr":
        return f"the parameter or buffer {node.target!r}"
    return f"the output of {_where(node, root)}"


# -- the graph -------------------------------------------------------------------------------
def _is_shape_query(node) -> bool:
    """``x.size(...)``, ``x.shape`` and items of those: metadata, not data flow."""
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method" and node.target == "size":
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",):
        return True
    return node.op == "call_function" and node.target is operator.getitem and _is_shape_query(node.args[0])


def _tensor_inputs(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) if n not in found else None)
    return [n for n in found if not _is_shape_query(n)]


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
        self.pools: dict[object, tuple[Layer, _Step]] = {}
        self.users: dict[object, int] = {}  # DAG node -> how many fx nodes read it
        self.head: list[_Step] = []
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
            if node.op in ("placeholder", "get_attr") or _is_shape_query(node):
                continue
            if node.op == "output":
                self._output(node)
                break
            step = _step(node, _where(node, self.root), self.root)
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
        result = Imported(arch, imported_convs, linears, fold)
        _check_widths(result, self.input_shape)
        _verify(module, self.root, result, [self.pools[node][1] for node in leaves if node in self.pools])
        return result

    # -- features ------------------------------------------------------------------------
    def _source(self, step: _Step, count: int | None = 1) -> list:
        tensors = _tensor_inputs(step.node)
        missing = [tensor for tensor in tensors if tensor not in self.value]
        if missing or (count is not None and len(tensors) != count):
            origins = "; ".join(_origin(tensor, self.root) for tensor in tensors)
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

    def _feature_step(self, step: _Step) -> None:
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
                spec = _pool_spec(step.module, step.where)
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
            if conv is None or conv.norm is not None or conv.activation != "none" or self.users[source] > 1:
                raise UnsupportedModuleError(
                    f"{step.where} does not directly follow a Conv2d (whose output nothing else reads); "
                    f"expected BatchNorm2d right after its conv; {SUPPORTED}"
                )
            _check_norm(step)
            conv.norm_name, conv.norm, conv.last = step.node.target, step.module, step.node
            self.users[source] -= 1
            self.value[step.node] = source
        elif kind == "act":
            (source,) = self._source(step)
            conv = self.convs.get(source)
            if conv is not None and conv.activation == "none" and self.users[source] == 1:
                conv.activation, conv.last = step.activation, step.node
            elif source in self.adds and self.adds[source] == "none" and self.users[source] == 1:
                self.adds[source] = step.activation
            else:
                raise UnsupportedModuleError(
                    f"{step.where}: an activation that does not directly follow a conv (or its "
                    "BatchNorm2d) or a residual add; expected conv -> [BatchNorm2d] -> activation"
                )
            self.users[source] -= 1
            self.value[step.node] = source
        elif kind == "add":
            sources = self._source(step, count=2)
            node = self._new(None, sources)
            self.adds[node] = "none"
            self.value[step.node] = node
        elif kind == "cat":
            sources = self._source(step, count=None)
            node = self._new(Cat(), sources)
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
    def _head_step(self, step: _Step) -> None:
        if step.kind not in ("reducer", "flatten", "linear", "dropout", "act", "identity"):
            raise UnsupportedModuleError(
                f"{step.where} comes after the map was pooled or flattened; expected Linear, ReLU and "
                "Dropout layers in the head (a pooled vector fed back into the features, as in "
                "squeeze-excitation, has no place in an Arch)"
            )
        tensors = _tensor_inputs(step.node)
        expected = self.head[-1].node if self.head else None
        if expected is None:
            if len(tensors) != 1 or self.value.get(tensors[0], "?") != self._last_feature():
                raise UnsupportedModuleError(
                    f"{step.where} does not read the last feature map; expected the head to follow the features"
                )
        elif tensors != [expected]:
            raise UnsupportedModuleError(
                f"{step.where} reads {', '.join(_origin(t, self.root) for t in tensors) or 'no tensor'}; "
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
        tensors = _tensor_inputs(node)
        last = self.head[-1].node if self.head else None
        if last is None or tensors != [last] or node.args[0] is not last:
            raise UnsupportedModuleError(
                f"the forward of {type(self.root).__name__} returns {node.args[0]!r}; expected the output "
                "of the last Linear, a single tensor of logits"
            )


def _conv_spec(conv: ImportedConv) -> Conv:
    m, where = conv.conv, repr(conv.name) + " (Conv2d)"
    if tuple(m.dilation) != (1, 1):
        raise UnsupportedModuleError(f"{where}: dilation={tuple(m.dilation)} (a dilated conv); expected dilation=1")
    if m.padding_mode != "zeros":
        raise UnsupportedModuleError(f"{where}: padding_mode={m.padding_mode!r}; expected 'zeros'")
    kernel = _square(where, "kernel_size", m.kernel_size)
    stride = _square(where, "stride", m.stride)
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
            _square(where, "padding", padding),
            groups=1 if depthwise else m.groups,
            depthwise=depthwise,
            activation=conv.activation,
            norm="batch" if conv.norm is not None else None,
        )
    except BudgetNetError as error:
        raise UnsupportedModuleError(f"{where}: {error}") from None


def _check_norm(step: _Step) -> None:
    m = step.module
    if not m.affine or not m.track_running_stats:
        raise UnsupportedModuleError(
            f"{step.where}: affine={m.affine}, track_running_stats={m.track_running_stats}; expected both True"
        )
    if m.eps != 1e-5:
        raise UnsupportedModuleError(f"{step.where}: eps={m.eps}; expected the default eps=1e-05")


def _head_layers(steps: list[_Step], feature_shape) -> tuple[list[Layer], list[tuple[str, nn.Linear]], torch.Tensor | None]:
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
            spec = _spec(step)
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


def _fold(step: _Step, spec: SPP, size: tuple[int, int]) -> torch.Tensor:
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


def _step(node: fx.Node, where: str, root: nn.Module) -> _Step:
    if node.op == "call_module":
        return _module_step(node, where, root.get_submodule(node.target))
    if node.op == "call_function" and node.target in _ACTIVATION_FUNCTIONS:
        return _Step(node, where, "act", activation=_ACTIVATION_FUNCTIONS[node.target])
    if node.op == "call_method" and node.target in _ACTIVATION_METHODS:
        return _Step(node, where, "act", activation=_ACTIVATION_METHODS[node.target])
    if (node.op == "call_function" and node.target in _ADD_FUNCTIONS) or (
        node.op == "call_method" and node.target in ("add", "add_")
    ):
        if len(_tensor_inputs(node)) != 2 or node.kwargs.get("alpha", 1) != 1 or len(node.args) > 2:
            raise UnsupportedModuleError(f"{where}: an add of {node.args!r}; expected the sum of two feature maps")
        return _Step(node, where, "add")
    if node.op == "call_function" and node.target is torch.cat:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim != 1:
            raise UnsupportedModuleError(f"{where}: torch.cat with dim={dim!r}; expected dim=1 (the channels)")
        return _Step(node, where, "cat")
    if node.op == "call_function" and node.target in _FUNCTIONAL_POOLS:
        return _module_step(node, where, _functional_pool(node, where))
    if (node.op == "call_function" and node.target is torch.flatten) or (
        node.op == "call_method" and node.target == "flatten"
    ):
        start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
        end = node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1)
        if (start, end) != (1, -1):
            raise UnsupportedModuleError(
                f"{where}: flatten with start_dim={start!r}, end_dim={end!r}; expected "
                "start_dim=1, end_dim=-1 (keep the batch dimension)"
            )
        return _Step(node, where, "flatten")
    if node.op == "call_method" and node.target in ("view", "reshape"):
        sizes = node.args[1:]
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        if len(sizes) == 2 and (
            (_is_batch_size(sizes[0]) and sizes[1] == -1)
            or (sizes[0] == -1 and isinstance(sizes[1], int) and sizes[1] > 0)
        ):
            return _Step(node, where, "flatten")
        raise UnsupportedModuleError(
            f"{where}: {node.target} to {sizes!r}; expected a flatten that keeps the batch, "
            f"x.{node.target}(x.size(0), -1) or x.{node.target}(-1, features)"
        )
    if node.op in ("call_function", "call_method") and getattr(node.target, "__name__", node.target) in (
        "mul", "matmul", "bmm", "sigmoid", "softmax", "mul_", "einsum"
    ):
        raise UnsupportedModuleError(
            f"{where} is not supported: a product or gate of feature maps (squeeze-excitation, attention) "
            f"has no place in an Arch; {SUPPORTED}"
        )
    raise UnsupportedModuleError(f"{where} is not supported; {SUPPORTED}")


def _is_batch_size(value) -> bool:
    """``x.size(0)``, ``x.shape[0]`` or ``x.size()[0]``."""
    if not isinstance(value, fx.Node):
        return False
    if value.op == "call_method" and value.target == "size":
        return value.args[1:] == (0,) or value.kwargs == {"dim": 0}
    return value.op == "call_function" and value.target is operator.getitem and value.args[1] == 0 and (
        _is_shape_query(value.args[0])
    )


def _functional_pool(node: fx.Node, where: str) -> nn.Module:
    cls, names = _FUNCTIONAL_POOLS[node.target]
    arguments = dict(zip(names, node.args[1:]), **node.kwargs)
    dynamic = sorted(name for name, value in arguments.items() if _has_node(value))
    if dynamic:
        raise UnsupportedModuleError(
            f"{where}: argument(s) {dynamic} depend on the input; expected constant pooling arguments"
        )
    try:
        return cls(**arguments)
    except TypeError as error:
        raise UnsupportedModuleError(f"{where}: {error}; expected the arguments of {cls.__name__}") from None


def _has_node(value) -> bool:
    found: list[fx.Node] = []
    fx.node.map_arg(value, found.append)
    return bool(found)


def _square(where: str, field: str, value, accepted: str = "a square (equal) value") -> int:
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise UnsupportedModuleError(f"{where}: {field}={tuple(value)!r} is not square; expected {accepted}")
        value = value[0]
    return value


def _module_step(node: fx.Node, where: str, m: nn.Module) -> _Step:
    if isinstance(m, nn.Conv2d):
        return _Step(node, where, "conv", m)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        return _Step(node, where, "pool", m)
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, SpatialPyramidPool)):
        return _Step(node, where, "reducer", m)
    for cls, activation in _ACTIVATION_MODULES:
        if type(m) is cls:
            return _Step(node, where, "act", m, activation)
    if type(m) is nn.GELU and m.approximate == "none":
        return _Step(node, where, "act", m, "gelu")
    kinds = (
        (nn.BatchNorm2d, "norm"),
        (nn.Identity, "identity"),
        (nn.Dropout, "dropout"),
        (nn.Flatten, "flatten"),
        (nn.Linear, "linear"),
    )
    for cls, kind in kinds:
        if isinstance(m, cls):
            if kind == "flatten" and (m.start_dim, m.end_dim) != (1, -1):
                raise UnsupportedModuleError(
                    f"{where}: start_dim={m.start_dim}, end_dim={m.end_dim}; expected start_dim=1, end_dim=-1"
                )
            return _Step(node, where, kind, m)
    raise UnsupportedModuleError(f"{where} is not supported; {SUPPORTED}")


def _spec(step: _Step) -> Layer:
    """The layer spec of a reducer step."""
    m, where = step.module, step.where
    if isinstance(m, SpatialPyramidPool):
        return SPP(m.levels, m.mode)
    if getattr(m, "return_indices", False):
        raise UnsupportedModuleError(f"{where}: return_indices=True; expected return_indices=False")
    size = _square(where, "output_size", m.output_size, "one square size such as 7 or (7, 7)")
    if not isinstance(size, int):
        raise UnsupportedModuleError(f"{where}: output_size={m.output_size!r}; expected an integer size")
    return SPP((size,), "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max")


def _pool_spec(m: nn.Module, where: str) -> Pool:
    if m.ceil_mode:
        raise UnsupportedModuleError(f"{where}: ceil_mode=True; expected ceil_mode=False (floor rule)")
    mode = "max" if isinstance(m, nn.MaxPool2d) else "avg"
    padding = _square(where, "padding", m.padding)
    if mode == "max":
        if _square(where, "dilation", m.dilation) != 1:
            raise UnsupportedModuleError(f"{where}: dilation={m.dilation!r}; expected dilation=1")
        if m.return_indices:
            raise UnsupportedModuleError(f"{where}: return_indices=True; expected return_indices=False")
    else:
        if m.divisor_override is not None:
            raise UnsupportedModuleError(f"{where}: divisor_override={m.divisor_override}; expected None")
        if padding and not m.count_include_pad:
            raise UnsupportedModuleError(
                f"{where}: count_include_pad=False with padding={padding}; expected count_include_pad=True"
            )
    kernel = _square(where, "kernel_size", m.kernel_size)
    stride = kernel if m.stride is None else _square(where, "stride", m.stride)
    return Pool(kernel, stride, padding, mode)


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


def _verify(module: nn.Module, graph_module: fx.GraphModule, result: Imported, pools: list[_Step]):
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
        where = _where(recorder.node, graph_module) if recorder.node is not None else type(module).__name__
        raise ArchError(
            f"{where} fails on a zero input of shape {(1, *arch.input_shape)} "
            f"({type(error).__name__}: {problem}); expected a module that runs on input_shape {arch.input_shape}"
        ) from None
    finally:
        for m, mode in training.items():
            m.training = mode
    checks = [
        (conv.last, _where(conv.last, graph_module), info.name, info.out_shape)
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


def copy_weights(source: nn.Module, model: nn.Module) -> None:
    """Copy the weights of ``source`` into ``model``, a :func:`budgetnet.build` of the Arch that
    ``source`` imports as. A conv bias before a batch norm is folded into its running mean.

    Raises:
        ArchError: ``source`` imports as another Arch, or ``model`` was built with another norm.
    """
    arch = model.arch
    imported = import_module(source, arch.input_shape)
    if imported.arch != arch:
        raise ArchError(
            f"build: weights_from={type(source).__name__} imports as {imported.arch.notation()!r}, not as the "
            f"Arch being built ({arch.notation()!r}); expected the module the Arch was imported from"
        )
    modules = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    pairs = []
    for position, m in enumerate(modules):
        if isinstance(m, nn.Conv2d):
            following = modules[position + 1] if position + 1 < len(modules) else None
            pairs.append((m, following if isinstance(following, nn.BatchNorm2d) else None))
    with torch.no_grad():
        for (conv, norm), found in zip(pairs, imported.convs):
            if (norm is None) != (found.norm is None):
                raise ArchError(
                    f"build: weights_from: {found.name!r} has {'a' if found.norm is not None else 'no'} batch norm "
                    "but the built conv has the opposite; expected build(arch) without norm='batch'"
                )
            conv.weight.copy_(found.conv.weight)
            bias = found.conv.bias
            if norm is None:
                conv.bias.copy_(bias if bias is not None else torch.zeros_like(conv.bias))
            else:
                for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                    getattr(norm, name).copy_(getattr(found.norm, name))
                if bias is not None:
                    norm.running_mean.sub_(bias)
        linears = [m for m in model.classifier.modules() if isinstance(m, nn.Linear)]
        for index, (linear, (_, found_linear)) in enumerate(zip(linears, imported.linears)):
            weight = found_linear.weight
            if index == 0 and imported.fold is not None:
                bins = imported.fold.shape[0]
                weight = (weight.view(weight.shape[0], -1, bins) @ imported.fold.to(weight)).flatten(1)
            linear.weight.copy_(weight)
            if found_linear.bias is not None:
                linear.bias.copy_(found_linear.bias)
            else:
                linear.bias.zero_()


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
