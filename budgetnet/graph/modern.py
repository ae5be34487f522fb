"""Today's CNN families in the notation: EfficientNet, MobileNetV3, RegNetY and ConvNeXt.

Each generator writes torchvision's layout of the network (its paddings, batch-norm
settings, squeeze-excitation widths and stochastic-depth rates), so that importing the
torchvision model gives an Arch equal to the zoo entry. Their Eqn. (1) cost sits beside the
published figure in ``docs/notation.md``:

=======================  =====================================  ==========================
zoo name                 network                                published multiply-adds
=======================  =====================================  ==========================
``efficientnet_b0``      Tan & Le 2019, MBConv + SE, SiLU       0.39 B
``mobilenet_v3_large``   Howard et al. 2019, h-swish, h-sigmoid  219 M
``regnet_y_400mf``       Radosavovic et al. 2020, group width 8  0.4 G
``convnext_tiny``        Liu et al. 2022, 7x7 depthwise, LN      4.5 G
=======================  =====================================  ==========================

Example:
    >>> efficientnet_b0_notation().split()[:2]
    ['(3,32)/2p1bn@silu', '(3,32)p1dwbn@silu']
"""

from __future__ import annotations

from budgetnet.graph.layers import Conv
from budgetnet.graph.printing import format_layer, format_number

#: EfficientNet-B0's stages (Tan & Le 2019, Table 1): expansion, kernel, first stride, input
#: channels, output channels, blocks.
EFFICIENTNET_B0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
#: MobileNetV3-Large's blocks (Howard et al. 2019, Table 1): input channels, kernel,
#: expanded channels, output channels, squeeze-excitation, activation, stride.
MOBILENET_V3_LARGE_BLOCKS = (
    (16, 3, 16, 16, False, "relu", 1),
    (16, 3, 64, 24, False, "relu", 2),
    (24, 3, 72, 24, False, "relu", 1),
    (24, 5, 72, 40, True, "relu", 2),
    (40, 5, 120, 40, True, "relu", 1),
    (40, 5, 120, 40, True, "relu", 1),
    (40, 3, 240, 80, False, "hardswish", 2),
    (80, 3, 200, 80, False, "hardswish", 1),
    (80, 3, 184, 80, False, "hardswish", 1),
    (80, 3, 184, 80, False, "hardswish", 1),
    (80, 3, 480, 112, True, "hardswish", 1),
    (112, 3, 672, 112, True, "hardswish", 1),
    (112, 5, 672, 160, True, "hardswish", 2),
    (160, 5, 960, 160, True, "hardswish", 1),
    (160, 5, 960, 160, True, "hardswish", 1),
)
#: RegNetY-400MF (Radosavovic et al. 2020): stage widths and depths from its quantized
#: linear rule (w_0 = 48, w_a = 27.89, w_m = 2.09, 16 blocks), group width 8, SE ratio 0.25.
REGNET_Y_400MF_STAGES = ((48, 1), (104, 3), (208, 6), (440, 6))
#: ConvNeXt-T (Liu et al. 2022): stage widths and depths.
CONVNEXT_TINY_STAGES = ((96, 3), (192, 3), (384, 9), (768, 3))


def _conv(kernel: int, filters: int, stride: int = 1, padding: int | None = None, *, groups: int = 1,
          depthwise: bool = False, activation: str = "relu", norm: str | None = "batch", eps: float = 1e-5,
          momentum: float = 0.1) -> str:  # fmt: skip
    return format_layer(
        Conv(kernel, filters, stride, padding, groups, depthwise, activation, norm,
             norm_eps=eps if norm else 1e-5, norm_momentum=momentum if norm else 0.1)  # fmt: skip
    )


def _make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: the nearest multiple of ``divisor``, never 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _block(layers: list[str], residual: bool, activation: str = "none") -> str:
    """The layers of a block: a residual block when it keeps the shape, else on the main chain."""
    if not residual:
        return " ".join(layers)
    return "res[" + " ".join(layers) + "]" + ("" if activation == "relu" else f"@{activation}")


def efficientnet_b0_notation() -> str:
    """EfficientNet-B0 (Tan & Le 2019) in the notation, torchvision's layout.

    A 3x3/2 stem of 32; each MBConv block expands by its ratio with a 1x1 (not when the
    ratio is 1), filters with a depthwise kxk (the stage's stride on its first block), gates
    with squeeze-excitation (a quarter of the block's input channels, SiLU, sigmoid) and
    projects with a linear 1x1. Blocks that keep the shape add their input, after stochastic
    depth at ``0.2 * block / 16``. A 1x1 of 1280 and global average pooling end it.

    Example:
        >>> efficientnet_b0_notation().split(" res[")[1].split(" droppath")[0]
        '(1,144)bn@silu (3,144)dwbn@silu gate[gpool (1,6)@silu (1,144)@sigmoid] (1,24)bn@none'
    """
    total = sum(stage[-1] for stage in EFFICIENTNET_B0_STAGES)
    parts, block = [_conv(3, 32, 2, 1, activation="silu")], 0
    for expansion, kernel, first_stride, first_in, out_channels, count in EFFICIENTNET_B0_STAGES:
        for index in range(count):
            in_channels, stride = (first_in, first_stride) if index == 0 else (out_channels, 1)
            hidden = in_channels * expansion
            residual = stride == 1 and in_channels == out_channels
            layers = [_conv(1, hidden, activation="silu")] if expansion != 1 else []
            padding = None if residual else (kernel - 1) // 2
            layers.append(_conv(kernel, hidden, stride, padding, depthwise=True, activation="silu"))
            layers.append(f"gate[gpool (1,{max(1, in_channels // 4)})@silu (1,{hidden})@sigmoid]")
            layers.append(_conv(1, out_channels, activation="none"))
            if residual:
                layers.append(f"droppath({format_number(0.2 * block / total)})")
            parts.append(_block(layers, residual))
            block += 1
    return " ".join(parts + [_conv(1, 1280, activation="silu"), "gap"])


def mobilenet_v3_large_notation() -> str:
    """MobileNetV3-Large 1.0 (Howard et al. 2019) in the notation, torchvision's layout.

    Every batch norm takes ``eps=0.001, momentum=0.01``. A 3x3/2 stem of 16 (h-swish); each
    block expands with a 1x1 (when the expanded width differs from its input), filters with a
    depthwise kxk, gates where the table says so (``make_divisible(expanded / 4, 8)``
    channels, ReLU, h-sigmoid) and projects with a linear 1x1; blocks that keep the shape add
    their input. A 1x1 of 960 (h-swish), global average pooling, and a hidden fc of 1280
    (h-swish, dropout 0.2) before the classifier end it.

    Example:
        >>> mobilenet_v3_large_notation().split(" res[")[0]
        '(3,16)/2p1bn(eps=0.001,momentum=0.01)@hardswish'
    """
    bn = {"eps": 1e-3, "momentum": 0.01}
    parts = [_conv(3, 16, 2, 1, activation="hardswish", **bn)]
    for in_channels, kernel, expanded, out_channels, gate, activation, stride in MOBILENET_V3_LARGE_BLOCKS:
        residual = stride == 1 and in_channels == out_channels
        layers = [_conv(1, expanded, activation=activation, **bn)] if expanded != in_channels else []
        padding = None if residual else (kernel - 1) // 2
        layers.append(_conv(kernel, expanded, stride, padding, depthwise=True, activation=activation, **bn))
        if gate:
            layers.append(f"gate[gpool (1,{_make_divisible(expanded / 4)}) (1,{expanded})@hardsigmoid]")
        layers.append(_conv(1, out_channels, activation="none", **bn))
        parts.append(_block(layers, residual))
    return " ".join(parts + [_conv(1, 960, activation="hardswish", **bn), "gap", "fc(1280,0.2)@hardswish"])


def regnet_y_400mf_notation() -> str:
    """RegNetY-400MF (Radosavovic et al. 2020) in the notation, torchvision's layout.

    A 3x3/2 stem of 32; each stage opens with a stride-2 block. A block is a bottleneck of
    its output width (1x1, grouped 3x3 with groups of 8 channels, squeeze-excitation to a
    quarter of the block's *input* width, linear 1x1), added to the input (a 1x1 projection
    with batch norm where the shape changes) and passed through a ReLU.

    Example:
        >>> regnet_y_400mf_notation().split(" res[")[1]
        '(1,48)bn (3,48)/2g6bn gate[gpool (1,8) (1,48)@sigmoid] (1,48)bn@none]'
    """
    parts, width_in = [_conv(3, 32, 2, 1)], 32
    for width, depth in REGNET_Y_400MF_STAGES:
        for index in range(depth):
            stride = 2 if index == 0 else 1
            squeeze = int(round(0.25 * width_in))
            body = [
                _conv(1, width),
                _conv(3, width, stride, groups=width // 8),
                f"gate[gpool (1,{squeeze}) (1,{width})@sigmoid]",
                _conv(1, width, activation="none"),
            ]
            parts.append("res[" + " ".join(body) + "]")
            width_in = width
    return " ".join(parts + ["gap"])


def convnext_tiny_notation() -> str:
    """ConvNeXt-T (Liu et al. 2022) in the notation, torchvision's layout.

    A 4x4/4 "patchify" stem of 96 and a channel layer norm; each block is a depthwise 7x7,
    a layer norm, a pointwise expansion to 4x (GELU) and back (torchvision's ``Linear``
    layers on the channels, which are 1x1 convs), layer scale from 1e-6 and stochastic depth
    at ``0.1 * block / 17``, added to its input. Between stages a layer norm and a 2x2/2
    conv double the width. Global average pooling and a layer norm before the classifier end
    it. Every conv has a bias and no batch norm; every layer norm takes ``eps=1e-6``.

    Example:
        >>> convnext_tiny_notation().split(" res[")[0]
        '(4,96)/4p0@none + ln(eps=1e-06)'
    """
    total = sum(depth for _, depth in CONVNEXT_TINY_STAGES)
    ln = "ln(eps=1e-06)"
    parts, block = [_conv(4, 96, 4, 0, activation="none", norm=None) + " + " + ln], 0
    for stage, (width, depth) in enumerate(CONVNEXT_TINY_STAGES):
        if stage:
            parts.append(f"{ln} " + _conv(2, width, 2, 0, activation="none", norm=None))
        for _ in range(depth):
            body = [
                _conv(7, width, depthwise=True, activation="none", norm=None),
                ln,
                _conv(1, 4 * width, activation="gelu", norm=None),
                _conv(1, width, activation="none", norm=None),
                "scale(1e-06)",
                f"droppath({format_number(0.1 * block / (total - 1))})",
            ]
            parts.append("res[" + " ".join(body) + "]@none")
            block += 1
    return " ".join(parts + ["gpool", ln, "flat"])


__all__ = [
    "convnext_tiny_notation",
    "efficientnet_b0_notation",
    "mobilenet_v3_large_notation",
    "regnet_y_400mf_notation",
]
