"""torch.fx tracing and the vocabulary of the importer: each fx node as one :class:`Step`
(its kind and the module it came from), or an :class:`~budgetnet.errors.UnsupportedModuleError`
naming it. :mod:`budgetnet.pytorch.fx_graph` assembles the steps into an Arch.

Example:
    >>> import torch.nn as nn
    >>> traced = trace(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
    >>> [step_of(n, where_of(n, traced), traced).kind for n in traced.graph.nodes if n.op == "call_module"]
    ['conv', 'act']
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from budgetnet.graph.arch import SPP, Layer, Pool
from budgetnet.errors import UnsupportedModuleError
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
class Step:
    """One operation of the traced graph: ``kind`` and the module (or stand-in) it came from."""

    node: fx.Node
    where: str
    kind: str  # conv, pool, reducer, flatten, norm, act, identity, dropout, linear, add, cat
    module: nn.Module | None = None
    activation: str | None = None

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


def trace(module: nn.Module) -> fx.GraphModule:
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


def where_of(node: fx.Node, root: nn.Module) -> str:
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


def origin_of(node: fx.Node, root: nn.Module) -> str:
    """Where a tensor comes from, for messages."""
    if node.op == "placeholder":
        return "the input image"
    if node.op == "get_attr":
        return f"the parameter or buffer {node.target!r}"
    return f"the output of {where_of(node, root)}"


# -- the graph -------------------------------------------------------------------------------
def is_shape_query(node) -> bool:
    """``x.size(...)``, ``x.shape`` and items of those: metadata, not data flow."""
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method" and node.target == "size":
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",):
        return True
    return node.op == "call_function" and node.target is operator.getitem and is_shape_query(node.args[0])


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) if n not in found else None)
    return [n for n in found if not is_shape_query(n)]


def step_of(node: fx.Node, where: str, root: nn.Module) -> Step:
    if node.op == "call_module":
        return _module_step(node, where, root.get_submodule(node.target))
    if node.op == "call_function" and node.target in _ACTIVATION_FUNCTIONS:
        return Step(node, where, "act", activation=_ACTIVATION_FUNCTIONS[node.target])
    if node.op == "call_method" and node.target in _ACTIVATION_METHODS:
        return Step(node, where, "act", activation=_ACTIVATION_METHODS[node.target])
    if (node.op == "call_function" and node.target in _ADD_FUNCTIONS) or (
        node.op == "call_method" and node.target in ("add", "add_")
    ):
        if len(tensor_inputs(node)) != 2 or node.kwargs.get("alpha", 1) != 1 or len(node.args) > 2:
            raise UnsupportedModuleError(f"{where}: an add of {node.args!r}; expected the sum of two feature maps")
        return Step(node, where, "add")
    if node.op == "call_function" and node.target is torch.cat:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim != 1:
            raise UnsupportedModuleError(f"{where}: torch.cat with dim={dim!r}; expected dim=1 (the channels)")
        return Step(node, where, "cat")
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
        return Step(node, where, "flatten")
    if node.op == "call_method" and node.target in ("view", "reshape"):
        sizes = node.args[1:]
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        if len(sizes) == 2 and (
            (_is_batch_size(sizes[0]) and sizes[1] == -1)
            or (sizes[0] == -1 and isinstance(sizes[1], int) and sizes[1] > 0)
        ):
            return Step(node, where, "flatten")
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
        is_shape_query(value.args[0])
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


def square(where: str, field: str, value, accepted: str = "a square (equal) value") -> int:
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise UnsupportedModuleError(f"{where}: {field}={tuple(value)!r} is not square; expected {accepted}")
        value = value[0]
    return value


def _module_step(node: fx.Node, where: str, m: nn.Module) -> Step:
    if isinstance(m, nn.Conv2d):
        return Step(node, where, "conv", m)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        return Step(node, where, "pool", m)
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, SpatialPyramidPool)):
        return Step(node, where, "reducer", m)
    for cls, activation in _ACTIVATION_MODULES:
        if type(m) is cls:
            return Step(node, where, "act", m, activation)
    if type(m) is nn.GELU and m.approximate == "none":
        return Step(node, where, "act", m, "gelu")
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
            return Step(node, where, kind, m)
    raise UnsupportedModuleError(f"{where} is not supported; {SUPPORTED}")


def reducer_spec(step: Step) -> Layer:
    """The layer spec of a reducer step."""
    m, where = step.module, step.where
    if isinstance(m, SpatialPyramidPool):
        return SPP(m.levels, m.mode)
    if getattr(m, "return_indices", False):
        raise UnsupportedModuleError(f"{where}: return_indices=True; expected return_indices=False")
    size = square(where, "output_size", m.output_size, "one square size such as 7 or (7, 7)")
    if not isinstance(size, int):
        raise UnsupportedModuleError(f"{where}: output_size={m.output_size!r}; expected an integer size")
    return SPP((size,), "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max")


def pool_layer(m: nn.Module, where: str) -> Pool:
    if m.ceil_mode:
        raise UnsupportedModuleError(f"{where}: ceil_mode=True; expected ceil_mode=False (floor rule)")
    mode = "max" if isinstance(m, nn.MaxPool2d) else "avg"
    padding = square(where, "padding", m.padding)
    if mode == "max":
        if square(where, "dilation", m.dilation) != 1:
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
    kernel = square(where, "kernel_size", m.kernel_size)
    stride = kernel if m.stride is None else square(where, "stride", m.stride)
    return Pool(kernel, stride, padding, mode)



def check_norm(step: Step) -> None:
    m = step.module
    if not m.affine or not m.track_running_stats:
        raise UnsupportedModuleError(
            f"{step.where}: affine={m.affine}, track_running_stats={m.track_running_stats}; expected both True"
        )
    if m.eps != 1e-5:
        raise UnsupportedModuleError(f"{step.where}: eps={m.eps}; expected the default eps=1e-05")
