"""The importer's vocabulary: each node of a traced module as one :class:`Op` (a layer spec
with the tensors it takes from the module, a join, a channel operation, a head step), or an
:class:`~budgetnet.errors.UnsupportedModuleError` that names the feature in words and where it
is. :mod:`budgetnet.pytorch.fx_graph` assembles the ops into an Arch.

Every node carries its output shape (``node.meta["shape"]``, from
:func:`budgetnet.pytorch.fx_trace.propagate_shapes`), so a ``view`` is read by what it does
(a flatten, the two halves of a channel shuffle), a ``chunk`` by the channels of each part,
and a ``mean`` over the map by whether it keeps the map's dimensions.

Example:
    >>> import torch.nn as nn
    >>> from budgetnet.pytorch.fx_trace import propagate_shapes, trace
    >>> traced = trace(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.SiLU()))
    >>> propagate_shapes(traced, (1, 1, 8, 8))
    >>> [op_of(n, traced).layer.kind for n in traced.graph.nodes if n.op == "call_module"]
    ['conv', 'norm', 'act']
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from budgetnet.errors import BudgetNetError, UnsupportedModuleError
from budgetnet.graph.layers import SPP, Act, ChannelConv, Conv, DropPath, Gate, GlobalPool, Layer, Norm, Pad, Pool, Scale
from budgetnet.graph.layers import Shuffle, Slice
from budgetnet.pytorch.fx_trace import is_parameter, parameter_of, tensor_inputs, where_of
from budgetnet.pytorch.modules import ChannelConv as ChannelConvModule, SpatialPyramidPool

SUPPORTED = (
    "supported: Conv2d (any kernel and padding, square stride and dilation, any groups), BatchNorm2d, GroupNorm, "
    "LayerNorm over channels, GlobalResponseNorm, RmsNorm2d, SimpleNorm2d, "
    "ReLU/ReLU6/LeakyReLU/SiLU/Hardswish/Hardsigmoid/Sigmoid/GELU/Mish/Tanh, "
    "Max/AvgPool2d, global pooling (AdaptiveAvgPool2d(1), x.mean((2, 3))), residual adds, torch.cat, "
    "channel splits (chunk, split, slices) and shuffles, squeeze-excitation gates (x * gate), ECA gates (timm's "
    "EcaModule), layer scale, "
    "stochastic depth, Identity and Dropout, a flatten and Linear layers; branches that do not nest (Res2Net, DLA) "
    "where the maps they carry have one size"
)

#: Activation modules by exact type (subclasses may compute something else).
_ACTIVATION_MODULES = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.SiLU: "silu", nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid",
    nn.Sigmoid: "sigmoid", nn.Mish: "mish", nn.Tanh: "tanh",
}  # fmt: skip
_ACTIVATION_FUNCTIONS = {
    F.relu: "relu", F.relu_: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu6: "relu6", F.silu: "silu",
    F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid", torch.sigmoid: "sigmoid", F.mish: "mish",
    torch.tanh: "tanh", torch.nn.functional.sigmoid: "sigmoid", torch.nn.functional.tanh: "tanh",
}  # fmt: skip
_ACTIVATION_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid", "tanh": "tanh"}
#: timm's own activation modules (``timm.layers.activations``, ``activations_me``) by class
#: name, for a gate kept whole by the tracer (ECA's): each computes the torch activation named.
_TIMM_ACTIVATIONS = {
    "Sigmoid": "sigmoid", "Tanh": "tanh", "Swish": "silu", "SwishMe": "silu", "Mish": "mish", "MishMe": "mish",
    "HardSigmoid": "hardsigmoid", "HardSigmoidMe": "hardsigmoid", "HardSwish": "hardswish", "HardSwishMe": "hardswish",
    "GELU": "gelu", "GELUTanh": "gelu_tanh",
}  # fmt: skip
_ADDS = (operator.add, operator.iadd, torch.add)
_MULS = (operator.mul, operator.imul, torch.mul)
#: timm's norm + activation modules (kept whole by the tracer) and the norm each holds.
NORM_ACT = {"BatchNormAct2d": "batch", "GroupNormAct": "group", "GroupNorm1Act": "group", "LayerNormAct2d": "layer"}
#: Operations refused by what they are, not by their fx name.
_FEATURES = {
    "matmul": "a matrix product of feature maps (self-attention)",
    "bmm": "a matrix product of feature maps (self-attention)",
    "einsum": "a tensor contraction (self-attention)",
    "softmax": "a softmax over a feature map (self-attention)",
    "scaled_dot_product_attention": "self-attention",
    "interpolate": "upsampling",
    "roll": "a shift of the map (torch.roll)",
    "truediv": "a division of a feature map",
    "sub": "a subtraction of feature maps",
    "expand_as": "a broadcast (expand_as), as in ECA's gate",
    "norm": "a norm of the map over its pixels (ConvNeXt V2's global response normalization)",
}
_ATTENTION_MODULES = ("MultiheadAttention", "Attention", "WindowAttention", "SelfAttention")


@dataclass
class Op:
    """One traced operation. ``kind`` is ``"leaf"`` (``layer`` with its ``tensors``), a join
    (``"add"``, ``"mul"``, ``"cat"``), ``"pass"`` (an identity in eval mode), ``"split"``
    (``chunk`` / ``split``: ``parts`` are the channel ranges), ``"item"`` (one part of a
    split), ``"permute"`` (``to`` the channels-``"last"`` or ``"first"`` layout), ``"gate"``
    (a module kept whole that is a gate block, as timm's ECA: ``layer`` the :class:`Gate`,
    ``tensors`` those of its conv along the channels), the two halves of a channel shuffle
    (``"view5"``, ``"transpose"``, ``"view4"``), or a head step (``"flatten"``, ``"reducer"``,
    ``"linear"``, ``"dropout"``)."""

    node: fx.Node
    where: str
    kind: str
    inputs: list = field(default_factory=list)
    layer: Layer | None = None
    tensors: dict = field(default_factory=dict)
    module: nn.Module | None = None
    activation: str | None = None  # the activation of a norm + activation module (timm)
    parts: tuple = ()
    to: str | None = None
    #: A zero padding before the layer (timm's ``Conv2dSame`` where TensorFlow pads unevenly).
    pad: Layer | None = None


def _shape(node) -> tuple[int, ...] | None:
    shape = node.meta.get("shape") if isinstance(node, fx.Node) else None
    return shape if isinstance(shape, tuple) and all(isinstance(v, int) for v in shape) else None


def _refuse(where: str, problem: str) -> UnsupportedModuleError:
    return UnsupportedModuleError(f"{where}: {problem}; {SUPPORTED}")


def square(where: str, field: str, value, accepted: str = "a square (equal) value") -> int:
    """One side of a square ``value`` (an int, or a pair of equal ints), or a refusal."""
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            what = "a non-square kernel" if field == "kernel_size" else f"a non-square {field}"
            raise UnsupportedModuleError(f"{where}: {field}={tuple(value)!r} ({what}); expected {accepted}")
        value = value[0]
    return value


def op_of(node: fx.Node, root: nn.Module) -> Op:
    """The :class:`Op` of one traced node (its output shape propagated)."""
    where = where_of(node, root)
    if node.op == "call_module":
        return _module_op(node, where, root.get_submodule(node.target))
    name = getattr(node.target, "__name__", node.target) if node.op == "call_function" else node.target
    inputs = tensor_inputs(node)
    if node.op == "call_function" and node.target in _ACTIVATION_FUNCTIONS or (
        node.op == "call_method" and node.target in _ACTIVATION_METHODS
    ):
        activation = _ACTIVATION_FUNCTIONS.get(node.target) or _ACTIVATION_METHODS.get(node.target)
        return Op(node, where, "leaf", inputs[:1], Act(activation))
    if node.op == "call_function" and node.target is F.leaky_relu:
        slope = node.kwargs.get("negative_slope", node.args[1] if len(node.args) > 1 else 0.01)
        return Op(node, where, "leaf", inputs[:1], Act(f"leaky_relu({slope:g})"))
    if node.op == "call_function" and node.target is F.gelu:
        approximate = node.kwargs.get("approximate", "none")
        return Op(node, where, "leaf", inputs[:1], Act("gelu" if approximate == "none" else "gelu_tanh"))
    if (node.op == "call_function" and node.target in _ADDS) or (node.op == "call_method" and name in ("add", "add_")):
        constants = [arg for arg in node.args if not isinstance(arg, fx.Node)]
        if len(inputs) == 1 and constants == [0]:  # 0 + x: the start of a sum (timm's MobileOne)
            return Op(node, where, "pass", inputs)
        if len(inputs) != 2 or node.kwargs.get("alpha", 1) != 1:
            raise _refuse(where, "an add of a constant to a feature map; expected the sum of two feature maps")
        return Op(node, where, "add", inputs)
    if (node.op == "call_function" and node.target in _MULS) or (node.op == "call_method" and name in ("mul", "mul_")):
        return _mul_op(node, where, root, inputs)
    if node.op == "call_function" and node.target is torch.cat:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim not in (1, -3):
            raise _refuse(where, f"torch.cat on dim={dim!r}; expected the channels (dim=1)")
        return Op(node, where, "cat", list(node.args[0]))
    if name in ("chunk", "split") and node.op in ("call_function", "call_method"):
        return _split_op(node, where, inputs)
    if node.op == "call_function" and node.target is operator.getitem:
        return _item_op(node, where)
    if name == "permute":
        dims = tuple(node.args[1:]) if node.op == "call_method" else tuple(node.args[1])
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if dims == (0, 2, 3, 1):
            return Op(node, where, "permute", inputs, to="last")
        if dims == (0, 3, 1, 2):
            return Op(node, where, "permute", inputs, to="first")
        raise _refuse(where, f"a permute to {dims}; expected channels-last (0, 2, 3, 1) and back (0, 3, 1, 2)")
    if name == "contiguous" or (node.op == "call_function" and node.target is F.dropout):
        return Op(node, where, "pass", inputs[:1])
    if name in ("view", "reshape", "flatten") or (node.op == "call_function" and node.target is torch.flatten):
        return _view_op(node, where, inputs)
    if name == "transpose" or (node.op == "call_function" and node.target is torch.transpose):
        dims = tuple(node.args[1:3]) if len(node.args) >= 3 else ()
        if len(_shape(inputs[0]) or ()) == 5 and dims in ((1, 2), (2, 1)):
            return Op(node, where, "transpose", inputs)
        raise _refuse(where, f"a transpose of dims {dims}; expected the one of a channel shuffle")
    if name in ("mean", "amax"):
        return _mean_op(node, where, inputs, "avg" if name == "mean" else "max")
    if node.op == "call_function" and node.target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
        size = node.kwargs.get("output_size", node.args[1] if len(node.args) > 1 else None)
        mode = "avg" if node.target is F.adaptive_avg_pool2d else "max"
        return _adaptive_op(node, where, inputs, size, mode)
    if node.op == "call_function" and node.target in (F.max_pool2d, F.avg_pool2d):
        module = _functional_pool(node, where)
        return Op(node, where, "leaf", inputs[:1], pool_layer(module, where))
    if node.op == "call_function" and node.target is F.layer_norm:
        return _functional_layer_norm(node, where, inputs)
    if node.op == "call_function" and node.target is F.linear:
        weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
        bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        if not is_parameter(weight) or (bias is not None and not is_parameter(bias)):
            raise _refuse(where, "a linear map whose weights are computed")
        linear = nn.Linear(*reversed(parameter_of(weight, root).shape), bias=bias is not None, device="meta")
        linear.weight = nn.Parameter(parameter_of(weight, root), requires_grad=False)
        if bias is not None:
            linear.bias = nn.Parameter(parameter_of(bias, root), requires_grad=False)
        maps = [n for n in inputs if not is_parameter(n)]
        return Op(node, where, "linear", maps[:1], module=linear, tensors={"weight": linear.weight, "bias": linear.bias})
    if node.op == "call_function" and node.target is F.pad:
        pads = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
        mode = node.kwargs.get("mode", node.args[2] if len(node.args) > 2 else "constant")
        value = node.kwargs.get("value", node.args[3] if len(node.args) > 3 else 0)
        if isinstance(pads, (tuple, list)) and len(pads) == 4 and all(isinstance(p, int) and p >= 0 for p in pads) and (
            mode == "constant" and not value
        ):
            return Op(node, where, "leaf", inputs[:1], Pad(*pads))
        raise _refuse(where, f"padding {pads!r} (mode {mode!r}, value {value!r}); expected zeros on the two map sides")
    feature = _FEATURES.get(str(name))
    if feature:
        raise UnsupportedModuleError(f"{where}: {feature} has no place in an Arch; {SUPPORTED}")
    raise _refuse(where, "an operation budgetnet does not know")


def _module_op(node: fx.Node, where: str, m: nn.Module) -> Op:
    inputs = tensor_inputs(node)
    kind = type(m).__name__
    if kind in NORM_ACT:
        return _norm_act_op(node, where, m, inputs, NORM_ACT[kind])
    if kind == "LayerNorm2d":
        return Op(node, where, "leaf", inputs, Norm("layer", eps=m.eps, affine=m.weight is not None), _affine(m), m)
    if kind in ("RmsNorm2d", "SimpleNorm2d"):  # timm's, and budgetnet's own (its variance form is SimpleNorm)
        norm = "simple" if kind == "SimpleNorm2d" or getattr(m, "variance", False) else "rms"
        return Op(node, where, "leaf", inputs, Norm(norm, eps=m.eps, affine=m.weight is not None), {"weight": m.weight}, m)
    if kind == "GlobalResponseNorm":  # timm's (ConvNeXt V2), on a channels-last or channels-first map
        return Op(node, where, "leaf", inputs, Norm("response", eps=m.eps), _affine(m), m)
    if kind == "LearnableAffineBlock":  # HGNetV2's scalar scale * x + bias: the same scale and shift on every channel
        channels = (_shape(inputs[0]) or (0, 0))[1]
        scale, shift = m.scale.detach().reshape(()), m.bias.detach().reshape(())
        init = float(f"{float(scale):.7g}") if float(scale) >= 0 else 1.0
        tensors = {"gamma": scale.expand(channels), "beta": shift.expand(channels)}
        return Op(node, where, "leaf", inputs, Scale(init, shift=True), tensors, m)
    if kind in ("DropPath", "StochasticDepth"):
        rate = float(getattr(m, "drop_prob", getattr(m, "p", 0.0)) or 0.0)
        if kind == "StochasticDepth" and m.mode != "row":
            raise _refuse(where, f"stochastic depth in mode={m.mode!r} (a whole batch dropped); expected mode='row'")
        return Op(node, where, "leaf", inputs, DropPath(rate), module=m)
    if kind == "EcaModule":
        return _eca_op(node, where, m, inputs)
    if isinstance(m, ChannelConvModule):  # budgetnet's own (a built model imported again)
        layer = ChannelConv(m.conv.kernel_size[0], bias=m.conv.bias is not None)
        return Op(node, where, "leaf", inputs, layer, _conv_tensors(m.conv), m)
    if isinstance(m, nn.Conv2d):
        pad = same_pad(m, _shape(inputs[0])) if kind == "Conv2dSame" else None
        op = Op(node, where, "leaf", inputs, conv_layer(m, where, _shape(inputs[0])), _conv_tensors(m), m)
        op.pad = pad
        return op
    if isinstance(m, nn.BatchNorm2d):
        return Op(node, where, "leaf", inputs, batch_norm(m, where), _norm_tensors(m), m)
    if isinstance(m, nn.GroupNorm):
        return Op(node, where, "leaf", inputs, Norm("group", eps=m.eps, affine=m.affine, groups=m.num_groups), _affine(m), m)
    if isinstance(m, nn.LayerNorm):
        return Op(node, where, "leaf", inputs, _channel_layer_norm(m, where, inputs), _affine(m), m)
    if isinstance(m, (nn.Identity, nn.Dropout, nn.Dropout2d, nn.AlphaDropout)):
        return Op(node, where, "dropout" if isinstance(m, nn.Dropout) else "pass", inputs, module=m)
    activation = activation_of(m)
    if activation is not None:
        return Op(node, where, "leaf", inputs, Act(activation), module=m)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        return Op(node, where, "leaf", inputs, pool_layer(m, where), module=m)
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        if getattr(m, "return_indices", False):
            raise _refuse(where, "return_indices=True; expected return_indices=False")
        return _adaptive_op(node, where, inputs, m.output_size, "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max", m)
    if isinstance(m, SpatialPyramidPool):
        return Op(node, where, "reducer", inputs, SPP(m.levels, m.mode), module=m)
    if isinstance(m, nn.ChannelShuffle):
        return Op(node, where, "leaf", inputs, Shuffle(m.groups), module=m)
    if isinstance(m, nn.Flatten):
        if (m.start_dim, m.end_dim) != (1, -1):
            raise _refuse(where, f"start_dim={m.start_dim}, end_dim={m.end_dim}; expected start_dim=1, end_dim=-1")
        return Op(node, where, "flatten", inputs, module=m)
    if isinstance(m, nn.Linear):
        return Op(node, where, "linear", inputs, module=m, tensors={"weight": m.weight, "bias": m.bias})
    if isinstance(m, nn.Conv1d):
        raise UnsupportedModuleError(
            f"{where}: a 1-D conv outside an ECA gate (timm's EcaModule imports whole) has no place in an Arch; {SUPPORTED}"
        )
    if any(word in kind for word in _ATTENTION_MODULES):
        raise UnsupportedModuleError(f"{where}: self-attention has no place in an Arch; {SUPPORTED}")
    raise _refuse(where, f"a {kind} module budgetnet does not know")


def activation_of(m: nn.Module) -> str | None:
    """The activation name of an activation module, ``None`` for any other module."""
    if type(m) in _ACTIVATION_MODULES:
        return _ACTIVATION_MODULES[type(m)]
    if type(m) is nn.LeakyReLU:
        return f"leaky_relu({m.negative_slope:g})"
    if type(m) is nn.GELU:
        return "gelu" if m.approximate == "none" else "gelu_tanh"
    if type(m) is nn.Identity:
        return "none"
    return None


def _eca_op(node, where, m, inputs) -> Op:
    """timm's ``EcaModule`` (Wang et al. 2020) as the gate it computes: the map pooled, ECA's
    conv along the channels, the gating activation, times the map (``gate[gpool chconv(k) sigmoid]``)."""
    if getattr(m, "conv2", None) is not None:
        raise UnsupportedModuleError(
            f"{where}: ECA with use_mlp=True (timm's experiment: a Conv1d to {m.conv.out_channels} channels, an "
            "activation and a second Conv1d) has no place in an Arch; expected ECA's single conv along the channels "
            f"(use_mlp=False); {SUPPORTED}"
        )
    conv = m.conv
    kernel = conv.kernel_size[0]
    if (conv.in_channels, conv.out_channels, conv.groups, conv.stride[0], conv.dilation[0], conv.padding_mode) != (
        1, 1, 1, 1, 1, "zeros"
    ) or conv.padding != ((kernel - 1) // 2,) or kernel % 2 == 0:
        raise _refuse(where, f"ECA's conv {conv} is not one odd kernel over the channels with zero padding (k - 1) / 2")
    gate = getattr(m, "gate", None)
    activation = activation_of(gate) if gate is not None else None
    if activation is None and gate is not None and type(gate).__module__.startswith("timm."):
        activation = _TIMM_ACTIVATIONS.get(type(gate).__name__)
    if activation is None:
        raise _refuse(where, f"the gating activation {type(gate).__name__} of ECA; expected one budgetnet knows")
    body = (GlobalPool(), ChannelConv(kernel, bias=conv.bias is not None), Act(activation))
    return Op(node, where, "gate", inputs[:1], Gate(body), _conv_tensors(conv), m)


def _norm_act_op(node, where, m, inputs, norm) -> Op:
    if norm == "batch":
        layer = batch_norm(m, where)
        tensors = _norm_tensors(m)
    elif norm == "group":
        layer, tensors = Norm("group", eps=m.eps, affine=m.affine, groups=m.num_groups), _affine(m)
    else:
        layer, tensors = Norm("layer", eps=m.eps, affine=m.weight is not None), _affine(m)
    drop = getattr(m, "drop", None)
    if drop is not None and not isinstance(drop, (nn.Identity, nn.Dropout)):
        raise _refuse(where, f"a {type(drop).__name__} inside the norm; expected Identity or Dropout")
    act = getattr(m, "act", nn.Identity())
    activation = activation_of(act)
    if activation is None:
        raise _refuse(where, f"the activation {type(act).__name__} inside the norm; expected one budgetnet knows")
    return Op(node, where, "leaf", inputs, layer, tensors, m, activation=activation)


def batch_norm(m: nn.BatchNorm2d, where: str) -> Norm:
    """The :class:`Norm` of a batch norm module (it must keep running statistics)."""
    if not m.track_running_stats or m.running_mean is None:
        raise _refuse(where, "a batch norm without running statistics (track_running_stats=False)")
    if m.momentum is None:
        raise _refuse(where, "momentum=None (a cumulative average); expected a momentum in [0, 1]")
    return Norm("batch", eps=m.eps, momentum=m.momentum, affine=m.affine)


def _affine(m: nn.Module) -> dict:
    return {"weight": getattr(m, "weight", None), "bias": getattr(m, "bias", None)}


def _norm_tensors(m: nn.Module) -> dict:
    return {
        **_affine(m), "running_mean": m.running_mean, "running_var": m.running_var,
        "num_batches_tracked": m.num_batches_tracked,
    }  # fmt: skip


def _conv_tensors(m: nn.Module) -> dict:
    return {"weight": m.weight, "bias": m.bias}


def conv_layer(m: nn.Conv2d, where: str, in_shape) -> Conv:
    """The :class:`Conv` of a conv module, its activation ``"none"`` until one is fused."""
    if m.padding_mode != "zeros":
        raise _refuse(where, f"padding_mode={m.padding_mode!r}; expected 'zeros'")
    stride = square(where, "stride", m.stride)
    dilation = square(where, "dilation", m.dilation)
    kernels = tuple(m.kernel_size)  # (height, width): Inception's 1x7 and 7x1 as written
    if type(m).__name__ == "Conv2dSame":  # timm's TensorFlow 'same' padding, worked out per input
        kernel = square(where, "kernel_size", m.kernel_size, "a square kernel with TensorFlow's 'same' padding")
        padding = 0 if same_pad(m, in_shape) is not None else _same_padding(where, in_shape, kernel, stride, dilation)
    elif m.padding == "valid":
        padding = 0
    elif m.padding == "same":
        if any((dilation * (k - 1)) % 2 for k in kernels):
            raise _refuse(where, f"padding='same' with kernel_size={m.kernel_size} pads unevenly; expected an odd field")
        padding = tuple(dilation * (k - 1) // 2 for k in kernels)
    else:
        padding = tuple(m.padding)
    depthwise = m.groups == m.in_channels and m.groups > 1
    try:
        return Conv(kernels, m.out_channels, stride, padding, groups=1 if depthwise else m.groups,
                    depthwise=depthwise, activation="none", dilation=dilation)  # fmt: skip
    except BudgetNetError as error:
        raise UnsupportedModuleError(f"{where}: {error}") from None


def same_pad(m: nn.Conv2d, in_shape) -> Pad | None:
    """TensorFlow's "same" padding of timm's ``Conv2dSame`` on this input, as a :class:`Pad`
    before the conv where it is uneven (more after than before); ``None`` where it is even."""
    kernel, stride, dilation = m.kernel_size[0], m.stride[0], m.dilation[0]
    totals = [
        max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0) for size in (in_shape or (0, 0, 0, 0))[2:]
    ]
    if len(totals) != 2 or all(total % 2 == 0 for total in totals) and totals[0] == totals[1]:
        return None
    (height, width) = totals
    return Pad(width // 2, width - width // 2, height // 2, height - height // 2)


def _same_padding(where, in_shape, kernel, stride, dilation) -> int:
    pads = set()
    for size in (in_shape or (0, 0, 0, 0))[2:]:
        total = max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
        if total % 2:
            raise _refuse(
                where, f"TensorFlow 'same' padding of {total} pixels on a side of {size} (uneven: {total // 2} before, "
                f"{total - total // 2} after)"
            )
        pads.add(total // 2)
    if len(pads) != 1:
        raise _refuse(where, "TensorFlow 'same' padding that differs between height and width")
    return pads.pop()


def pool_layer(m: nn.Module, where: str) -> Pool:
    """The :class:`Pool` of a max or average pool module."""
    mode = "max" if isinstance(m, nn.MaxPool2d) else "avg"
    padding = square(where, "padding", m.padding)
    if mode == "max":
        if square(where, "dilation", m.dilation) != 1:
            raise _refuse(where, f"a dilated max pool (dilation={m.dilation!r})")
        if m.return_indices:
            raise _refuse(where, "return_indices=True; expected return_indices=False")
    elif m.divisor_override is not None:
        raise _refuse(where, f"divisor_override={m.divisor_override}; expected None")
    kernel = square(where, "kernel_size", m.kernel_size)
    stride = kernel if m.stride is None else square(where, "stride", m.stride)
    try:
        return Pool(kernel, stride, padding, mode, ceil_mode=bool(m.ceil_mode),
                    count_include_pad=mode == "max" or not padding or bool(m.count_include_pad))  # fmt: skip
    except BudgetNetError as error:
        raise UnsupportedModuleError(f"{where}: {error}") from None


def _functional_pool(node: fx.Node, where: str) -> nn.Module:
    names = {
        F.max_pool2d: (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
        F.avg_pool2d: (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                      "divisor_override")),
    }  # fmt: skip
    cls, keys = names[node.target]
    arguments = dict(zip(keys, node.args[1:]), **node.kwargs)
    if any(isinstance(value, fx.Node) for value in arguments.values()):
        raise _refuse(where, "pooling arguments that depend on the input")
    try:
        return cls(**arguments)
    except TypeError as error:
        raise _refuse(where, f"{error}") from None


def _adaptive_op(node, where, inputs, size, mode, module=None) -> Op:
    size = square(where, "output_size", size, "one square size such as 7 or (7, 7)")
    if not isinstance(size, int):
        raise _refuse(where, f"output_size={size!r}; expected an integer size")
    if size == 1:
        return Op(node, where, "leaf", inputs[:1], GlobalPool(mode), module=module)
    return Op(node, where, "reducer", inputs[:1], SPP((size,), mode), module=module)


def _mean_op(node, where, inputs, mode) -> Op:
    dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if sorted(d % 4 for d in dims if isinstance(d, int)) != [2, 3] or len(dims) != 2:
        raise _refuse(where, f"a {'mean' if mode == 'avg' else 'max'} over dims {dims}; expected the map's (2, 3)")
    if keep:
        return Op(node, where, "leaf", inputs[:1], GlobalPool(mode))
    return Op(node, where, "reducer", inputs[:1], SPP((1,), mode))


def _mul_op(node, where, root, inputs) -> Op:
    params = [n for n in inputs if is_parameter(n)]
    maps = [n for n in inputs if not is_parameter(n)]
    if len(maps) == 2:
        return Op(node, where, "mul", maps)
    if len(maps) == 1 and len(params) == 1:
        gamma = parameter_of(params[0], root)
        shape = _shape(maps[0]) or ()
        if gamma.numel() not in (shape[1:2] + shape[-1:]):
            raise _refuse(where, f"a product with a parameter of shape {tuple(gamma.shape)}; expected a "
                                 "per-channel scale (layer scale)")
        # a scale that is still uniform (an untrained ConvNeXt: 1e-6) keeps that as its start
        first = float(f"{float(gamma.flatten()[0]):.7g}") if gamma.numel() else 1.0  # float32: 7 digits
        uniform = gamma.device.type != "meta" and bool((gamma == gamma.flatten()[0]).all()) and first >= 0
        return Op(node, where, "leaf", maps, Scale(first if uniform else 1.0), {"gamma": gamma})
    raise _refuse(where, "a product of a feature map and a constant; expected a gate (x * gate) or a layer scale")


def _attribute(root: nn.Module, target: str):
    value = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _split_op(node, where, inputs) -> Op:
    dim = node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0)
    if dim not in (1, -3):
        raise _refuse(where, f"a {getattr(node.target, '__name__', node.target)} on dim={dim!r}; expected the channels")
    shapes = node.meta.get("shape")
    if not isinstance(shapes, tuple) or not all(isinstance(s, tuple) for s in shapes):
        raise _refuse(where, "a split whose parts are unknown")
    parts, start = [], 0
    for shape in shapes:
        parts.append((start, start + shape[1]))
        start += shape[1]
    return Op(node, where, "split", inputs[:1], parts=tuple(parts))


def _number(where: str, value):
    """A slice bound as a number: as written, or worked out from the map's shape
    (``x[:, : x.shape[1] // 2]``, whose bound the shape pass computed)."""
    if isinstance(value, fx.Node):
        if not isinstance(value.meta.get("value"), int):
            raise _refuse(where, f"a channel slice bounded by {value.name}, which is not a number; expected x[:, start:stop]")
        return value.meta["value"]
    return value


def _item_op(node, where) -> Op:
    source, index = node.args[0], node.args[1]
    if isinstance(index, int):
        return Op(node, where, "item", [source], parts=(index,))
    index = index if isinstance(index, tuple) else (index,)
    full = slice(None, None, None)
    if len(index) >= 2 and index[0] == full and isinstance(index[1], slice) and all(i == full for i in index[2:]):
        shape = _shape(source)
        channels = slice(*(_number(where, bound) for bound in (index[1].start, index[1].stop, index[1].step)))
        if shape is None or channels.step not in (None, 1):
            raise _refuse(where, "a strided channel slice; expected x[:, start:stop]")
        start, stop, _ = channels.indices(shape[1])
        return Op(node, where, "leaf", [source], Slice(start, stop))
    raise _refuse(where, f"an index {index!r} into a feature map; expected a channel slice x[:, start:stop]")


def _view_op(node, where, inputs) -> Op:
    out, source = _shape(node), _shape(inputs[0])
    if out is None or source is None:
        raise _refuse(where, "a reshape of unknown shape")
    if len(out) == 2:
        return Op(node, where, "flatten", inputs[:1])
    if len(out) == 5 and len(source) == 4 and out[1] * out[2] == source[1] and out[3:] == source[2:]:
        return Op(node, where, "view5", inputs[:1], parts=(out[1],))
    if len(out) == 4 and len(source) == 5 and source[1] * source[2] == out[1]:
        return Op(node, where, "view4", inputs[:1])
    if out == source:
        return Op(node, where, "pass", inputs[:1])
    raise _refuse(where, f"a reshape from {source} to {out}; expected a flatten or a channel shuffle")


def _channel_layer_norm(m: nn.LayerNorm, where: str, inputs) -> Norm:
    if len(m.normalized_shape) != 1:
        raise _refuse(where, f"a layer norm over {tuple(m.normalized_shape)}; expected one over the channels")
    return Norm("layer", eps=m.eps, affine=m.weight is not None)


def _functional_layer_norm(node, where, inputs) -> Op:
    weight = node.args[2] if len(node.args) > 2 else node.kwargs.get("weight")
    bias = node.args[3] if len(node.args) > 3 else node.kwargs.get("bias")
    eps = node.args[4] if len(node.args) > 4 else node.kwargs.get("eps", 1e-5)
    root = node.graph.owning_module
    tensors = {
        "weight": _attribute(root, weight.target) if isinstance(weight, fx.Node) else None,
        "bias": _attribute(root, bias.target) if isinstance(bias, fx.Node) else None,
    }
    maps = [n for n in inputs if n.op != "get_attr"]
    return Op(node, where, "leaf", maps[:1], Norm("layer", eps=eps, affine=tensors["weight"] is not None), tensors)


__all__ = ["NORM_ACT", "Op", "SUPPORTED", "activation_of", "op_of", "pool_layer", "square"]
