"""torch module -> :class:`~budgetnet.Arch` through torch.fx (``budgetnet.Arch.from_module``).

The module is traced with ``torch.fx`` and must be a single chain, image in, logits out:

* features: ``Conv2d`` (square kernel, stride and padding, ``groups=1``, no dilation, zero
  padding), ``MaxPool2d`` / ``AvgPool2d`` (square, ``ceil_mode=False``), ``ReLU`` (module,
  ``F.relu``, ``torch.relu`` or ``Tensor.relu``), ``BatchNorm2d``, ``Identity``, and the
  functional ``F.max_pool2d`` / ``F.avg_pool2d`` with constant arguments;
* the reducer: ``AdaptiveAvgPool2d(n)`` / ``AdaptiveMaxPool2d(n)`` (becomes ``SPP((n,),
  mode)``; ``AdaptiveAvgPool2d(1)`` is ``gap``), budgetnet's own ``SpatialPyramidPool``, or a
  flatten (``nn.Flatten``, ``torch.flatten(x, 1)``, ``x.flatten(1)``,
  ``x.view(x.size(0), -1)``, ``x.reshape(x.shape[0], -1)``, ``x.view(-1, N)``);
* the head: ``Linear`` layers with ``ReLU`` and ``Dropout`` between them. The last
  ``Linear`` is the classifier (its width is ``num_classes``); each earlier one becomes an
  ``FC`` whose dropout is the ``Dropout`` that follows it (0 without one).

Not represented in the Arch: ``BatchNorm2d`` (its channel count is checked, then it is
dropped; rebuild with ``budgetnet.build(arch, norm="batch")``), where the ReLUs are (an
Arch puts one after every conv and hidden fc), and biases. Paddings are imported as
written (``Conv(..., padding=p)``), so the paper's automatic padding rules do not apply.

Anything else raises :class:`~budgetnet.errors.UnsupportedModuleError` naming the module
(qualified name and type) and what is supported: grouped, dilated or non-square convs,
``ceil_mode`` pools, unknown modules or functions, branching graphs (residual adds,
concatenations), channel counts that do not chain, and modules that fx cannot trace.
After the import, one forward pass of a zero input (under ``torch.no_grad``, in eval
mode) checks every layer's output shape against the Arch's shape inference; a mismatch is
an :class:`~budgetnet.errors.ArchError`.

Example:
    >>> import torch.nn as nn, budgetnet
    >>> net = nn.Sequential(
    ...     nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
    ...     nn.Flatten(), nn.Linear(8 * 4 * 4, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10),
    ... )
    >>> arch = budgetnet.Arch.from_module(net, (1, 8, 8))
    >>> str(arch), arch.num_classes, budgetnet.conv_macs(arch)
    ('(3,8)p1 2/2 flat fc(32,0.2)', 10, 4608)
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from budgetnet.arch import FC, SPP, Arch, Conv, Flatten, Layer, Pool, _check_input_shape
from budgetnet.builder import SpatialPyramidPool
from budgetnet.errors import ArchError, BudgetNetError, UnsupportedModuleError

SUPPORTED = (
    "supported: Conv2d (square, groups=1, no dilation, zero padding), MaxPool2d/AvgPool2d "
    "(square, ceil_mode=False), ReLU, BatchNorm2d, Identity, AdaptiveAvgPool2d/"
    "AdaptiveMaxPool2d (square), Flatten (or torch.flatten / view / reshape to (batch, -1)), "
    "Linear, Dropout between Linear layers, in one unbranched chain"
)

_RELU_FUNCTIONS = (F.relu, F.relu_, torch.relu, torch.relu_)
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
    """One operation of the traced chain: ``kind`` and the module (or stand-in) it came from."""

    node: fx.Node
    where: str
    kind: str  # conv, pool, reducer, flatten, norm, relu, identity, dropout, linear
    module: nn.Module | None = None


def arch_from_module(module: nn.Module, input_shape: Sequence[int]) -> Arch:
    """Import a sequential torch CNN as an Arch (see the module docstring for what is supported).

    Args:
        module: a ``torch.nn.Module`` whose forward is one chain of supported layers.
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
    if not isinstance(module, nn.Module):
        raise UnsupportedModuleError(
            f"module={type(module).__name__} is not a torch.nn.Module; expected a torch CNN "
            "such as an nn.Sequential of Conv2d, ReLU, MaxPool2d, Flatten and Linear"
        )
    input_shape = _check_input_shape(input_shape)
    graph_module = _trace(module)
    steps = _chain(graph_module)
    layers, sources, linears = _to_layers(steps, input_shape)
    num_classes = linears[-1].module.out_features
    arch = Arch(layers, input_shape, num_classes)
    _check_widths(arch, steps, sources, input_shape)
    _verify(module, graph_module, arch, sources, linears[-1])
    return arch


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


# -- the chain ---------------------------------------------------------------------------------
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


def _chain(graph_module: fx.GraphModule) -> list[_Step]:
    """The traced graph as a list of steps; anything but one unbranched chain is refused."""
    nodes = list(graph_module.graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise UnsupportedModuleError(
            f"the forward of {type(graph_module).__name__} takes {len(inputs)} inputs "
            f"{[n.target for n in inputs]}; expected one image tensor"
        )
    current = inputs[0]
    steps: list[_Step] = []
    for node in nodes:
        if node.op in ("placeholder", "get_attr") or _is_shape_query(node):
            continue
        where = _where(node, graph_module)
        tensors = _tensor_inputs(node)
        if node.op == "output":
            if tensors != [current] or node.args[0] is not current:
                raise UnsupportedModuleError(
                    f"the forward of {type(graph_module).__name__} returns {node.args[0]!r}; expected "
                    "the output of the last layer, a single tensor of logits"
                )
            break
        if len(tensors) > 1:
            origins = "; ".join(_origin(tensor, graph_module) for tensor in tensors)
            raise UnsupportedModuleError(
                f"{where} combines {len(tensors)} tensors ({origins}): a branching graph (such as a "
                f"residual add or a concatenation) cannot be expressed as an Arch; {SUPPORTED}"
            )
        if tensors != [current]:
            source = f"an earlier tensor ({_origin(tensors[0], graph_module)})" if tensors else "no tensor"
            raise UnsupportedModuleError(
                f"{where} reads {source} instead of the previous layer's output: a branching "
                f"graph cannot be expressed as an Arch; {SUPPORTED}"
            )
        steps.append(_step(node, where, graph_module))
        current = node
    return steps


def _step(node: fx.Node, where: str, root: nn.Module) -> _Step:
    if node.op == "call_module":
        return _module_step(node, where, root.get_submodule(node.target))
    if node.op == "call_function" and node.target in _RELU_FUNCTIONS:
        return _Step(node, where, "relu")
    if node.op == "call_method" and node.target in ("relu", "relu_"):
        return _Step(node, where, "relu")
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
    kinds = (
        (nn.ReLU, "relu"),
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


# -- steps -> layers -------------------------------------------------------------------------
def _to_layers(steps: list[_Step], input_shape) -> tuple[list[Layer], list[_Step], list[_Step]]:
    """Layer specs, the step each came from (same order), and the Linear steps."""
    layers: list[Layer] = []
    sources: list[_Step] = []
    linears: list[_Step] = []
    dropouts: dict[int, float] = {}
    phase = "features"  # -> "pooled" (adaptive pool, flatten pending) -> "head"
    for step in steps:
        if step.kind in ("conv", "pool", "norm"):
            if phase != "features":
                raise UnsupportedModuleError(
                    f"{step.where} comes after the map was pooled or flattened; expected conv, "
                    "pool and BatchNorm2d layers before the adaptive pool / flatten"
                )
            if step.kind != "norm":
                if step.kind == "conv" and not any(isinstance(layer, Conv) for layer in layers):
                    _check_first_conv(step, input_shape)
                layers.append(_spec(step))
                sources.append(step)
        elif step.kind == "reducer":
            if phase != "features":
                raise UnsupportedModuleError(
                    f"{step.where} comes after the map was already pooled or flattened; expected one "
                    "adaptive pool or flatten between the conv layers and the Linear layers"
                )
            layers.append(_spec(step))
            sources.append(step)
            phase = "head" if isinstance(step.module, SpatialPyramidPool) else "pooled"
        elif step.kind == "flatten":
            if phase == "features":
                layers.append(Flatten())
                sources.append(step)
            elif phase == "pooled":
                sources[-1] = step  # the adaptive pool's map, flattened: the SPP's output
            phase = "head"
        elif step.kind == "linear":
            if phase != "head":
                raise UnsupportedModuleError(
                    f"{step.where} reads a feature map; expected a Flatten (or torch.flatten / "
                    "view) or an adaptive pool followed by a flatten before the first Linear"
                )
            linears.append(step)
        elif step.kind == "dropout":
            index = len(linears) - 1
            if index < 0 or index in dropouts:
                place = "before the first Linear" if index < 0 else f"a second Dropout after {linears[-1].where}"
                raise UnsupportedModuleError(
                    f"{step.where}: {place} cannot be expressed; expected at most one Dropout after "
                    "each hidden Linear (it becomes that fc's dropout)"
                )
            dropouts[index] = step.module.p
    if not linears:
        raise UnsupportedModuleError(
            f"the module ends without a Linear classifier; expected the last layer to be an "
            f"nn.Linear giving the logits; {SUPPORTED}"
        )
    last = max(index for index, step in enumerate(steps) if step is linears[-1])
    tail = [step for step in steps[last + 1 :] if step.kind != "identity"]
    if tail:
        raise UnsupportedModuleError(
            f"{tail[0].where} follows the classifier {linears[-1].where}; expected the last "
            "Linear to give the logits (no ReLU, Dropout or softmax after it)"
        )
    for index, step in enumerate(linears[:-1]):
        layers.append(_spec(step, dropouts.get(index, 0.0)))
        sources.append(step)
    return layers, sources, linears


def _check_first_conv(step: _Step, input_shape) -> None:
    if step.module.in_channels != input_shape[0]:
        raise UnsupportedModuleError(
            f"{step.where}: in_channels={step.module.in_channels} but input_shape "
            f"{tuple(input_shape)} has {input_shape[0]} channels; expected an input_shape with "
            f"{step.module.in_channels} channels"
        )


def _spec(step: _Step, dropout: float = 0.0) -> Layer:
    """The layer spec of one conv, pool, reducer or hidden Linear step."""
    m, where = step.module, step.where
    try:
        if step.kind == "conv":
            return _conv_spec(m, where)
        if step.kind == "pool":
            return _pool_spec(m, where)
        if step.kind == "reducer":
            if isinstance(m, SpatialPyramidPool):
                return SPP(m.levels, m.mode)
            if getattr(m, "return_indices", False):
                raise UnsupportedModuleError(f"{where}: return_indices=True; expected return_indices=False")
            size = _square(where, "output_size", m.output_size, "one square size such as 7 or (7, 7)")
            if not isinstance(size, int):
                raise UnsupportedModuleError(f"{where}: output_size={m.output_size!r}; expected an integer size")
            return SPP((size,), "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max")
        return FC(m.out_features, dropout)
    except UnsupportedModuleError:
        raise
    except BudgetNetError as error:
        raise UnsupportedModuleError(f"{where}: {error}") from None


def _conv_spec(m: nn.Conv2d, where: str) -> Conv:
    if m.groups != 1:
        raise UnsupportedModuleError(f"{where}: groups={m.groups} (a grouped conv); expected groups=1")
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
    return Conv(kernel, m.out_channels, stride, _square(where, "padding", padding))


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
def _check_widths(arch: Arch, steps: list[_Step], sources: list[_Step], input_shape) -> None:
    """Every Conv2d, BatchNorm2d and Linear must take the channels the layer before it gives."""
    shape_of = {id(step): info for step, info in zip(sources, arch.shapes)}
    channels, previous = input_shape[0], f"input_shape {tuple(input_shape)}"
    for step in steps:
        field = {"conv": "in_channels", "norm": "num_features", "linear": "in_features"}.get(step.kind)
        if field is not None and getattr(step.module, field) != channels:
            raise UnsupportedModuleError(
                f"{step.where}: {field}={getattr(step.module, field)} does not match the {channels} "
                f"channels/features that {previous} gives; expected {field}={channels}"
            )
        info = shape_of.get(id(step))
        if info is not None:
            channels, previous = info.out_shape[0], step.where


def _verify(module: nn.Module, graph_module: fx.GraphModule, arch: Arch, sources: list[_Step], classifier: _Step):
    """One forward pass of zeros: each layer's real output shape must be the Arch's."""
    parameter = next(module.parameters(), None)
    options = {} if parameter is None else {"dtype": parameter.dtype, "device": parameter.device}
    recorder = _ShapeRecorder(graph_module)
    training = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with torch.no_grad():
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
    checks = [(step, info.name, info.out_shape) for step, info in zip(sources, arch.shapes)]
    checks.append((classifier, "classifier", (arch.num_classes,)))
    for step, name, expected in checks:
        actual = recorder.shapes.get(step.node)
        if actual != (1, *expected):
            raise ArchError(
                f"{step.where}: torch gives an output of shape {actual} but the imported Arch infers "
                f"{(1, *expected)} for {name}; expected them to agree (the module's forward does "
                "something an Arch does not express)"
            )


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
