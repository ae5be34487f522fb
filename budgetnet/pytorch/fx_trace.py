"""torch.fx tracing for the importer: the module traced in eval mode (budgetnet's SPP and
channel conv, timm's norm + activation modules and ECA gates, layer norms over channels and
stochastic depth kept whole), every node's output shape propagated on the meta device, and
where each node is, for messages.
:mod:`budgetnet.pytorch.fx_ops` reads each node as one operation.

Example:
    >>> import torch.nn as nn
    >>> traced = trace(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
    >>> propagate_shapes(traced, (1, 1, 8, 8))
    >>> [n.meta["shape"] for n in traced.graph.nodes if n.op == "call_module"]
    [(1, 2, 6, 6), (1, 2, 6, 6)]
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from budgetnet.errors import ArchError, UnsupportedModuleError
from budgetnet.pytorch.modules import ChannelConv, SpatialPyramidPool

#: Modules traced as one node although torch.fx would trace into them (by class name: timm's
#: and torchvision's own classes, whose forward fx cannot always trace).
LEAF_CLASSES = (
    "BatchNormAct2d", "GroupNormAct", "GroupNorm1Act", "LayerNormAct2d", "LayerNorm2d", "GlobalResponseNorm",
    "LearnableAffineBlock", "RmsNorm2d", "SimpleNorm2d", "DropPath", "StochasticDepth", "Conv2dSame", "EcaModule",
)  # fmt: skip

#: timm's modules that have no place in an Arch, by the start of their class name, with what
#: they are in words: traced as one node so that the importer refuses them by name (CondConv's
#: forward cannot even be traced).
REFUSED_CLASSES = {
    "CondConv2d": "CondConv (a conv whose weights are mixed per image from several experts)",
    "EvoNorm2d": "EvoNorm (a norm with a sigmoid gate and a per-group standard deviation)",
    "BlurPool2d": "a blur pool (a fixed low-pass filter after reflect padding)",
    "CecaModule": "circular ECA (a conv along the channels whose padding wraps around; ECA's zero padding is supported)",
}


def refused_class(m: nn.Module) -> str | None:
    """What ``m`` is in words if it is one of :data:`REFUSED_CLASSES`, else ``None``."""
    name = type(m).__name__
    return next((feature for prefix, feature in REFUSED_CLASSES.items() if name.startswith(prefix)), None)


# -- tracing ---------------------------------------------------------------------------------
class _Tracer(fx.Tracer):
    """torch.fx's tracer that keeps budgetnet's SPP whole and remembers where tracing failed."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []  # modules being traced, innermost last
        self.failed_in: str | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return (
            isinstance(m, (SpatialPyramidPool, ChannelConv, nn.Linear, nn.Conv2d, nn.BatchNorm2d))  # subclasses too
            or type(m).__name__ in LEAF_CLASSES
            or refused_class(m) is not None
            or super().is_leaf_module(m, module_qualified_name)
        )

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
    """``module`` traced by torch.fx in eval mode (the forward a trained model runs: no
    auxiliary heads, no dropout); its train/eval flags are restored afterwards."""
    tracer = _Tracer()
    training = {m: m.training for m in module.modules()}
    module.eval()
    try:
        graph = tracer.trace(module)
    except Exception as error:  # the user's forward under fx: any failure is "cannot trace"
        where = tracer.failed_in or f"the forward of {type(module).__name__}"
        raise UnsupportedModuleError(
            f"{where}: torch.fx cannot trace it ({type(error).__name__}: {error}); expected a "
            "forward that is a fixed chain of layers, without data-dependent control flow"
        ) from None
    finally:
        for m, mode in training.items():
            m.training = mode
    _drop_unread(graph, tracer.root)
    return fx.GraphModule(tracer.root, graph, type(module).__name__)


#: Modules whose output, when nothing reads it, leaves no trace: no in-place change, no state in eval mode.
_PURE = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.Identity)


def _drop_unread(graph: fx.Graph, root: nn.Module) -> None:
    """Work whose result nothing reads, removed: items taken from a split or a tuple and left
    (Res2Net's ``sp = spx[0]  # redundant``) and convs, norms and pools computed and thrown
    away (the projection timm's DLA computes for every tree, used or not). They do not change
    the logits and would otherwise end the graph beside its real output."""
    for node in reversed(list(graph.nodes)):
        if node.users:
            continue
        pure_item = node.op == "call_function" and node.target is operator.getitem
        pure_module = node.op == "call_module" and isinstance(root.get_submodule(node.target), _PURE)
        if pure_item or pure_module:
            graph.erase_node(node)


class _ShapeRecorder(fx.Interpreter):
    """Runs a GraphModule and writes each node's output shape into ``node.meta["shape"]`` (a
    tuple of shapes for a node that gives several tensors, as ``chunk``), and the number a
    shape query gives (``x.shape[1] // 2``) into ``node.meta["value"]``."""

    def run_node(self, n: fx.Node):
        self.node = n
        result = super().run_node(n)
        if isinstance(result, int):
            n.meta["value"] = result
        elif isinstance(result, torch.Tensor):
            n.meta["shape"] = tuple(result.shape)
        elif isinstance(result, (tuple, list)) and result and all(isinstance(r, torch.Tensor) for r in result):
            n.meta["shape"] = tuple(tuple(r.shape) for r in result)
        return result


class _Runner(nn.Module):
    """Holds a GraphModule as a submodule, so ``functional_call`` can swap its tensors."""

    def __init__(self, recorder: _ShapeRecorder):
        super().__init__()
        self.graph_module = recorder.module
        self.recorder = recorder

    def forward(self, x):
        return self.recorder.run(x)


def propagate_shapes(graph_module: fx.GraphModule, shape: tuple[int, ...]) -> None:
    """Every node's output shape for an input of ``shape``, in ``node.meta["shape"]``.

    The pass runs on the meta device (shapes without arithmetic: ResNet-152 at 224 px in
    milliseconds), the module's tensors swapped for meta ones through
    ``torch.func.functional_call``; a module that fails there runs again for real, so the
    error the user sees is the one their module raises.

    Raises:
        ArchError: the module fails on a zero input of that shape.
    """
    recorder = _ShapeRecorder(graph_module)
    recorder.node = None
    parameter = next(graph_module.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    training = {m: m.training for m in graph_module.modules()}
    graph_module.eval()
    try:
        with torch.no_grad():
            try:
                runner = _Runner(recorder)
                tensors = {**dict(runner.named_parameters()), **dict(runner.named_buffers())}
                meta = {name: torch.empty_like(tensor, device="meta") for name, tensor in tensors.items()}
                torch.func.functional_call(runner, meta, (torch.zeros(shape, device="meta", dtype=dtype),), strict=False)
            except Exception:  # an op without a meta kernel, or the module's own error: run for real
                device = parameter.device if parameter is not None else torch.device("cpu")
                recorder.run(torch.zeros(shape, dtype=dtype, device=device))
    except Exception as error:  # the user's module on a valid input: report, do not leak a traceback
        problem = str(error).split("\n\nWhile executing")[0]
        where = where_of(recorder.node, graph_module) if recorder.node is not None else type(graph_module).__name__
        raise ArchError(
            f"{where} fails on a zero input of shape {tuple(shape)} ({type(error).__name__}: {problem}); "
            f"expected a module that runs on input_shape {tuple(shape[1:])}"
        ) from None
    finally:
        for m, mode in training.items():
            m.training = mode


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
#: Arithmetic that, on sizes, gives sizes (``channels // groups``).
_SIZE_ARITHMETIC = (operator.floordiv, operator.mul, operator.add, operator.sub, operator.truediv)


def is_shape_query(node) -> bool:
    """``x.size(...)``, ``x.shape``, items of those and arithmetic on them: metadata, not data flow."""
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method" and node.target == "size":
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",):
        return True
    if node.op == "call_function" and node.target in _SIZE_ARITHMETIC:
        inputs = [arg for arg in node.args if isinstance(arg, fx.Node)]
        return bool(inputs) and all(is_shape_query(arg) for arg in inputs)
    return node.op == "call_function" and node.target is operator.getitem and is_shape_query(node.args[0])


def is_parameter(node) -> bool:
    """A parameter or buffer of the module (``get_attr``), or a reshape of one."""
    if not isinstance(node, fx.Node):
        return False
    if node.op == "get_attr":
        return True
    name = getattr(node.target, "__name__", node.target)
    return node.op in ("call_method", "call_function") and name in ("reshape", "view", "squeeze", "unsqueeze") and (
        is_parameter(node.args[0])
    )


def parameter_of(node: fx.Node, root: nn.Module):
    """The tensor behind :func:`is_parameter` ``node`` (before any reshape)."""
    while node.op != "get_attr":
        node = node.args[0]
    value = root
    for part in node.target.split("."):
        value = getattr(value, part)
    return value


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) if n not in found else None)
    return [n for n in found if not is_shape_query(n)]
