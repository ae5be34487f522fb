"""The model zoo, written in budgetnet's notation: the paper's 14 models and the residual families.

* :data:`PAPER_NOTATION` / :data:`PAPER_MODELS`: Tables 1-2 of He & Sun (CVPR 2015), exactly
  as the tables print them (also ``search_spaces.paper.NOTATION`` / ``MODELS``).
* :data:`ZOO`: residual networks made by the generators below, each at 3x224x224 with 1000
  classes (``small_residual`` at 1x16x16 with 10 classes):

  =====================  ===========================================================
  name                   network
  =====================  ===========================================================
  ``resnet18/34``        He et al. 2016 Table 1, basic blocks (equal to torchvision's)
  ``resnet50/101/152``   He et al. 2016 Table 1 ("v1"): a downsampling bottleneck
                         strides on its first 1x1
  ``resnet*_v1.5``       torchvision's layout of ResNet-50/101/152: the stride on the 3x3
  ``resnext50_32x4d``    Xie et al. 2017: bottleneck 3x3 in 32 groups, width 4 per group
  ``wide_resnet50_2``    torchvision's wide ResNet-50: bottleneck widths doubled
  ``mobilenet_v2``       Sandler et al. 2018, width 1.0: inverted residuals, ReLU6,
                         linear bottlenecks, last conv 1x1 of 1280
  ``small_residual``     a ResNet-14 for 16-32 px inputs (digits, MNIST, CIFAR)
  ``efficientnet_b0``    Tan & Le 2019 (:mod:`budgetnet.graph.modern` has today's CNNs)
  ``mobilenet_v3_large`` Howard et al. 2019
  ``regnet_y_400mf``     Radosavovic et al. 2020
  ``convnext_tiny``      Liu et al. 2022
  =====================  ===========================================================

Every conv of the residual families carries batch norm (``bn``) and torchvision's padding
(stem ``(7,64)/2p3bn 3/2p1``, head ``gap``), so that importing a torchvision model gives an
Arch equal to its zoo entry (:data:`TORCHVISION` maps torchvision's names to the zoo's).

Example:
    >>> import budgetnet
    >>> from budgetnet.graph import zoo
    >>> round(budgetnet.conv_macs(zoo.ZOO["resnet101"]) / 1e9, 1)
    7.6
    >>> zoo.get("small_residual", input_shape=(3, 32, 32)).feature_shape
    (64, 8, 8)
"""

from __future__ import annotations

from typing import Sequence

from budgetnet.graph.arch import Arch, Conv
from budgetnet.errors import ArchError
from budgetnet.graph.layers import check_int
from budgetnet.graph.modern import (
    convnext_tiny_notation,
    efficientnet_b0_notation,
    mobilenet_v3_large_notation,
    regnet_y_400mf_notation,
)
from budgetnet.graph.notation import parse
from budgetnet.graph.printing import format_layer

#: Tables 1-2 of He & Sun (CVPR 2015), row by row, written exactly as the tables print them.
PAPER_NOTATION = {
    "A": "(7,64)/2 3/3 (5,128) 2/2 (3,256)x3",
    "B": "(7,64)/2 3/3 (5,128) 2/2 (2,256)x6",
    "C": "(7,64)/2 3/3 (3,128)x2 2/2 (3,256)x3",
    "D": "(7,64)/2 3/3 (3,128)x2 2/2 (2,256)x6",
    "E": "(7,64)/2 3/3 (2,128)x4 2/2 (2,256)x6",
    "F": "(7,64)/2 3/3 (5,128) 2/2 (3,160)x5 + (3,256)",
    "G": "(7,64)/2 3/3 (5,128) 2/2 (3,128)x8 + (3,256)",
    "H": "(7,64)/2 3/3 (3,64)x3 + (3,128) 2/2 (3,256)x3",
    "I": "(7,64)/2 3/3 (3,64)x3 + (3,128) 2/2 (2,256)x6",
    "J": "(7,64)/2 3/3 (2,128)x4 2/2 (2,256)x4 3/3 (2,2304) + (2,256)",
    "B'": "(7,64)/2 3/1 (5,128)/3 2/1 (2,256)/2 + (2,256)x5",
    "D'": "(7,64)/2 3/1 (3,128)/3 + (3,128) 2/1 (2,256)/2 + (2,256)x5",
    "E'": "(7,64)/2 3/1 (2,128)/3 + (2,128)x3 2/1 (2,256)/2 + (2,256)x5",
    "J'": "(7,64)/2 3/1 (2,128)/3 + (2,128)x3 2/1 (2,256)/2 + (2,256)x3 3/1 (2,2304)/3 + (2,256)",
}

#: The "comp." column of Tables 1-2 (Eqn. (1) relative to A), as printed.
PAPER_COMPLEXITY = {
    "A": 1.0, "B": 0.96, "C": 1.02, "D": 0.98, "E": 0.99, "F": 1.0, "G": 1.0,
    "H": 0.97, "I": 0.93, "J": 0.98, "B'": 0.96, "D'": 0.98, "E'": 0.99, "J'": 0.98,
}  # fmt: skip

#: Top-1 / top-5 error (10-view, 75 epochs) from Tables 1-2.
PAPER_ERROR = {
    "A": (37.4, 15.9), "B": (35.7, 14.9), "C": (35.0, 14.3), "D": (34.5, 13.9),
    "E": (33.8, 13.3), "F": (35.5, 14.8), "G": (35.5, 14.7), "H": (34.7, 14.0),
    "I": (33.9, 13.5), "J": (32.9, 12.5), "B'": (34.6, 13.9), "D'": (33.8, 13.5),
    "E'": (33.4, 13.0), "J'": (32.2, 12.0),
}  # fmt: skip

#: The 14 paper models as Arch objects (224x224x3 input, 1000 classes).
PAPER_MODELS = {name: parse(text) for name, text in PAPER_NOTATION.items()}

#: Blocks per stage (conv2_x .. conv5_x) and block kind, He et al. 2016 Table 1.
RESNET_STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
#: The stem every ImageNet ResNet shares (torchvision's paddings): 7x7/2 conv, 3x3/2 max pool.
RESNET_STEM = "(7,64)/2p3bn 3/2p1"
#: MobileNetV2's inverted residual settings, Sandler et al. 2018 Table 2: expansion t,
#: output channels c, repeats n, first stride s.
MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)
)  # fmt: skip


def _conv(kernel: int, filters: int, stride: int = 1, padding: int | None = None, groups: int = 1,
          depthwise: bool = False, activation: str = "relu") -> str:
    """One batch-normalized conv in the notation, ``(K,F)/S pP gG|dw bn @act``."""
    return format_layer(Conv(kernel, filters, stride, padding, groups, depthwise, activation, norm="batch"))


def _stage(first: str, rest: str, count: int) -> list[str]:
    """A stage of ``count`` blocks: the first, then the rest once with ``xK``."""
    return [first] + ([rest + (f"x{count - 1}" if count > 2 else "")] if count > 1 else [])


def resnet_notation(depth: int, stride_on: str = "1x1", groups: int = 1, width_per_group: int = 64) -> str:
    """An ImageNet ResNet of He et al. 2016 Table 1 in the notation.

    Args:
        depth: 18, 34 (basic blocks: two 3x3), 50, 101 or 152 (bottlenecks: 1x1, 3x3, 1x1).
        stride_on: where a downsampling bottleneck strides: ``"1x1"`` (the paper's v1) or
            ``"3x3"`` (torchvision's, "v1.5"). Basic blocks always stride on the first 3x3.
        groups: groups of the bottleneck 3x3 (ResNeXt's cardinality).
        width_per_group: bottleneck width per group at stage 1 (64: ResNet; 4 with 32
            groups: ResNeXt 32x4d; 128: wide ResNet-50-2). Bottleneck widths are
            ``planes * width_per_group / 64 * groups`` for planes 64, 128, 256, 512, as in
            torchvision; the block outputs are ``4 * planes``.

    Stages after the first open with a stride-2 block; its shortcut (and that of the first
    bottleneck, 64 -> 256 channels) is the automatic 1x1 projection with batch norm.

    Raises:
        ArchError: an unknown ``depth`` or ``stride_on``.
        LayerSpecError: ``groups`` or ``width_per_group`` not an integer >= 1.

    Example:
        >>> resnet_notation(50).split(" res[")[:3]
        ['(7,64)/2p3bn 3/2p1', '(1,64)bn (3,64)bn (1,256)bn@none]', '(1,64)bn (3,64)bn (1,256)bn@none]x2']
        >>> [resnet_notation(50, stride_on=where).split(" res[")[3] for where in ("1x1", "3x3")]
        ['(1,128)/2bn (3,128)bn (1,512)bn@none]', '(1,128)bn (3,128)/2bn (1,512)bn@none]']
        >>> resnet_notation(50, stride_on="3x3", groups=32, width_per_group=4).split(" res[")[1]
        '(1,128)bn (3,128)g32bn (1,256)bn@none]'
    """
    if depth not in RESNET_STAGES:
        raise ArchError(f"resnet: depth={depth!r} is invalid; expected one of {sorted(RESNET_STAGES)}")
    if stride_on not in ("1x1", "3x3"):
        raise ArchError(f"resnet: stride_on={stride_on!r} is invalid; expected '1x1' (v1) or '3x3' (v1.5)")
    check_int("resnet", "groups", groups, 1)
    check_int("resnet", "width_per_group", width_per_group, 1)
    kind, repeats = RESNET_STAGES[depth]
    blocks = []
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), repeats)):
        first, rest = (
            _resnet_block(kind, planes, stride, stride_on, groups, width_per_group) for stride in (2 if stage else 1, 1)
        )
        blocks += _stage(first, rest, count)
    return " ".join([RESNET_STEM, *blocks, "gap"])


def _resnet_block(kind: str, planes: int, stride: int, stride_on: str, groups: int, width_per_group: int) -> str:
    if kind == "basic":
        body = [_conv(3, planes, stride), _conv(3, planes, activation="none")]
    else:
        width = planes * width_per_group // 64 * groups
        body = [
            _conv(1, width, stride if stride_on == "1x1" else 1),
            _conv(3, width, stride if stride_on == "3x3" else 1, groups=groups),
            _conv(1, 4 * planes, activation="none"),
        ]
    return "res[" + " ".join(body) + "]"


def mobilenet_v2_notation() -> str:
    """MobileNetV2 1.0 (Sandler et al. 2018) in the notation, torchvision's layout.

    A 3x3/2 stem of 32, then :data:`MOBILENET_V2_SETTINGS`: each block expands to ``t``
    times its input with a 1x1 (left out when ``t`` is 1), filters with a depthwise 3x3
    (the stride of the first block of a stage), and projects with a linear 1x1 (``@none``).
    A block is residual (linear add, ``]@none``) only when it keeps the shape (stride 1 and
    equal channels). A 1x1 of 1280 and global average pooling end it. Every activation is
    ReLU6; strided convs on the main chain write torchvision's pad 1 (``p1``).

    Example:
        >>> mobilenet_v2_notation().split()[:3]
        ['(3,32)/2p1bn@relu6', '(3,32)dwbn@relu6', '(1,16)bn@none']
    """
    parts = [_conv(3, 32, 2, 1, activation="relu6")]
    channels = 32
    for expansion, out_channels, count, first_stride in MOBILENET_V2_SETTINGS:
        first = _inverted_residual(channels, expansion, out_channels, first_stride)
        rest = _inverted_residual(out_channels, expansion, out_channels, 1)
        parts += _stage(first, rest, count)
        channels = out_channels
    return " ".join(parts + [_conv(1, 1280, activation="relu6"), "gap"])


def _inverted_residual(channels: int, expansion: int, out_channels: int, stride: int) -> str:
    hidden = channels * expansion
    residual = stride == 1 and channels == out_channels
    convs = [_conv(1, hidden, activation="relu6")] if expansion != 1 else []
    padding = 1 if stride > 1 else None  # inside a block, or at stride 1, the automatic pad is 1
    convs.append(_conv(3, hidden, stride, padding, depthwise=True, activation="relu6"))
    convs.append(_conv(1, out_channels, activation="none"))
    return "res[" + " ".join(convs) + "]@none" if residual else " ".join(convs)


def small_residual_notation(widths: Sequence[int] = (16, 32, 64), blocks: int = 2) -> str:
    """A small ResNet for 16-32 px inputs, after He et al. 2016's CIFAR nets (Sec. 4.2).

    A 3x3 stem of ``widths[0]``, then one stage of ``blocks`` basic blocks per width (the
    stages after the first open with a stride-2 block and a 1x1 projection shortcut), then
    global average pooling. The default, 2 blocks of widths 16, 32, 64, is He's 6n+2 net
    with n = 2 (ResNet-14), with projection shortcuts (option B) instead of zero padding.

    Raises:
        ArchError: ``widths`` not a non-empty list.
        LayerSpecError: a width or ``blocks`` that is not an integer >= 1.

    Example:
        >>> small_residual_notation((8, 16), blocks=1)
        '(3,8)bn res[(3,8)bn (3,8)bn@none] res[(3,16)/2bn (3,16)bn@none] gap'
    """
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
        raise ArchError(f"small_residual: widths={widths!r} is invalid; expected a non-empty list of integers >= 1")
    for width in widths:
        check_int("small_residual", "widths", width, 1)
    check_int("small_residual", "blocks", blocks, 1)
    parts = [_conv(3, widths[0])]
    for stage, width in enumerate(widths):
        first, rest = (_basic_block(width, stride) for stride in (2 if stage else 1, 1))
        parts += _stage(first, rest, blocks)
    return " ".join(parts + ["gap"])


def _basic_block(width: int, stride: int) -> str:
    return f"res[{_conv(3, width, stride)} {_conv(3, width, activation='none')}]"


#: The small residual baseline's default input and classes (the bundled 16x16 digits).
SMALL_INPUT_SHAPE = (1, 16, 16)
SMALL_NUM_CLASSES = 10

_GENERATED = {
    "resnet18": resnet_notation(18),
    "resnet34": resnet_notation(34),
    "resnet50": resnet_notation(50),
    "resnet101": resnet_notation(101),
    "resnet152": resnet_notation(152),
    "resnet50_v1.5": resnet_notation(50, stride_on="3x3"),
    "resnet101_v1.5": resnet_notation(101, stride_on="3x3"),
    "resnet152_v1.5": resnet_notation(152, stride_on="3x3"),
    "resnext50_32x4d": resnet_notation(50, stride_on="3x3", groups=32, width_per_group=4),
    "wide_resnet50_2": resnet_notation(50, stride_on="3x3", width_per_group=128),
    "mobilenet_v2": mobilenet_v2_notation(),
    "efficientnet_b0": efficientnet_b0_notation(),
    "mobilenet_v3_large": mobilenet_v3_large_notation(),
    "regnet_y_400mf": regnet_y_400mf_notation(),
    "convnext_tiny": convnext_tiny_notation(),
    "small_residual": small_residual_notation(),
}

#: The residual zoo as Arch objects: 3x224x224 and 1000 classes, except ``small_residual``
#: (1x16x16, 10 classes).
ZOO = {
    name: parse(text, SMALL_INPUT_SHAPE, SMALL_NUM_CLASSES) if name == "small_residual" else parse(text)
    for name, text in _GENERATED.items()
}

#: The notation of every :data:`ZOO` model, as budgetnet prints it (it parses back equal).
NOTATION = {name: arch.notation() for name, arch in ZOO.items()}

#: torchvision model names -> the zoo entry an import of that model equals.
TORCHVISION = {
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50_v1.5",
    "resnet101": "resnet101_v1.5",
    "resnet152": "resnet152_v1.5",
    "resnext50_32x4d": "resnext50_32x4d",
    "wide_resnet50_2": "wide_resnet50_2",
    "mobilenet_v2": "mobilenet_v2",
    "efficientnet_b0": "efficientnet_b0",
    "mobilenet_v3_large": "mobilenet_v3_large",
    "regnet_y_400mf": "regnet_y_400mf",
    "convnext_tiny": "convnext_tiny",
}

def names() -> list[str]:
    """Every name :func:`get` knows: the paper's models, then the zoo's.

    Example:
        >>> names()[:3], names()[-1]
        (['A', 'B', 'C'], 'small_residual')
    """
    return [*PAPER_MODELS, *ZOO]


def get(name: str, input_shape: Sequence[int] | None = None, num_classes: int | None = None) -> Arch:
    """A zoo or paper model by name, optionally on another input shape or class count.

    Raises:
        ArchError: an unknown name (the message lists the known ones).

    Example:
        >>> get("resnet18", num_classes=10).num_classes
        10
        >>> get("resnet1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        budgetnet.errors.ArchError: zoo: name='resnet1' is unknown; expected one of A, B, C, ..., resnet18, ...
    """
    arch = (PAPER_MODELS.get(name) or ZOO.get(name)) if isinstance(name, str) else None
    if arch is None:
        raise ArchError(f"zoo: name={name!r} is unknown; expected one of {', '.join(names())}")
    if input_shape is not None or num_classes is not None:
        arch = arch.with_input(input_shape, num_classes)
    return arch


__all__ = [
    "NOTATION",
    "PAPER_COMPLEXITY",
    "PAPER_ERROR",
    "PAPER_MODELS",
    "PAPER_NOTATION",
    "TORCHVISION",
    "ZOO",
    "get",
    "mobilenet_v2_notation",
    "names",
    "resnet_notation",
    "small_residual_notation",
]
