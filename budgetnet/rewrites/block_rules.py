"""Block-level rewrite rules: the paper's equal-cost trade-offs on residual stages.

Same contract as :mod:`budgetnet.rewrites.framework` (:class:`~budgetnet.rewrites.Rule`,
:class:`~budgetnet.rewrites.Site`, :class:`~budgetnet.rewrites.Rewrite`); the rules are in
:data:`budgetnet.rewrites.RULES`. They rewrite top-level :class:`~budgetnet.graph.layers.Residual`
blocks whose bodies are convs and whose shortcut is automatic (``shortcut=None``): every new
block keeps ``shortcut=None``, so a 1x1 projection appears or disappears as the shapes
require. A *run* is the top-level blocks of one stage, in a row. Widths are solved so the
run costs what it did (Eqn. (1)), and rounded to a multiple of 4 (and of the groups).

=====================  ===============================================  =========================================
rule                   source                                           what it does
=====================  ===============================================  =========================================
``blocks_width``       He & Sun Eqns. (6)-(8) at block level; wide      a run of k blocks -> k' blocks; the
                       ResNets (Zagoruyko & Komodakis 2016)             stage's width solved (inner widths scale)
``bottleneck_blocks``  He et al. 2016 Sec. 4.1 bottlenecks; Sandler     a run of k blocks -> k' blocks; the
                       et al. 2018 expansion ratio                      bottleneck width solved
``cardinality_width``  Xie et al. 2017 Table 2 (ResNeXt)                the spatial conv takes C groups; the
                                                                        bottleneck width C*d solved
``block_filter``       He & Sun Eqns. (3), (9)-(10) inside a block      the spatial conv -> two 2x2, a 3x3 or a
                                                                        5x5; the bottleneck width solved
``block_stride``       He & Sun Sec. 4.6 (delayed subsampling);         a block's stride moves to another body
                       ResNet v1 (1x1) vs torchvision's v1.5 (3x3)      conv
``stage_pool``         He & Sun Secs. 4.5-4.6                           a pool before a block gives its stride to
                                                                        the block, or the block's stride becomes a
                                                                        pool before it
=====================  ===============================================  =========================================

Example:
    >>> import budgetnet
    >>> block = budgetnet.parse("res[(1,64) (3,64) (1,256)@none]", input_shape=(256, 56, 56))
    >>> site = CARDINALITY_WIDTH.find(block, groups=32)
    >>> result = CARDINALITY_WIDTH.rewrite(block, site)
    >>> result.new_layers, f"{result.change:+.1%}"
    ('res[(1,128) (3,128)g32 (1,256)@none]', '+0.7%')
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from typing import Callable, Sequence

from budgetnet.graph.arch import Arch, Conv, Layer, LayerShape, Pool, Residual
from budgetnet.errors import LayerSpecError, RewriteError, ShapeError
from budgetnet.graph.printing import format_layer
from budgetnet.rewrites.framework import Plan, Rule, Site, local_shapes, span_macs, span_notation
from budgetnet.rewrites.params import check_sizes, check_width_multiple, site_param

#: Solved block widths are rounded to a multiple of this (and of the groups).
BLOCK_WIDTH_MULTIPLE = 4
#: The largest width unit a solve tries (a guard against a run that never reaches its cost).
_MAX_UNITS = 1 << 20


# -- reading blocks --------------------------------------------------------------------------
def block_runs(arch: Arch) -> list[tuple[int, int, int]]:
    """Runs ``(stage, start, stop)`` of top-level residual blocks in a row, one stage each.

    Only blocks whose body is convs and whose shortcut is automatic count.

    Example:
        >>> from budgetnet.graph.zoo import ZOO
        >>> block_runs(ZOO["resnet50"])
        [(2, 2, 5), (3, 5, 9), (4, 9, 15), (5, 15, 18)]
    """
    runs: list[list[int]] = []
    for info in arch.features:
        if _is_block(arch.layers[info.index]):
            if runs and runs[-1][2] == info.index and runs[-1][0] == info.stage:
                runs[-1][2] = info.index + 1
            else:
                runs.append([info.stage, info.index, info.index + 1])
    return [tuple(run) for run in runs]


def _is_block(layer: Layer) -> bool:
    """A basic or bottleneck residual block: automatic shortcut, a body of convs and no
    depthwise conv (inverted residuals are :mod:`budgetnet.rewrites.inverted_rules`')."""
    return (
        isinstance(layer, Residual)
        and layer.shortcut is None
        and all(isinstance(c, Conv) and not c.depthwise for c in layer.body)
    )


def _inner(block: Residual) -> list[int]:
    """Positions of the body convs that carry the bottleneck width: all but the last, less
    a leading depthwise conv (its width is the block's input)."""
    positions = list(range(len(block.body) - 1))
    if positions and block.body[0].depthwise:
        positions = positions[1:]
    return positions


def _spatial(block: Residual) -> list[int]:
    """Positions of the body convs larger than 1x1."""
    return [i for i, conv in enumerate(block.body) if max(conv.kernel_hw) > 1]


def _with_body(block: Residual, body: Sequence[Conv]) -> Residual:
    return Residual(tuple(body), None, block.activation)


@lru_cache(maxsize=8192)
def _set_widths(block: Residual, width: int, groups: int | None = None) -> Residual:
    """The block with every inner conv ``width`` wide (the spatial convs in ``groups``)."""
    body = list(block.body)
    for i in _inner(block):
        conv = body[i]
        new_groups = groups if groups is not None and max(conv.kernel_hw) > 1 and not conv.depthwise else conv.groups
        body[i] = replace(conv, out_channels=width, groups=new_groups)
    if groups is not None:
        last = body[-1]
        body[-1] = replace(last, groups=1) if last.groups != 1 else last
    return _with_body(block, body)


@lru_cache(maxsize=8192)
def _scaled(block: Residual, width: int, old_width: int, multiple: int) -> Residual:
    """The block with output ``width`` and inner widths scaled by ``width / old_width``
    (rounded to ``multiple``, at least one multiple)."""
    body = list(block.body)
    for i in _inner(block):
        inner = round(body[i].out_channels * width / old_width / multiple) * multiple
        body[i] = replace(body[i], out_channels=max(inner, multiple))
    body[-1] = replace(body[-1], out_channels=width)
    return _with_body(block, body)


def _unstrided(block: Residual) -> Residual:
    return _with_body(block, [replace(conv, stride=1) for conv in block.body])


def _strided(block: Residual) -> list[int]:
    return [i for i, conv in enumerate(block.body) if conv.stride > 1]


def _guess(block: Residual, multiple: int) -> int:
    """The block's bottleneck width in units of ``multiple`` (where a width solve starts)."""
    return max(block.body[_inner(block)[0]].out_channels // multiple, 1)


def _lcm(values) -> int:
    result = 1
    for value in values:
        result = result * value // math.gcd(result, value)
    return result


# -- channel recount on fixed maps -------------------------------------------------------------
def _recount(infos: Sequence[LayerShape], layers: Sequence[Layer], channels: int) -> tuple[int, int] | None:
    """(Eqn. (1) MACs, output channels) of ``layers`` laid on the maps of ``infos``, a shape
    inference of the same layers with other widths: map sizes do not depend on widths, so a
    width solve needs one inference. ``None`` when groups do not divide the channels."""
    total = 0
    for info, layer in zip(infos, layers):
        if isinstance(layer, Conv):
            groups = channels if layer.depthwise else layer.groups
            if channels % groups or layer.out_channels % groups:
                return None
            total += channels // groups * math.prod(layer.kernel_hw) * layer.out_channels * info.out_shape[1] * info.out_shape[2]
            channels = layer.out_channels
        elif isinstance(layer, Residual):
            body = info.inner[: len(layer.body)]
            counted = _recount(body, layer.body, channels)
            if counted is None:
                return None
            macs, out = counted
            # the automatic shortcut (shapes.projection): a 1x1 conv unless the shape is kept
            if out != channels or info.out_shape[1:] != info.in_shape[1:]:
                macs += channels * out * info.out_shape[1] * info.out_shape[2]
            total, channels = total + macs, out
    return total, channels


# -- the shared machinery -----------------------------------------------------------------------
class BlockRule(Rule):
    """Base of the block rules: reading a run of blocks and solving a width on it."""

    keeps = "head"
    plans_on_span = True

    def __init__(self, width_multiple: int | None = None):
        self.width_multiple = check_width_multiple(self.name, width_multiple)

    def _blocks(self, arch: Arch, site: Site, start: int | None = None, stop: int | None = None) -> list[Residual]:
        """The blocks ``start:stop`` (default: the site's), each checked to be rewritable."""
        start = site.start if start is None else start
        stop = site.stop if stop is None else stop
        blocks = []
        for index in range(start, stop):
            layer = arch.layers[index]
            if not isinstance(layer, Residual):
                raise self._refuse(
                    site,
                    f"layer {index} is {format_layer(layer)}, not a residual block; the rule rewrites "
                    "residual blocks (a plain net has none)",
                )
            if layer.shortcut is not None or not all(isinstance(c, Conv) for c in layer.body):
                raise self._refuse(
                    site,
                    f"layer {index} {format_layer(layer)} has a written shortcut or a body that is not "
                    "all convs (a gate, norm, scale or droppath); expected an automatic shortcut and a "
                    "body of convs (gated inverted residuals: the rules mbconv_filter and mbconv_blocks)",
                )
            if any(conv.depthwise for conv in layer.body):
                raise self._refuse(
                    site,
                    f"layer {index} {format_layer(layer)} is an inverted residual (a depthwise conv "
                    "in its body); the rules mbconv_filter and mbconv_blocks rewrite those",
                )
            blocks.append(layer)
        return blocks

    def _one_block(self, arch: Arch, site: Site) -> Residual:
        """The one block a site of one layer names (``block_stride``, ``stage_pool``)."""
        if site.stop - site.start != 1:
            raise self._refuse(
                site, f"the site spans {site.stop - site.start} layers ({site.start}:{site.stop}); expected one block"
            )
        return self._blocks(arch, site)[0]

    def _multiple(self, site: Site, layers: Sequence[Layer]) -> int:
        """The width multiple: ``width_multiple``, else 4 and every group count."""
        groups = [c.groups for b in layers if isinstance(b, Residual) for c in b.body if not c.depthwise]
        if self.width_multiple is None:
            return _lcm([BLOCK_WIDTH_MULTIPLE, *groups])
        for value in groups:
            if self.width_multiple % value:
                raise self._refuse(
                    site,
                    f"groups={value} does not divide the solved widths (multiples of "
                    f"width_multiple={self.width_multiple}); expected a width_multiple that groups={value} divides",
                )
        return self.width_multiple

    def _solve(
        self, arch: Arch, site: Site, stop: int, make: Callable[[int], list[Layer]], unit: str, guess: int,
        multiple: int = 1,
    ) -> Plan:
        """The plan ``make(k)`` for ``site.start:stop`` with the integer ``k >= 1`` whose
        Eqn. (1) cost is closest to the replaced layers' (cost grows with ``k``); the width
        called ``unit`` is ``k * multiple``, about ``guess * multiple`` before the rewrite."""
        old = arch.shapes[site.start : stop]
        target = span_macs(old)
        in_shape = old[0].in_shape
        try:
            trial = local_shapes(tuple(make(1)), in_shape)
        except ShapeError as error:
            raise self._refuse(site, f"collapses a map: {error}") from None
        except LayerSpecError as error:
            raise self._refuse(site, f"gives an invalid layer: {error}") from None

        costs: dict[int, int] = {}

        def cost(k: int) -> int:
            if k not in costs:
                counted = _recount(trial, make(k), in_shape[0])
                if counted is None:
                    raise self._refuse(site, f"groups do not divide the widths of {span_notation(make(k))}")
                costs[k] = counted[0]
            return costs[k]

        if cost(1) > target:
            raise self._refuse(
                site,
                f"the {unit} solves below 1: at 1 the new layers already cost {cost(1):,} MACs, more than "
                f"the {target:,} of the replaced ones",
            )
        if cost(3) == cost(1):
            raise self._refuse(site, f"the cost does not depend on the {unit}; nothing to solve")
        # widths grow linearly with k, so the cost is a quadratic in k (nearly: inner widths are
        # rounded, and clamped at small k): three points around the old width give its root,
        # three more around that root refine it, and the integers around it are checked
        def root_from(k: int) -> float:
            step = max(k // 4, 1)  # spaced points: rounded inner widths step every few k
            c1, c2, c3 = cost(k), cost(k + step), cost(k + 2 * step)
            a = (c3 - 2 * c2 + c1) / 2
            b = c2 - c1 - a
            c = c1 - target
            x = (-b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a) if a else -c / b
            return k + x * step

        root = root_from(max(guess - 1, 1))
        root = root_from(max(int(root) - 1, 1))
        if root > _MAX_UNITS:
            raise self._refuse(site, f"the {unit} does not reach the old cost below {_MAX_UNITS * multiple}")
        low = max(int(root), 1)
        best = min(range(max(low - 1, 1), low + 3), key=lambda k: (abs(cost(k) - target), k))
        detail = f"{unit} solved {root * multiple:.1f} -> {best * multiple}"
        return Plan(site.start, stop, tuple(make(best)), detail + (f" (multiple of {multiple})" if multiple > 1 else ""))

    def _stage(self, arch: Arch, site: Site, stop: int) -> tuple[Residual, Residual]:
        """The first block of the run ``site.start:stop`` and the block that repeats after
        it (checked equal)."""
        blocks = self._blocks(arch, site, site.start, stop)
        if not blocks:
            raise self._refuse(
                site, f"layers {site.start}:{stop} hold no residual block; expected a run of blocks (and, for "
                "blocks_width, the layer after it)"
            )
        if len(blocks) > 2 and len(set(blocks[1:])) > 1:
            raise self._refuse(
                site, "the blocks after the first differ; expected a stage of one repeated block"
            )
        return blocks[0], blocks[1] if len(blocks) > 1 else _unstrided(blocks[0])


class BlockCountRule(BlockRule):
    """Base of the rules that change a run's number of blocks: sites for each run (its span
    given by :meth:`_runs`) at each of ``block_factors`` times its blocks (rounded).

    Args:
        block_factors: new block counts as multiples of the old (rounded; default halve, double).
        width_multiple: round the solved width to this (default 4 and the groups).
    """

    def __init__(self, block_factors: Sequence[float] = (0.5, 2), width_multiple: int | None = None):
        super().__init__(width_multiple)
        self.block_factors = _check_factors(self.name, block_factors)

    def _runs(self, arch: Arch) -> list[tuple[int, int, int, int]]:  # pragma: no cover - abstract
        """``(stage, start, stop, span_stop)``: a run and where its site's span ends."""
        raise NotImplementedError

    def _sites(self, arch: Arch) -> list[Site]:
        sites = []
        for stage, start, stop, span_stop in self._runs(arch):
            count = stop - start
            for factor in self.block_factors:
                blocks = max(1, round(count * factor))
                if blocks != count:
                    layers = span_notation(arch.layers[start:span_stop])
                    sites.append(Site(self.name, stage, start, span_stop, layers, blocks=blocks))
        return sites


# -- the rules -----------------------------------------------------------------------------------
class BottleneckBlocksRule(BlockCountRule):
    """Bottleneck width vs blocks: a run of k blocks becomes ``blocks`` blocks (the first
    as it was, then the repeated one); the output width of every block is kept and the
    bottleneck width (every body conv but the last: He et al. 2016's bottleneck, Sandler et
    al. 2018's expansion) is solved so the run costs what it did. He & Sun's Eqns. (6)-(8)
    at block level.

    Args: as for :class:`BlockCountRule`.

    Example:
        >>> from budgetnet.graph.zoo import ZOO
        >>> rule = BottleneckBlocksRule()
        >>> result = rule.rewrite(ZOO["resnet50"], rule.find(ZOO["resnet50"], stage=2, blocks=6))
        >>> result.new_layers, result.detail
        ('res[(1,40)bn (3,40)bn (1,256)bn@none]x6', 'bottleneck width solved 39.3 -> 40 (multiple of 4)')
    """

    name = "bottleneck_blocks"
    equation = "Eqns. (6)-(8), blocks"

    def _runs(self, arch: Arch) -> list[tuple[int, int, int, int]]:
        return [(stage, start, stop, stop) for stage, start, stop in block_runs(arch)]

    def _plan(self, arch: Arch, site: Site) -> Plan:
        count = site_param(self, site, "blocks", 1)
        first, rest = self._stage(arch, site, site.stop)
        if not _inner(first) or not _inner(rest):
            raise self._refuse(site, "a block of one conv has no bottleneck width to solve")
        multiple = self._multiple(site, [first, rest])

        def make(k: int) -> list[Layer]:
            return [_set_widths(first, k * multiple)] + [_set_widths(rest, k * multiple)] * (count - 1)

        return self._solve(arch, site, site.stop, make, "bottleneck width", _guess(first, multiple), multiple)


class BlocksWidthRule(BlockCountRule):
    """Blocks per stage vs width: a run of k blocks becomes ``blocks`` blocks and the
    stage's width (every block's output) is solved, the inner widths scaled with it, so
    the run and the layer after it (a block or conv, whose input width changes) cost what
    they did: He & Sun's depth vs width (Eqns. 6-8) at block level, as wide ResNets trade
    depth for width (Zagoruyko & Komodakis 2016). The span ends at that following layer; a
    run that feeds the head has no site (the head's input would change).

    Example:
        >>> from budgetnet.graph.zoo import ZOO
        >>> rule = BlocksWidthRule()
        >>> result = rule.rewrite(ZOO["small_residual"], rule.find(ZOO["small_residual"], stage=1, blocks=1))
        >>> result.new_layers.split(" res[")[0], f"{result.change:+.1%}"
        ('res[(3,24)bn (3,24)bn@none]', '+1.7%')
    """

    name = "blocks_width"
    equation = "Eqns. (6)-(8), stages"

    def _runs(self, arch: Arch) -> list[tuple[int, int, int, int]]:
        runs = []
        for stage, start, stop in block_runs(arch):
            following = arch.layers[stop] if stop < len(arch.layers) else None
            if isinstance(following, Conv) or (following is not None and _is_block(following)):
                runs.append((stage, start, stop, stop + 1))
        return runs

    def _plan(self, arch: Arch, site: Site) -> Plan:
        count = site_param(self, site, "blocks", 1)
        stop = site.stop - 1
        following = arch.layers[stop]
        if not (isinstance(following, Conv) or _is_block(following)):
            raise self._refuse(
                site, f"layer {stop} is {format_layer(following)}; expected the run to end before a conv or block"
            )
        first, rest = self._stage(arch, site, stop)
        old_width = first.body[-1].out_channels
        multiple = self._multiple(site, [first, rest])

        def make(k: int) -> list[Layer]:
            first_new, rest_new = (_scaled(block, k * multiple, old_width, multiple) for block in (first, rest))
            return [first_new] + [rest_new] * (count - 1) + [following]

        return self._solve(arch, site, site.stop, make, "stage width", max(old_width // multiple, 1), multiple)


class CardinalityWidthRule(BlockRule):
    """Cardinality vs width (Xie et al. 2017, Table 2): the spatial conv of every block of a
    run takes ``groups`` = C groups, and the bottleneck width C*d (every body conv but the
    last) is solved, d an integer, so the run costs what it did. On ResNet-50's first-stage
    template (1x1,64; 3x3,64; 1x1,256 on 56x56, 256 in and out) it gives d = 64, 40, 24, 14,
    4 for C = 1, 2, 4, 8, 32, as Table 2 does.

    Args:
        cardinalities: the group counts the sites offer.

    Example:
        >>> import budgetnet
        >>> block = budgetnet.parse("res[(1,64) (3,64) (1,256)@none] gap", input_shape=(256, 56, 56))
        >>> [str(CARDINALITY_WIDTH.apply(block, site)) for site in CARDINALITY_WIDTH.sites(block)][:2]
        ['res[(1,80) (3,80)g2 (1,256)@none] gap', 'res[(1,96) (3,96)g4 (1,256)@none] gap']
    """

    name = "cardinality_width"
    equation = "Xie et al. 2017 Table 2"

    def __init__(self, cardinalities: Sequence[int] = (1, 2, 4, 8, 32)):
        super().__init__(None)
        self.cardinalities = check_sizes(self.name, "cardinalities", cardinalities, 1)

    def _sites(self, arch: Arch) -> list[Site]:
        sites = []
        for stage, start, stop in block_runs(arch):
            blocks = arch.layers[start:stop]
            if not all(_one_spatial(block) and _inner(block) for block in blocks):
                continue
            current = {block.body[_spatial(block)[0]].groups for block in blocks}
            layers = span_notation(blocks)
            for groups in self.cardinalities:
                if current != {groups}:
                    sites.append(Site(self.name, stage, start, stop, layers, groups=groups))
        return sites

    def _plan(self, arch: Arch, site: Site) -> Plan:
        groups = site_param(self, site, "groups", 1)
        blocks = self._blocks(arch, site)
        for block in blocks:
            if not _one_spatial(block) or not _inner(block):
                raise self._refuse(
                    site, f"{format_layer(block)} has no single grouped-able spatial conv inside a bottleneck; "
                    "expected a body like 1x1, 3x3, 1x1"
                )

        def make(k: int) -> list[Layer]:
            return [_set_widths(block, k * groups, groups) for block in blocks]

        return self._solve(arch, site, site.stop, make, f"group width d (C={groups})", _guess(blocks[0], groups))


def _one_spatial(block: Residual) -> bool:
    spatial = _spatial(block)
    return len(spatial) == 1 and not block.body[spatial[0]].depthwise


class BlockFilterRule(BlockRule):
    """Filter size inside a block: the spatial conv of every block of a run becomes a
    ``kernel_size`` conv (2: a pair of 2x2 convs, which sees a 3x3 field, as in He & Sun's
    Eqn. (3)), and the bottleneck width is solved so the run costs what it did (their
    width vs filter size, Eqns. 9-10). A strided spatial conv passes its stride to the
    first conv of the pair (the shape check refuses a pair that does not restore the map).

    Example:
        >>> import budgetnet
        >>> block = budgetnet.parse("res[(1,64) (3,64) (1,256)@none]", input_shape=(256, 56, 56))
        >>> result = BLOCK_FILTER.rewrite(block, BLOCK_FILTER.find(block, kernel_size=5))
        >>> result.new_layers, f"{result.change:+.1%}"
        ('res[(1,44) (5,44) (1,256)@none]', '+1.9%')
    """

    name = "block_filter"
    equation = "Eqns. (3), (9)-(10), blocks"

    def __init__(self, kernel_sizes: Sequence[int] = (2, 3, 5), width_multiple: int | None = None):
        super().__init__(width_multiple)
        self.kernel_sizes = check_sizes(self.name, "kernel_sizes", kernel_sizes, 2)

    def _sites(self, arch: Arch) -> list[Site]:
        sites = []
        for stage, start, stop in block_runs(arch):
            blocks = arch.layers[start:stop]
            kernels = {_spatial_kernel(block) for block in blocks}
            if len(kernels) != 1 or None in kernels or not all(_inner(block) for block in blocks):
                continue
            layers = span_notation(blocks)
            for kernel in self.kernel_sizes:
                if kernel not in kernels:
                    sites.append(Site(self.name, stage, start, stop, layers, kernel_size=kernel, count=2 if kernel == 2 else 1))
        return sites

    def _plan(self, arch: Arch, site: Site) -> Plan:
        kernel = site_param(self, site, "kernel_size", 2)
        blocks = self._blocks(arch, site)
        if any(_spatial_kernel(block) is None for block in blocks):
            raise self._refuse(site, "expected blocks with one spatial conv (or one pair of 2x2 convs)")
        filtered = [self._refilter(block, kernel) for block in blocks]
        multiple = self._multiple(site, filtered)

        def make(k: int) -> list[Layer]:
            return [_set_widths(block, k * multiple) for block in filtered]

        return self._solve(arch, site, site.stop, make, "bottleneck width", _guess(blocks[0], multiple), multiple)

    @staticmethod
    def _refilter(block: Residual, kernel: int) -> Residual:
        spatial = _spatial(block)
        conv = block.body[spatial[0]]
        stride = max(block.body[i].stride for i in spatial)
        if kernel == 2:
            new = [replace(conv, kernel_size=2, stride=stride, padding=None), replace(conv, kernel_size=2, stride=1, padding=None)]
        else:
            new = [replace(conv, kernel_size=kernel, stride=stride, padding=None)]
        body = block.body[: spatial[0]] + tuple(new) + block.body[spatial[-1] + 1 :]
        return _with_body(block, body)


def _spatial_kernel(block: Residual) -> int | None:
    """The block's spatial filter size: one conv larger than 1x1, or 2 for a pair of 2x2."""
    spatial = _spatial(block)
    if not all(block.body[i].square for i in spatial):
        return None  # a non-square filter (1x7) has no size to trade
    kernels = [block.body[i].kernel_size for i in spatial]
    if len(spatial) == 1 and kernels[0] != 2:
        return kernels[0]
    if kernels == [2, 2] and spatial[1] == spatial[0] + 1:
        return 2
    return None


class BlockStrideRule(BlockRule):
    """Stride placement in a downsampling block: the stride moves to body conv ``stride_on``
    (1-based), e.g. from the first 1x1 (ResNet v1, He et al. 2016) to the 3x3
    (torchvision's v1.5): He & Sun's delayed subsampling (Sec. 4.6) inside a block. The
    convs before the new place then run on the larger map, so the cost moves; the
    tolerance decides. The sites move the stride of every block with one strided conv to
    each other body conv.

    Example:
        >>> from budgetnet.graph.zoo import ZOO
        >>> site = BLOCK_STRIDE.find(ZOO["resnet50"], stage=3, stride_on=2)
        >>> result = BLOCK_STRIDE.rewrite(ZOO["resnet50"], site)
        >>> result.new_layers, f"{result.change:+.1%}"
        ('res[(1,128)bn (3,128)/2bn (1,512)bn@none]', '+2.0%')
    """

    name = "block_stride"
    equation = "Sec. 4.6, blocks"

    def _sites(self, arch: Arch) -> list[Site]:
        sites = []
        for stage, start, stop in block_runs(arch):
            for index in range(start, stop):
                block = arch.layers[index]
                strided = _strided(block)
                if len(strided) != 1:
                    continue
                layers = format_layer(block)
                for position in range(1, len(block.body) + 1):
                    if position - 1 != strided[0]:
                        sites.append(Site(self.name, stage, index, index + 1, layers, stride_on=position))
        return sites

    def _plan(self, arch: Arch, site: Site) -> Plan:
        position = site_param(self, site, "stride_on", 1)
        block = self._one_block(arch, site)
        strided = _strided(block)
        if len(strided) != 1:
            raise self._refuse(site, f"{format_layer(block)} has {len(strided)} strided convs; expected exactly one")
        if position > len(block.body):
            raise self._refuse(
                site,
                f"stride_on={position}: no conv follows at body position {position}, the body has "
                f"{len(block.body)} convs; expected 1 to {len(block.body)}",
            )
        if position - 1 == strided[0]:
            raise self._refuse(site, f"stride_on={position} is where the stride already is; expected another conv")
        body = list(block.body)
        stride = body[strided[0]].stride
        body[strided[0]] = replace(body[strided[0]], stride=1, padding=None)
        body[position - 1] = replace(body[position - 1], stride=stride, padding=None)
        return Plan(site.start, site.stop, (_with_body(block, body),))


class StagePoolRule(BlockRule):
    """Pooling before a stage (He & Sun Secs. 4.5-4.6): a max pool right before a block
    gives its stride to the block's first conv and goes (``pools`` = its position), as
    ResNet's stem pool could; or a block's stride becomes a ``pool_size`` max pool before
    it (``pool_size`` = the stride). The map after the block must stay as it was.

    Example:
        >>> from budgetnet.graph.zoo import ZOO
        >>> site = STAGE_POOL.find(ZOO["resnet50"], pools=(1,))
        >>> result = STAGE_POOL.rewrite(ZOO["resnet50"], site)
        >>> result.new_layers, f"{result.change:+.1%}"
        ('res[(1,64)/2bn (3,64)bn (1,256)bn@none]', '+0.0%')
    """

    name = "stage_pool"
    equation = "Secs. 4.5-4.6, blocks"

    def _sites(self, arch: Arch) -> list[Site]:
        sites = []
        layers = arch.layers
        for stage, start, stop in block_runs(arch):
            for index in range(start, stop):
                block, before = layers[index], layers[index - 1] if index else None
                strided = _strided(block)
                if isinstance(before, Pool) and before.stride > 1 and not strided:
                    notation = span_notation(layers[index - 1 : index + 1])
                    sites.append(Site(self.name, arch.shapes[index - 1].stage, index - 1, index + 1, notation, pools=(index - 1,)))
                elif len(strided) == 1 and not isinstance(before, Pool):
                    stride = block.body[strided[0]].stride
                    sites.append(Site(self.name, stage, index, index + 1, format_layer(block), pool_size=stride))
        return sites

    def _plan(self, arch: Arch, site: Site) -> Plan:
        if site.pools is not None:
            if len(site.pools) != 1 or site.pools[0] != site.start or site.stop != site.start + 2:
                raise self._refuse(site, f"pools={site.pools!r}; expected the one pool at the site's start, before a block")
            pool = arch.layers[site.start]
            if not isinstance(pool, Pool) or pool.stride == 1:
                raise self._refuse(site, f"layer {site.start} is {format_layer(pool)}; expected a pool with stride > 1")
            (block,) = self._blocks(arch, site, site.start + 1, site.stop)
            if _strided(block):
                raise self._refuse(site, f"{format_layer(block)} strides already; expected a stride-1 block after the pool")
            body = list(block.body)
            body[0] = replace(body[0], stride=pool.stride, padding=None)
            return Plan(site.start, site.stop, (_with_body(block, body),))
        size = site_param(self, site, "pool_size", 2)
        block = self._one_block(arch, site)
        if len(_strided(block)) != 1:
            raise self._refuse(site, f"{format_layer(block)} does not stride once; expected one strided conv to replace by a pool")
        return Plan(site.start, site.stop, (Pool(size), _unstrided(block)))


def _check_factors(rule: str, factors) -> tuple[float, ...]:
    try:
        values = tuple(factors)
    except TypeError:
        values = None
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in values):
        raise RewriteError(rule, None, f"block_factors={factors!r} is invalid; expected a non-empty list of numbers > 0")
    return values


BLOCKS_WIDTH = BlocksWidthRule()
BOTTLENECK_BLOCKS = BottleneckBlocksRule()
CARDINALITY_WIDTH = CardinalityWidthRule()
BLOCK_FILTER = BlockFilterRule()
BLOCK_STRIDE = BlockStrideRule()
STAGE_POOL = StagePoolRule()

#: The block rules with default parameters.
BLOCK_RULES: tuple[Rule, ...] = (BLOCKS_WIDTH, BOTTLENECK_BLOCKS, CARDINALITY_WIDTH, BLOCK_FILTER, BLOCK_STRIDE, STAGE_POOL)

__all__ = [
    "BLOCK_FILTER",
    "BLOCK_RULES",
    "BLOCK_STRIDE",
    "BLOCKS_WIDTH",
    "BOTTLENECK_BLOCKS",
    "CARDINALITY_WIDTH",
    "STAGE_POOL",
    "BlockCountRule",
    "BlockFilterRule",
    "BlockRule",
    "BlockStrideRule",
    "BlocksWidthRule",
    "BottleneckBlocksRule",
    "CardinalityWidthRule",
    "StagePoolRule",
    "block_runs",
]
