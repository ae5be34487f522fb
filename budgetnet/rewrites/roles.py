"""What a layer is, for the rewrite rules: which convs are plain, and how a new conv inherits.

Two facts every rule asks:

* **Which convs form a plain stage.** The paper's rules (Sec. 4) trade the depth, width and
  filter size of a *plain stage*: consecutive stride-1 dense convs of one kind. Today's nets
  put other convs on the main chain too: the expansion, depthwise and projection convs of an
  inverted-residual (MBConv) block that changes the shape, the 1x1 convs of a gate, a head
  1x1. :func:`is_plain_conv` says which top-level convs the paper's rules may touch, and
  :func:`conv_kind` which of them may share a run (one norm, activation, BN eps/momentum and
  dilation: a run never mixes a linear projection with a SiLU expansion).
* **How a new conv inherits the replaced one's attributes.** :func:`derive` is the one place
  rules build a new conv: ``dataclasses.replace`` of the conv it replaces, so the norm, its
  eps and momentum, the activation, the dilation and the groups policy carry over; only the
  sizes, counts and strides a rule names change (and an automatic padding is re-chosen).

Example:
    >>> import budgetnet
    >>> arch = budgetnet.parse("(3,32)/2p1bn@silu (1,96)bn@silu (3,96)/2p1dwbn@silu (1,24)bn@none (3,64)bnx2")
    >>> [is_plain_conv(arch, info.index) for info in arch.features]
    [True, False, False, False, True, True]
    >>> derive(arch.layers[4], out_channels=48)
    Conv(kernel_size=3, out_channels=48, stride=1, padding=None, groups=1, depthwise=False, activation='relu', norm='batch')
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from functools import lru_cache
from typing import Callable

from budgetnet.graph.arch import Arch, LayerShape
from budgetnet.graph.layers import Conv, Gate, Layer

#: The attributes a rewrite never changes on a conv it rebuilds (only sizes, counts,
#: strides and automatic paddings change).
KEPT_ATTRIBUTES = ("norm", "norm_eps", "norm_momentum", "activation", "dilation", "depthwise")


def derive(conv: Conv, *, keep_padding: bool = False, **changes) -> Conv:
    """A new conv made from ``conv``, the one it replaces: ``dataclasses.replace`` with
    ``changes`` (sizes, counts, strides), the padding automatic unless ``keep_padding`` or
    ``padding`` is given. Norm, BN eps/momentum, activation, dilation, depthwise and groups
    carry over.

    Example:
        >>> derive(Conv(3, 64, norm="batch", norm_eps=1e-3, activation="silu"), kernel_size=5, out_channels=80)
        Conv(kernel_size=5, out_channels=80, stride=1, padding=None, groups=1, depthwise=False, activation='silu', norm='batch', norm_eps=0.001)
    """
    if not keep_padding and "padding" not in changes:
        changes["padding"] = None
    return replace(conv, **changes)


def conv_kind(conv: Conv) -> tuple:
    """The attributes a rewrite keeps, as a tuple (two convs of one kind may share a run).

    Example:
        >>> conv_kind(Conv(3, 8, norm="batch")) == conv_kind(Conv(5, 16, 2, norm="batch"))
        True
        >>> conv_kind(Conv(1, 8, norm="batch", activation="none")) == conv_kind(Conv(1, 8, norm="batch"))
        False
    """
    return tuple(getattr(conv, name) for name in KEPT_ATTRIBUTES) + (conv.groups,)


def is_dense(conv: Conv) -> bool:
    """Whether a conv is dense (one group, not depthwise).

    Example:
        >>> is_dense(Conv(3, 8)), is_dense(Conv(3, 8, depthwise=True)), is_dense(Conv(3, 8, groups=2))
        (True, False, False)
    """
    return conv.groups == 1 and not conv.depthwise


def is_plain_conv(arch: Arch, index: int) -> bool:
    """Whether top-level layer ``index`` is a conv of a plain stage, one the paper's rules
    may replace: a dense conv (grouped and depthwise convs keep a block's width policy),
    and not a 1x1 conv in a net of today's blocks (:func:`has_block_roles`: there a 1x1 is
    the expansion or projection of an inverted-residual block, a gate's, or the head conv,
    whose width is its role's, not a stage's free width).

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,16) (1,64) (3,64)dw gate[gpool (1,4) (1,64)@sigmoid] (1,24)@none (1,96)")
        >>> [is_plain_conv(arch, i) for i in range(6)]
        [True, False, False, False, False, False]
        >>> is_plain_conv(budgetnet.parse("(3,16) (1,64) (3,64)"), 1)
        True
    """
    layers = arch.layers
    layer = layers[index] if 0 <= index < len(layers) else None
    if not isinstance(layer, Conv) or not is_dense(layer) or not layer.square:
        return False  # a non-square filter (Inception's 1x7) has no size to trade: no rule takes it
    return layer.kernel_size > 1 or not has_block_roles(layers)


@lru_cache(maxsize=1024)
def has_block_roles(layers: tuple[Layer, ...]) -> bool:
    """Whether some layer (at any depth) is a depthwise or grouped conv or a gate: a net of
    today's blocks, whose 1x1 convs are expansions, projections and head convs.

    Example:
        >>> has_block_roles((Conv(1, 8), Conv(3, 8, depthwise=True))), has_block_roles((Conv(1, 8),))
        (True, False)
    """
    return any(_block_role(layer) for layer in layers)


def _block_role(layer: Layer) -> bool:
    if isinstance(layer, Gate):
        return True
    if isinstance(layer, Conv):
        return not is_dense(layer)
    inner = getattr(layer, "body", None) or ()
    branches = getattr(layer, "branches", None) or ()
    shortcut = getattr(layer, "shortcut", None) or ()
    return any(_block_role(item) for item in (*inner, *shortcut, *(x for branch in branches for x in branch)))


def conv_groups(arch: Arch, key: Callable[[LayerShape], object]) -> list[tuple[int, int, int]]:
    """Maximal runs ``(stage, start, stop)`` of consecutive stride-1 plain convs
    (:func:`~budgetnet.rewrites.roles.is_plain_conv`) of one kind
    (:func:`~budgetnet.rewrites.roles.conv_kind`: norm, BN settings, activation, dilation)
    with equal ``key``. A norm, activation, gate or block between two convs ends a run.

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,8)bn (3,8)bn (3,8)@silu (1,16) (3,16)dw (1,8)@none")
        >>> conv_groups(arch, lambda info: info.layer.kernel_size)
        [(1, 0, 2), (1, 2, 3)]
    """
    groups = []

    def run_key(info):
        if info.kind != "conv" or info.layer.stride != 1 or not is_plain_conv(arch, info.index):
            return None
        return (info.stage, conv_kind(arch.layers[info.index]), key(info))

    for found, run in itertools.groupby(arch.features, key=run_key):
        run = list(run)
        if found is not None:
            groups.append((run[0].stage, run[0].index, run[-1].index + 1))
    return groups


__all__ = ["KEPT_ATTRIBUTES", "conv_groups", "conv_kind", "derive", "has_block_roles", "is_dense", "is_plain_conv"]
