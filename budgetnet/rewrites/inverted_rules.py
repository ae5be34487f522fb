"""Rewrite rules for inverted-residual (MBConv) stages: MobileNetV2/V3, MnasNet, EfficientNet.

An *MBConv unit* is a 1x1 expansion conv (the *hidden* width), a depthwise k x k conv, an
optional gate (squeeze-excitation) and a linear 1x1 projection, then optionally a droppath;
either inside a ``res[...]`` block (automatic shortcut) or on the main chain (the first
block of a stage, which strides or changes the width). A *stage* is one main-chain unit
followed by the residual units after it, or a run of residual units (one output width).

=====================  =============================================  ==================================
rule                   source                                         what it does
=====================  =============================================  ==================================
``mbconv_filter``      Tan et al. 2019 (MnasNet) and Tan & Le 2019    every depthwise conv of a stage ->
                       (EfficientNet) choose 3x3 or 5x5 per stage;    ``kernel_size``; the hidden widths
                       He & Sun's width vs filter size (Eqns. 9-10)   solved so the stage costs the same
``mbconv_blocks``      expansion ratio vs blocks per stage (Sandler   a stage of k units -> ``blocks``
                       et al. 2018; EfficientNet's depth vs width);   units; the hidden widths solved
                       He & Sun's depth vs width (Eqns. 6-8)
=====================  =============================================  ==================================

Both keep everything but the hidden widths, the depthwise kernel and the number of units:
the output widths, strides, BN settings, activations, droppath rates, and the gates' squeeze
width as a function of the block's input (the SE reduction ratio): a squeeze equal to
``make_divisible(hidden / 4, 8)`` (MobileNetV3, torchvision) is recomputed from the new hidden
width; any other (EfficientNet's ``max(1, in / 4)``) depends on the block's input width,
which these rules never change, so it stays as written. An ECA gate (``gate[gpool chconv(k)
sigmoid]``) has no width of its own: it gates the new hidden width as it is. Hidden widths
are scaled together by one factor, solved so the stage's Eqn. (1) cost (from
:mod:`budgetnet.cost.complexity`, on shapes from
:func:`~budgetnet.rewrites.framework.local_shapes`) is closest to the old, and rounded to
multiples of 8 (MobileNet's ``make_divisible``).

Example:
    >>> from budgetnet.graph.zoo import ZOO
    >>> site = MBCONV_FILTER.find(ZOO["efficientnet_b0"], start=9, kernel_size=3)   # the 5x5 stage of 40
    >>> result = MBCONV_FILTER.rewrite(ZOO["efficientnet_b0"], site)
    >>> result.detail, f"{result.change:+.1%}"
    ('hidden widths 144, 240 -> 168, 280 (scale 1.17, multiples of 8)', '+0.2%')
    >>> result.new_layers.split(" res[")[1]
    '(1,280)bn@silu (3,280)dwbn@silu gate[gpool (1,10)@silu (1,280)@sigmoid] (1,40)bn@none droppath(0.05)]@none'
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Sequence

from budgetnet.checks import is_int
from budgetnet.errors import LayerSpecError, RewriteError, ShapeError
from budgetnet.graph.arch import Arch
from budgetnet.graph.layers import Conv, DropPath, Gate, Layer, Residual
from budgetnet.graph.printing import format_layer
from budgetnet.rewrites.framework import Plan, Rule, Site, local_shapes, span_macs, span_notation
from budgetnet.rewrites.params import check_sizes, site_param
from budgetnet.rewrites.roles import derive, is_dense

#: Hidden widths are rounded to a multiple of this (MobileNet's ``make_divisible(v, 8)``).
MBCONV_WIDTH_MULTIPLE = 8


# -- reading MBConv units -----------------------------------------------------------------------
@dataclass(frozen=True)
class MBConv:
    """One inverted-residual unit: its layers as written, by role (``None`` when absent).

    Example:
        >>> unit = read_unit((Conv(1, 96, norm="batch"), Conv(3, 96, depthwise=True), Conv(1, 24, activation="none")))
        >>> unit.hidden, unit.kernel_size, unit.gate is None
        (96, 3, True)
    """

    expand: Conv | None
    depthwise: Conv
    gate: Gate | None
    project: Conv
    drop: DropPath | None = None

    @property
    def hidden(self) -> int:
        """The expanded width (the depthwise conv's)."""
        return self.depthwise.out_channels

    @property
    def kernel_size(self) -> int:
        return self.depthwise.kernel_size

    def layers(self) -> tuple[Layer, ...]:
        """The unit's layers in order."""
        return tuple(x for x in (self.expand, self.depthwise, self.gate, self.project, self.drop) if x is not None)


def read_unit(layers: Sequence[Layer]) -> MBConv | None:
    """The :class:`MBConv` that ``layers`` are, or ``None``: an optional non-linear dense 1x1
    expansion, a depthwise conv of multiplier 1, an optional gate, a dense 1x1 projection and
    an optional droppath, nothing else (ConvNeXt's depthwise-first block is not one).

    Example:
        >>> read_unit((Conv(3, 16, depthwise=True), Conv(1, 16, activation="none"))).expand is None
        True
        >>> read_unit((Conv(3, 16), Conv(1, 16))) is None
        True
    """
    layers = list(layers)
    drop = layers.pop() if layers and isinstance(layers[-1], DropPath) else None
    expand = layers.pop(0) if layers and _is_expand(layers[0]) else None
    if len(layers) not in (2, 3):
        return None
    depthwise, project = layers[0], layers[-1]
    gate = layers[1] if len(layers) == 3 else None
    if not (isinstance(depthwise, Conv) and depthwise.depthwise and depthwise.dilation == 1 and depthwise.square):
        return None
    if expand is not None and expand.out_channels != depthwise.out_channels:
        return None
    if len(layers) == 3 and not isinstance(gate, Gate):
        return None
    if not (isinstance(project, Conv) and project.kernel_size == 1 and is_dense(project) and project.stride == 1):
        return None
    return MBConv(expand, depthwise, gate, project, drop)


def _is_expand(layer: Layer) -> bool:
    return isinstance(layer, Conv) and layer.kernel_size == 1 and is_dense(layer) and layer.stride == 1 and layer.activation != "none"


@dataclass(frozen=True)
class Stage:
    """An MBConv stage in ``arch.layers``: positions ``start:stop``, an optional main-chain
    unit first (``chain``, its layers ``start:start + len(chain.layers())``), then the
    residual blocks (each with its unit).

    Example:
        >>> from budgetnet.graph.zoo import ZOO
        >>> stage = mbconv_stages(ZOO["efficientnet_b0"])[1]
        >>> [unit.hidden for unit in stage.units], stage.chain.depthwise.stride
        ([144, 240], 2)
    """

    start: int
    stop: int
    chain: MBConv | None
    blocks: tuple[tuple[Residual, MBConv], ...]

    @property
    def units(self) -> list[MBConv]:
        return ([self.chain] if self.chain else []) + [unit for _, unit in self.blocks]


def mbconv_stages(arch: Arch) -> list[Stage]:
    """The MBConv stages of ``arch`` that end with a residual block, in order.

    Example:
        >>> from budgetnet.graph.zoo import ZOO
        >>> [(s.start, s.stop, len(s.units)) for s in mbconv_stages(ZOO["efficientnet_b0"])][:3]
        [(4, 9, 2), (9, 14, 2), (14, 20, 3)]
    """
    layers, stages, index = arch.layers, [], 0
    while index < len(layers):
        start, chain = index, None
        if not _residual_unit(layers[index]):
            chain, length = _chain_unit(layers, index)
            if chain is None:
                index += 1
                continue
            index += length
        blocks = []
        while index < len(layers) and _residual_unit(layers[index]):
            blocks.append((layers[index], _residual_unit(layers[index])))
            index += 1
        if blocks:
            stages.append(Stage(start, index, chain, tuple(blocks)))
    return stages


def _residual_unit(layer: Layer) -> MBConv | None:
    if isinstance(layer, Residual) and layer.shortcut is None:
        return read_unit(layer.body)
    return None


def _chain_unit(layers: Sequence[Layer], index: int) -> tuple[MBConv | None, int]:
    """The main-chain unit starting at ``index`` (no droppath: there is no add), and its length."""
    for length in (4, 3, 2):
        unit = read_unit(layers[index : index + length])
        if unit is not None and unit.drop is None:
            return unit, length
    return None, 0


def squeeze_follows_hidden(unit: MBConv) -> bool:
    """Whether the unit's gate squeezes to ``make_divisible(hidden / 4, 8)`` (MobileNetV3's
    rule), so the squeeze width follows the hidden width; otherwise it is a function of the
    block's input (EfficientNet's ``max(1, in / 4)``) and stays.

    Example:
        >>> from budgetnet.graph.layers import GlobalPool
        >>> gate = Gate((GlobalPool(), Conv(1, 32), Conv(1, 120, activation="hardsigmoid")))
        >>> squeeze_follows_hidden(MBConv(Conv(1, 120), Conv(5, 120, depthwise=True), gate, Conv(1, 40)))
        True
    """
    squeeze = _squeeze_conv(unit.gate)
    return squeeze is not None and squeeze.out_channels == make_divisible(unit.hidden / 4)


def make_divisible(value: float, divisor: int = MBCONV_WIDTH_MULTIPLE) -> int:
    """MobileNet's channel rounding: the nearest multiple of ``divisor``, never 10% below ``value``.

    Example:
        >>> make_divisible(30), make_divisible(18)
        (32, 24)
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _squeeze_conv(gate: Gate | None) -> Conv | None:
    convs = [layer for layer in (gate.body if gate else ()) if isinstance(layer, Conv)]
    return convs[0] if len(convs) == 2 else None


@lru_cache(maxsize=8192)
def with_hidden(unit: MBConv, hidden: int, kernel_size: int | None = None) -> MBConv:
    """``unit`` with another hidden width (and depthwise kernel): the expansion, the
    depthwise conv and the gate's last conv take ``hidden``; the squeeze follows it only
    under :func:`squeeze_follows_hidden`. A gate without a conv (ECA's ``gate[gpool chconv(k)
    sigmoid]``) has no width of its own and stays as written: it gates whatever width it is
    given. A written "same" padding of the depthwise conv is rewritten for the new kernel (an
    automatic one stays automatic).

    Example:
        >>> unit = read_unit((Conv(1, 96, norm="batch"), Conv(3, 96, 2, 1, depthwise=True), Conv(1, 24, activation="none")))
        >>> [format_layer(layer) for layer in with_hidden(unit, 112, 5).layers()]
        ['(1,112)bn', '(5,112)/2p2dw', '(1,24)@none']
    """
    if hidden == unit.hidden and kernel_size in (None, unit.kernel_size):
        return unit
    changes = {"out_channels": hidden}
    if kernel_size is not None:
        changes["kernel_size"] = kernel_size
    padding = unit.depthwise.padding
    if padding is not None and kernel_size is not None:
        padding = (kernel_size - 1) // 2
    depthwise = derive(unit.depthwise, padding=padding, **changes)
    expand = derive(unit.expand, out_channels=hidden) if unit.expand else None
    gate = unit.gate
    body = list(gate.body) if gate is not None else []
    convs = [i for i, layer in enumerate(body) if isinstance(layer, Conv)]
    if convs:
        if squeeze_follows_hidden(unit):
            body[convs[0]] = derive(body[convs[0]], out_channels=make_divisible(hidden / 4))
        body[convs[-1]] = derive(body[convs[-1]], out_channels=hidden)
        gate = replace(gate, body=tuple(body))
    return replace(unit, expand=expand, depthwise=depthwise, gate=gate)


# -- the rules ----------------------------------------------------------------------------------
class MBConvRule(Rule):
    """Base of the MBConv rules: reading a stage at a site and solving its hidden widths."""

    keeps = "head"
    plans_on_span = True

    def __init__(self, width_multiple: int = MBCONV_WIDTH_MULTIPLE):
        if not is_int(width_multiple, 1):
            raise RewriteError(self.name, None, f"width_multiple={width_multiple!r} is invalid; expected an integer >= 1")
        self.width_multiple = width_multiple

    def _sites(self, arch: Arch) -> list[Site]:
        sites = []
        for stage in mbconv_stages(arch):
            if all(unit.expand is not None for unit in stage.units):
                layers = span_notation(arch.layers[stage.start : stage.stop])
                for params in self._choices(stage):
                    sites.append(Site(self.name, arch.shapes[stage.start].stage, stage.start, stage.stop, layers, **params))
        return sites

    def _choices(self, stage: Stage) -> list[dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _stage(self, arch: Arch, site: Site) -> Stage:
        """The stage at the site, checked to be exactly one MBConv stage with expansions."""
        found = [stage for stage in mbconv_stages(arch) if stage.start == site.start]
        if not found or found[0].stop != site.stop:
            raise self._refuse(
                site,
                f"layers {site.start}:{site.stop} are not one inverted-residual stage (an optional "
                "main-chain 1x1 expansion, depthwise conv, gate and linear 1x1 projection, then residual "
                "blocks of the same); expected a site from sites(arch)",
            )
        stage = found[0]
        if any(unit.expand is None for unit in stage.units):
            raise self._refuse(
                site, "a unit has no 1x1 expansion: its depthwise width is its input's, so no hidden width to solve"
            )
        return stage

    def _solve(self, arch: Arch, site: Site, make, old_hidden: int) -> Plan:
        """The plan ``make(scale)`` whose Eqn. (1) cost is closest to the replaced layers',
        ``scale`` a multiple of ``1 / (old_hidden / width_multiple)`` (the last unit's hidden
        width steps by the width multiple). Cost grows with the scale; each cost is
        :func:`span_macs` of :func:`local_shapes` (budgetnet.cost.complexity's Eqn. (1))."""
        old = arch.shapes[site.start : site.stop]
        target, in_shape = span_macs(old), old[0].in_shape
        unit = self.width_multiple
        costs: dict[int, int] = {}

        def cost(steps: int) -> int:
            if steps not in costs:
                try:
                    costs[steps] = span_macs(local_shapes(tuple(make(steps * unit / old_hidden)), in_shape))
                except ShapeError as error:
                    raise self._refuse(site, f"collapses a map: {error}") from None
                except LayerSpecError as error:
                    raise self._refuse(site, f"gives an invalid layer: {error}") from None
            return costs[steps]

        if cost(1) > target:
            raise self._refuse(
                site,
                f"the hidden width solves below {unit}: at {unit} the new layers already cost {cost(1):,} MACs, "
                f"more than the {target:,} of the replaced ones",
            )
        # every conv of a unit is linear in its hidden width (the gate's too, while its squeeze
        # stays), so a secant through the old width and twice it lands next to the root; the
        # integers around it are then walked until they bracket the old cost
        start = max(1, round(old_hidden / unit))
        slope = (cost(2 * start) - cost(start)) / start
        if slope <= 0:
            raise self._refuse(site, "the cost does not grow with the hidden width; nothing to solve")
        low = max(1, int(start + (target - cost(start)) / slope))
        while low > 1 and cost(low) > target:
            low -= 1
        while cost(low + 1) <= target:
            low += 1
            if low * unit > 1 << 20:
                raise self._refuse(site, f"the hidden width does not reach the old cost below {low * unit}")
        best = min((low, low + 1), key=lambda steps: (abs(cost(steps) - target), steps))
        layers = tuple(make(best * unit / old_hidden))
        before = ", ".join(map(str, hidden_widths(arch.layers[site.start : site.stop])))
        after = ", ".join(map(str, hidden_widths(layers)))
        text = f"hidden widths {before} -> {after} (scale {best * unit / old_hidden:.2f}, multiples of {unit})"
        return Plan(site.start, site.stop, layers, text)


def hidden_widths(layers: Sequence[Layer]) -> list[int]:
    """The hidden (depthwise) widths of the MBConv units among ``layers``, in order.

    Example:
        >>> hidden_widths([Conv(1, 96), Conv(3, 96, depthwise=True), Conv(1, 24, activation="none")])
        [96]
    """
    widths = []
    for layer in layers:
        inner = layer.body if isinstance(layer, Residual) else (layer,)
        widths += [conv.out_channels for conv in inner if isinstance(conv, Conv) and conv.depthwise]
    return widths


def _scaled(unit: MBConv, scale: float, multiple: int, kernel_size: int | None = None) -> MBConv:
    hidden = max(multiple, round(unit.hidden * scale / multiple) * multiple)
    return with_hidden(unit, hidden, kernel_size)


def _write(stage: Stage, chain: MBConv | None, blocks: Sequence[tuple[Residual, MBConv]]) -> list[Layer]:
    layers: list[Layer] = list(chain.layers()) if chain else []
    layers += [replace(block, body=unit.layers()) for block, unit in blocks]
    return layers


class MBConvFilterRule(MBConvRule):
    """Depthwise filter size vs expansion width in an MBConv stage: every depthwise conv
    takes ``kernel_size`` (3x3 <-> 5x5, as MnasNet and EfficientNet choose per stage), and
    the hidden widths (expansion, depthwise, gate output) are scaled by one factor solved
    so the stage costs what it did: He & Sun's width vs filter size (Eqns. 9-10) on an
    inverted residual, where a 5x5 depthwise conv costs ``25 * hidden * m^2`` instead of
    ``9 * hidden * m^2`` and the 1x1 convs ``2 * in * hidden * m^2``.

    Args:
        kernel_sizes: the depthwise sizes the sites offer (default 3 and 5).
        width_multiple: round hidden widths to this (default 8).

    Example:
        >>> from budgetnet.graph.zoo import ZOO
        >>> arch = ZOO["mobilenet_v3_large"]
        >>> result = MBCONV_FILTER.rewrite(arch, MBCONV_FILTER.find(arch, start=6, kernel_size=3))
        >>> result.detail, f"{result.change:+.2%}"
        ('hidden widths 72, 120, 120 -> 80, 136, 136 (scale 1.13, multiples of 8)', '-0.36%')
        >>> result.new_layers.split(" gate[")[2].split("]")[0]   # squeeze: make_divisible(136 / 4, 8)
        'gpool (1,32) (1,136)@hardsigmoid'
    """

    name = "mbconv_filter"
    equation = "Eqns. (9)-(10), MBConv"

    def __init__(self, kernel_sizes: Sequence[int] = (3, 5), width_multiple: int = MBCONV_WIDTH_MULTIPLE):
        super().__init__(width_multiple)
        self.kernel_sizes = check_sizes(self.name, "kernel_sizes", kernel_sizes, 1)

    def _choices(self, stage: Stage) -> list[dict]:
        kernels = {unit.kernel_size for unit in stage.units}
        if len(kernels) != 1:
            return []
        return [{"kernel_size": k} for k in self.kernel_sizes if k not in kernels]

    def _plan(self, arch: Arch, site: Site) -> Plan:
        kernel = site_param(self, site, "kernel_size", 1)
        stage = self._stage(arch, site)
        if {unit.kernel_size for unit in stage.units} == {kernel}:
            raise self._refuse(site, f"kernel_size={kernel} is the stage's depthwise size already; expected another")
        if kernel % 2 == 0:
            raise self._refuse(site, f"kernel_size={kernel} is even; expected an odd depthwise size that keeps the map")
        for unit in stage.units:
            padding = unit.depthwise.padding
            if padding is not None and padding != (unit.kernel_size - 1) // 2:
                raise self._refuse(
                    site,
                    f"the depthwise conv {format_layer(unit.depthwise)} has a written padding={padding}, not "
                    f"the 'same' padding {(unit.kernel_size - 1) // 2} of its {unit.kernel_size}x"
                    f"{unit.kernel_size} kernel; expected a 'same' or automatic padding to rewrite for the new size",
                )
        multiple = self.width_multiple

        def make(scale: float) -> list[Layer]:
            chain = _scaled(stage.chain, scale, multiple, kernel) if stage.chain else None
            blocks = [(block, _scaled(unit, scale, multiple, kernel)) for block, unit in stage.blocks]
            return _write(stage, chain, blocks)

        return self._solve(arch, site, make, stage.units[-1].hidden)


class MBConvBlocksRule(MBConvRule):
    """Expansion ratio vs blocks per stage: a stage of k MBConv units becomes ``blocks``
    units (the main-chain unit stays first; residual blocks are dropped from the end, or the
    last is repeated, droppath rate included), and the hidden widths are scaled by one
    factor solved so the stage costs what it did: more blocks with a smaller expansion, or
    fewer with a larger (He & Sun's depth vs width, Eqns. 6-8, on inverted residuals).

    Args:
        block_factors: new unit counts as multiples of the old (rounded; default halve, double).
        width_multiple: round hidden widths to this (default 8).

    Example:
        >>> from budgetnet.graph.zoo import ZOO
        >>> arch = ZOO["efficientnet_b0"]
        >>> result = MBCONV_BLOCKS.rewrite(arch, MBCONV_BLOCKS.find(arch, start=26, blocks=8))
        >>> result.detail, f"{result.change:+.1%}"
        ('hidden widths 672, 1152, 1152, 1152 -> 336, 576, 576, 576, 576, 576, 576, 576 (scale 0.50, multiples of 8)', '+0.2%')
    """

    name = "mbconv_blocks"
    equation = "Eqns. (6)-(8), MBConv"

    def __init__(self, block_factors: Sequence[float] = (0.5, 2), width_multiple: int = MBCONV_WIDTH_MULTIPLE):
        super().__init__(width_multiple)
        try:
            factors = tuple(block_factors)
        except TypeError:
            factors = ()
        if not factors or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not f > 0 for f in factors):
            raise RewriteError(self.name, None, f"block_factors={block_factors!r} is invalid; expected a non-empty list of numbers > 0")
        self.block_factors = factors

    def _choices(self, stage: Stage) -> list[dict]:
        count = len(stage.units)
        counts = sorted({max(1, round(count * factor)) for factor in self.block_factors} - {count})
        return [{"blocks": blocks} for blocks in counts]

    def _plan(self, arch: Arch, site: Site) -> Plan:
        count = site_param(self, site, "blocks", 1)
        stage = self._stage(arch, site)
        if count == len(stage.units):
            raise self._refuse(site, f"blocks={count} is the stage's count already; expected another")
        residual = count - (1 if stage.chain else 0)
        kept = list(stage.blocks[:residual]) + [stage.blocks[-1]] * max(0, residual - len(stage.blocks))
        multiple = self.width_multiple

        def make(scale: float) -> list[Layer]:
            chain = _scaled(stage.chain, scale, multiple) if stage.chain else None
            return _write(stage, chain, [(block, _scaled(unit, scale, multiple)) for block, unit in kept])

        return self._solve(arch, site, make, stage.units[-1].hidden)


MBCONV_FILTER = MBConvFilterRule()
MBCONV_BLOCKS = MBConvBlocksRule()

#: The inverted-residual rules with default parameters.
INVERTED_RULES: tuple[Rule, ...] = (MBCONV_FILTER, MBCONV_BLOCKS)

__all__ = [
    "INVERTED_RULES",
    "MBCONV_BLOCKS",
    "MBCONV_FILTER",
    "MBConv",
    "MBConvBlocksRule",
    "MBConvFilterRule",
    "MBConvRule",
    "Stage",
    "hidden_widths",
    "make_divisible",
    "mbconv_stages",
    "read_unit",
    "squeeze_follows_hidden",
    "with_hidden",
]
