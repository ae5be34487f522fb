"""Eqn. (1) of the paper and the per-layer cost report (budgets: :mod:`budgetnet.cost.budgets`).

This module is the one source of truth for costs. Eqn. (1) counts multiply-adds (MACs)
per image of the conv layers only::

    sum_l  (n_{l-1} / g_l) * s_l^2 * n_l * m_l^2

with ``m_l`` the side of the layer's output map (``H * W`` for non-square maps) and ``g_l``
the conv's groups (1 in the paper; the input channels for a depthwise conv). Every conv
counts, projection shortcuts included. FLOPs are twice the MACs. fc layers (the implicit
classifier included) are counted separately as ``fc_macs``, pooling as ``pool_ops``
(window reads), residual adds as ``add_ops`` and the multiplies of gates (squeeze-excitation)
as ``mul_ops`` (one per output element); none of them, nor norms or activations, enters
Eqn. (1). The 1x1 convs inside a gate are convs: they count, on their 1x1 map. So does ECA's
conv along the channels (:class:`~budgetnet.graph.layers.ChannelConv`, kind ``"chconv"``):
one input and one output channel, ``k`` taps at each of the ``C * H * W`` outputs, so
``k * C * H * W`` (``k * C`` in a gate), as fvcore counts torch's ``Conv1d``.

Example:
    >>> import budgetnet
    >>> from search_spaces.paper import MODELS
    >>> report = budgetnet.complexity(MODELS["J'"], baseline=MODELS["A"])
    >>> report.conv_macs, round(report.ratio, 2)
    (827167424, 0.97)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from budgetnet.graph.arch import BLOCKS, FC, SPP, Arch, Conv, Flatten, LayerShape, Pool, Residual
from budgetnet.graph.layers import ChannelConv, Gate, GlobalPool, Norm, Scale
from budgetnet.errors import ArchError
from budgetnet.tables import text_table

#: The layer kinds Eqn. (1) counts: convs, and convs along the channels (ECA's).
EQN1_KINDS = ("conv", "chconv")


@dataclass(frozen=True)
class LayerCost:
    """One row of a :class:`ComplexityReport`; ``macs`` is Eqn. (1)'s term for convs."""

    name: str
    kind: str
    stage: int | None
    in_channels: int
    kernel_size: int | tuple[int, int] | None
    out_channels: int
    stride: int | None
    padding: int | tuple[int, int] | None
    out_size: str
    macs: int
    params: int
    activations: int
    pool_ops: int
    groups: int | None = None
    add_ops: int = 0
    mul_ops: int = 0
    dilation: int = 1


def layer_cost(info: LayerShape) -> LayerCost:
    """The cost of one inferred layer. A block's row carries the Eqn. (1) subtotal of its
    convs in ``macs`` (for reading; the report's totals add up the conv rows only), its
    residual add in ``add_ops`` and its output in ``activations``.

    Example:
        >>> import budgetnet
        >>> conv = budgetnet.parse("(3,8)", input_shape=(1, 4, 4)).convs[0]
        >>> layer_cost(conv).macs == 1 * 3**2 * 8 * 4**2
        True
    """
    layer = info.layer
    in_channels = info.in_shape[0]
    out_elements = math.prod(info.out_shape)
    kernel = stride = padding = None
    macs = params = pool_ops = add_ops = mul_ops = 0
    groups = None
    dilation = 1
    out_channels = info.out_shape[0]
    if isinstance(layer, Conv):
        kernel, stride, padding, groups = layer.kernel_size, layer.stride, layer.padding, layer.groups
        dilation = layer.dilation
        macs = eqn1_term(info)
        # a bias without batch norm; BN's scale and shift with it
        extra = 2 * layer.out_channels if layer.norm == "batch" else layer.out_channels
        params = in_channels // layer.groups * math.prod(layer.kernel_hw) * layer.out_channels + extra
    elif isinstance(layer, BLOCKS):
        macs = sum(eqn1_term(inner) for inner in info.walk() if inner.kind in EQN1_KINDS)
        add_ops = out_elements if isinstance(layer, Residual) else 0
        mul_ops = out_elements if isinstance(layer, Gate) else 0
    elif isinstance(layer, Norm):
        params = (in_channels if layer.norm in ("rms", "simple") else 2 * in_channels) if layer.affine else 0
    elif isinstance(layer, Scale):
        params = in_channels * (2 if layer.shift else 1)
    elif isinstance(layer, ChannelConv):
        kernel, stride, padding = layer.kernel_size, 1, layer.padding
        macs = eqn1_term(info)
        params = layer.kernel_size + layer.bias
    elif isinstance(layer, GlobalPool):
        pool_ops = math.prod(info.in_shape)
    elif isinstance(layer, Pool):
        kernel, stride, padding = layer.kernel_size, layer.stride, layer.padding
        pool_ops = out_elements * kernel**2
    elif isinstance(layer, SPP):
        pool_ops = in_channels * info.in_shape[1] * info.in_shape[2] * len(layer.levels)
    elif isinstance(layer, FC):
        macs = in_channels * layer.out_features
        params = macs + layer.out_features
    if len(info.out_shape) == 3:
        out_size = f"{info.out_shape[1]}x{info.out_shape[2]}"
    else:
        out_size = str(info.out_shape[0])
    if isinstance(layer, (SPP, Flatten)):
        out_channels = info.in_shape[0]
    return LayerCost(
        info.name,
        layer.kind,
        info.stage,
        in_channels,
        kernel,
        out_channels,
        stride,
        padding,
        out_size,
        macs,
        params,
        out_elements,
        pool_ops,
        groups,
        add_ops,
        mul_ops,
        dilation,
    )


@dataclass(frozen=True)
class ComplexityReport:
    """Per-layer costs and totals of one Arch; build it with :func:`complexity`.

    ``conv_macs`` is Eqn. (1); ``ratio`` is ``conv_macs`` over the baseline's (``None``
    without a baseline). ``rows`` has one row per layer, a block's row before its layers
    (named ``res3.conv1`` ...), and ends with the implicit classifier.
    """

    notation: str
    rows: tuple[LayerCost, ...]
    conv_macs: int
    fc_macs: int
    pool_ops: int
    params: int
    activations: int
    baseline_conv_macs: int | None = None
    add_ops: int = 0
    mul_ops: int = 0

    @property
    def ratio(self) -> float | None:
        if self.baseline_conv_macs is None:
            return None
        return self.conv_macs / self.baseline_conv_macs

    @property
    def conv_flops(self) -> int:
        """Eqn. (1) in FLOPs (two per multiply-add)."""
        return 2 * self.conv_macs

    @property
    def total_macs(self) -> int:
        return self.conv_macs + self.fc_macs

    def to_dict(self) -> dict:
        """Everything as plain JSON-ready values."""
        return {
            "notation": self.notation,
            "layers": [asdict(row) for row in self.rows],
            "conv_macs": self.conv_macs,
            "conv_flops": self.conv_flops,
            "fc_macs": self.fc_macs,
            "pool_ops": self.pool_ops,
            "params": self.params,
            "activations": self.activations,
            "add_ops": self.add_ops,
            "mul_ops": self.mul_ops,
            "baseline_conv_macs": self.baseline_conv_macs,
            "ratio": self.ratio,
        }

    def table(self) -> str:
        """A per-layer table with totals, for the terminal (MACs are multiply-adds)."""
        header = ("layer", "stage", "in", "kernel", "out", "stride", "pad", "size", "MACs", "params", "acts")
        lines = []
        for row in self.rows:
            lines.append(
                (
                    row.name,
                    "" if row.stage is None else str(row.stage),
                    str(row.in_channels),
                    _kernel_text(row),
                    str(row.out_channels),
                    "" if row.stride is None else str(row.stride),
                    _sides_text(row.padding),
                    row.out_size,
                    format_count(row.macs) if row.macs else "",
                    format_count(row.params) if row.params else "",
                    format_count(row.activations),
                )
            )
        out = [text_table(header, lines, right=range(2, len(header))), ""]
        out.append(f"conv MACs, Eqn. (1): {self.conv_macs:,} ({format_count(self.conv_macs)}; FLOPs = 2 x MACs)")
        out.append(f"fc MACs:             {self.fc_macs:,} ({format_count(self.fc_macs)})")
        out.append(f"pooling window ops:  {self.pool_ops:,}")
        if self.add_ops:
            out.append(f"residual add ops:    {self.add_ops:,} ({format_count(self.add_ops)})")
        if self.mul_ops:
            out.append(f"gate multiply ops:   {self.mul_ops:,} ({format_count(self.mul_ops)})")
        out.append(f"parameters:          {self.params:,} ({format_count(self.params)})")
        out.append(f"activations:         {self.activations:,} ({format_count(self.activations)})")
        if self.ratio is not None:
            out.append(f"ratio to baseline:   {self.ratio:.4f} (baseline {format_count(self.baseline_conv_macs)} MACs)")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


def complexity(arch: Arch, baseline: Arch | None = None) -> ComplexityReport:
    """The cost report of ``arch``: Eqn. (1) per conv, fc MACs, params, activations.

    Args:
        arch: the architecture.
        baseline: optional; ``report.ratio`` is then ``arch``'s Eqn. (1) over the baseline's.

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,8) gap", input_shape=(1, 4, 4), num_classes=2)
        >>> report = budgetnet.complexity(arch)
        >>> report.conv_macs, report.fc_macs, report.params
        (1152, 16, 98)
    """
    for field, value in (("arch", arch), ("baseline", baseline)):
        if not isinstance(value, Arch) and (field == "arch" or value is not None):
            raise ArchError(f"complexity: {field}={value!r} is not a budgetnet.Arch; expected budgetnet.parse(...)")
    rows = [layer_cost(info) for info in arch.walk()]
    if arch.classifier:
        rows.append(_classifier_cost(arch))
    return ComplexityReport(
        notation=arch.notation(),
        rows=tuple(rows),
        conv_macs=sum(row.macs for row in rows if row.kind in EQN1_KINDS),
        fc_macs=sum(row.macs for row in rows if row.kind in ("fc", "classifier")),
        pool_ops=sum(row.pool_ops for row in rows),
        params=sum(row.params for row in rows),
        activations=sum(row.activations for row in rows),
        baseline_conv_macs=None if baseline is None else conv_macs(baseline),
        add_ops=sum(row.add_ops for row in rows),
        mul_ops=sum(row.mul_ops for row in rows),
    )


def _classifier_cost(arch: Arch) -> LayerCost:
    """The row of the final classifier: a Linear from the head's output to the logits."""
    features = arch.shapes[-1].out_shape[0]
    macs = features * arch.num_classes
    name = f"fc{sum(isinstance(layer, FC) for layer in arch.layers) + 1}"
    classes = arch.num_classes
    return LayerCost(name, "classifier", None, features, None, classes, None, None, str(classes), macs,
                     macs + classes, classes, 0)  # fmt: skip


def conv_macs(arch: Arch) -> int:
    """Eqn. (1) alone: multiply-adds per image of the conv layers.

    Example:
        >>> import budgetnet
        >>> conv_macs(budgetnet.parse("(3,8)", input_shape=(1, 4, 4)))
        1152
    """
    return sum(eqn1_term(info) for info in arch.walk() if info.kind in EQN1_KINDS)


def eqn1_term(info: LayerShape) -> int:
    """One conv's term of Eqn. (1): ``(n_{l-1} / g) * s_l^2 * n_l * m_l^2`` (``H * W`` for
    ``m_l^2``, ``g`` the groups; a non-square filter's ``s_l^2`` is its height times its width).
    A conv along the channels (``chconv``) has one input and one output channel and ``k``
    taps at each output element: ``k * C * H * W``.

    Example:
        >>> import budgetnet
        >>> eqn1_term(budgetnet.parse("(3,8)", input_shape=(1, 4, 4)).convs[0]) == 1 * 3**2 * 8 * 4**2
        True
        >>> eqn1_term(budgetnet.parse("(3,8) chconv(5)", input_shape=(1, 4, 4)).shapes[1]) == 5 * 8 * 4 * 4
        True
    """
    layer = info.layer
    if isinstance(layer, ChannelConv):
        return layer.kernel_size * math.prod(info.out_shape)
    return (
        info.in_shape[0] // layer.groups * math.prod(layer.kernel_hw) * layer.out_channels
        * info.out_shape[1] * info.out_shape[2]
    )


def _sides_text(value) -> str:
    """A padding for the table: ``1``, ``0x3`` (rows x columns), or empty."""
    if value is None:
        return ""
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _kernel_text(row: LayerCost) -> str:
    if row.kernel_size is None:
        return ""
    if row.kind == "chconv":
        return f"{row.kernel_size} along C"
    height, width = row.kernel_size if isinstance(row.kernel_size, tuple) else (row.kernel_size, row.kernel_size)
    text = f"{height}x{width}" + (f" d{row.dilation}" if row.dilation != 1 else "")
    return text if not row.groups or row.groups == 1 else f"{text} g{row.groups}"


_SUFFIXES = (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3))


def format_count(value: int | float) -> str:
    """A count with an SI suffix: 854954688 -> '855.0M'.

    Example:
        >>> format_count(854954688)
        '855.0M'
    """
    for suffix, scale in _SUFFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.1f}{suffix}"
    return f"{value:g}" if isinstance(value, float) else str(value)
