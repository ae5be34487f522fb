"""Print layers and Archs in the paper's table notation (the grammar is in :mod:`budgetnet.graph.notation`).

Example:
    >>> from budgetnet.graph.layers import Conv, Residual
    >>> format_layer(Residual((Conv(3, 64, norm="batch"), Conv(3, 64, norm="batch", activation="none"))))
    'res[(3,64)bn (3,64)bn@none]'
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

from budgetnet.graph.layers import (
    CHANNEL_OPS,
    ELEMENTWISE,
    BLOCKS,
    DEFAULT_EPS,
    DEFAULT_MOMENTUM,
    FC,
    SPP,
    Act,
    ChannelConv,
    Concat,
    Conv,
    DropPath,
    Flatten,
    Gate,
    GlobalPool,
    Layer,
    Norm,
    Pad,
    Pool,
    Residual,
    Scale,
    Shuffle,
    Slice,
    default_head,
    paper_head,
)

if TYPE_CHECKING:
    from budgetnet.graph.arch import Arch


def format_number(value: float) -> str:
    """A float as short as it prints and still parses back equal (``0.001``, ``1e-06``).

    Example:
        >>> format_number(0.001), format_number(1e-6), format_number(0.1 + 0.2)
        ('0.001', '1e-06', '0.30000000000000004')
    """
    text = f"{value:g}"
    return text if float(text) == value else repr(float(value))


def _activation(activation: str) -> str:
    return "" if activation == "relu" else f"@{activation}"


def _norm_options(eps: float, momentum: float, affine: bool = True) -> str:
    options = []
    if eps != DEFAULT_EPS:
        options.append(f"eps={format_number(eps)}")
    if momentum != DEFAULT_MOMENTUM:
        options.append(f"momentum={format_number(momentum)}")
    if not affine:
        options.append("affine=false")
    return f"({','.join(options)})" if options else ""


def format_layer(layer: Layer) -> str:
    """One layer in the notation.

    Example:
        >>> format_layer(Conv(2, 256, stride=2))
        '(2,256)/2'
        >>> format_layer(Conv(3, 32, 2, 1, norm="batch", norm_eps=1e-3, activation="hardswish"))
        '(3,32)/2p1bn(eps=0.001)@hardswish'
        >>> format_layer(Conv((1, 7), 192, padding=(0, 3), norm="batch"))
        '(1x7,192)p(0,3)bn'
        >>> format_layer(Gate((GlobalPool(), Conv(1, 8, activation="silu"), Conv(1, 32, activation="sigmoid"))))
        'gate[gpool (1,8)@silu (1,32)@sigmoid]'
        >>> format_layer(Gate((GlobalPool(), ChannelConv(5), Act("sigmoid"))))
        'gate[gpool chconv(5) sigmoid]'
    """
    if isinstance(layer, Conv):
        kernel = "x".join(map(str, layer.kernel_hw)) if isinstance(layer.kernel_size, tuple) else layer.kernel_size
        text = f"({kernel},{layer.out_channels})"
        if layer.stride != 1:
            text += f"/{layer.stride}"
        if isinstance(layer.padding, tuple):
            text += "p({},{})".format(*layer.padding)
        elif layer.padding is not None:
            text += f"p{layer.padding}"
        if layer.dilation != 1:
            text += f"d{layer.dilation}"
        if layer.depthwise:
            text += "dw"
        elif layer.groups != 1:
            text += f"g{layer.groups}"
        if layer.norm == "batch":
            text += "bn" + _norm_options(layer.norm_eps, layer.norm_momentum)
        return text + _activation(layer.activation)
    if isinstance(layer, BLOCKS):
        return _format_block(layer)
    if isinstance(layer, Pool):
        text = ("avg" if layer.mode == "avg" else "") + f"{layer.kernel_size}/{layer.stride}"
        text += f"p{layer.padding}" if layer.padding else ""
        flags = ["ceil"] * layer.ceil_mode + ["exclude_pad"] * (not layer.count_include_pad)
        return text + (f"({','.join(flags)})" if flags else "")
    if isinstance(layer, SPP):
        if layer.levels == (1,) and layer.mode == "avg":
            return "gap"
        prefix = "avg" if layer.mode == "avg" else ""
        if layer.levels == SPP().levels:
            return prefix + "spp"
        return prefix + "spp(" + ",".join(str(level) for level in layer.levels) + ")"
    if isinstance(layer, Flatten):
        return "flat"
    if isinstance(layer, Norm):
        if layer.norm == "batch":
            return "bn" + _norm_options(layer.eps, layer.momentum, layer.affine)
        options = _norm_options(layer.eps, DEFAULT_MOMENTUM, layer.affine)
        if layer.norm != "group":
            return {"layer": "ln", "response": "grn", "rms": "rms", "simple": "simplenorm"}[layer.norm] + options
        return f"gn({layer.groups}{',' + options[1:-1] if options else ''})"
    if isinstance(layer, Act):
        return layer.activation
    if isinstance(layer, Scale):
        options = ([] if layer.init == 1.0 else [format_number(layer.init)]) + (["shift=true"] if layer.shift else [])
        return "scale" + (f"({','.join(options)})" if options else "")
    if isinstance(layer, DropPath):
        return f"droppath({format_number(layer.rate)})"
    if isinstance(layer, Slice):
        return f"slice({layer.start},{layer.stop})"
    if isinstance(layer, Shuffle):
        return f"shuffle({layer.groups})"
    if isinstance(layer, GlobalPool):
        return "gpool" if layer.mode == "avg" else "maxgpool"
    if isinstance(layer, Pad):
        return f"pad({layer.left},{layer.right},{layer.top},{layer.bottom})"
    if isinstance(layer, ChannelConv):
        return f"chconv({layer.kernel_size}{',bias=true' if layer.bias else ''})"
    if layer.dropout == FC(1).dropout:
        text = f"fc{layer.out_features}"
    else:
        text = f"fc({layer.out_features},{format_number(layer.dropout)})"
    return text + _activation(layer.activation)


@lru_cache(maxsize=8192)
def _format_block(layer: Residual | Concat | Gate) -> str:
    """A block in the notation, cached by value (every field of a spec is checked, so
    equal specs print the same; a ResNet's notation repeats a few blocks many times)."""
    if isinstance(layer, Residual):
        text = "res[" + format_layers(layer.body)
        if layer.shortcut is not None:
            text += " | " + (format_layers(layer.shortcut) or "id")
        return text + "]" + _activation(layer.activation)
    if isinstance(layer, Gate):
        return "gate[" + format_layers(layer.body) + "]"
    return "cat[" + " | ".join(format_layers(branch) or "id" for branch in layer.branches) + "]"


def format_arch(arch: Arch) -> str:
    """The notation of a whole Arch: stages joined by pools, ``+`` inside a stage.

    The paper's head (``spp fc4096 fc4096``) is left out, as in Tables 1-2, when it is the
    default head of the input (64 px and more); every other head is printed, then ``nofc``
    for an Arch without a final classifier.

    Example:
        >>> import budgetnet
        >>> format_arch(budgetnet.parse("(3,160)x5 (3,256)"))
        '(3,160)x5 + (3,256)'
    """
    parts: list[str] = []
    stage: list[str] = []
    print_head = arch.head != paper_head() or default_head(arch.input_shape) != paper_head() or not arch.features
    for layer, count in _runs(arch.layers):
        text = format_layer(layer) + (f"x{count}" if count > 1 else "")
        if isinstance(layer, (Conv, Pad, *ELEMENTWISE, *CHANNEL_OPS)):  # leaves joined by "+" in a stage
            stage.append(text)
            continue
        if stage:
            parts.append(" + ".join(stage))
            stage = []
        if isinstance(layer, (Pool, GlobalPool, *BLOCKS)) or print_head:
            parts.append(text)
    if stage:
        parts.append(" + ".join(stage))
    if not arch.classifier:
        parts.append("nofc")
    return " ".join(parts)


def format_layers(layers: Sequence[Layer]) -> str:
    """A block's branch: its layers with runs as ``xK``, separated by spaces.

    Example:
        >>> format_layers([Conv(1, 64), Conv(3, 64), Conv(3, 64)])
        '(1,64) (3,64)x2'
    """
    return " ".join(format_layer(layer) + (f"x{count}" if count > 1 else "") for layer, count in _runs(layers))


def _runs(layers: Sequence[Layer]) -> list[tuple[Layer, int]]:
    runs: list[tuple[Layer, int]] = []
    for layer in layers:
        if runs and runs[-1][0] == layer and not isinstance(layer, (SPP, Flatten)):
            runs[-1] = (layer, runs[-1][1] + 1)
        else:
            runs.append((layer, 1))
    return runs
