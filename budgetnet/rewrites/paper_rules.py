"""The paper's layer-replacement rules (Sec. 4), as first-class objects.

A *rewrite* replaces a few layers of an :class:`~budgetnet.Arch` by others of nearly the
same Eqn. (1) cost and leaves the rest untouched. Each rule finds its *sites* (every place
and parameterisation where it applies) and applies one of them as a replacement of the
layers ``start:stop`` (see :class:`~budgetnet.rewrites.framework.Proposal`: the cost and shapes are worked out on that
span, the new Arch is built last). The new convs are written with ``padding=None``, so shape inference
re-chooses paddings by the paper's rules and the stage map sizes stay as they were.

=====================  ====================  ===============================================
rule                   paper                 what it does
=====================  ====================  ===============================================
``depth_filter``       Sec. 4.1, Eqns. 3-5   each s x s conv -> a cascade of t x t convs
``depth_width``        Sec. 4.2, Eqns. 6-8   k convs -> k' > k narrower convs, width solved
``width_filter``       Sec. 4.3, Eqns. 9-10  k convs -> k convs of another size, width solved
``add_pool``           Sec. 4.5, Eqn. 11     a p/p pool moves the last convs to a new stage
``delay_pool``         Sec. 4.6              a pool's stride moves to the next conv
=====================  ====================  ===============================================

Costs come from :mod:`budgetnet.cost.complexity` and shapes from :mod:`budgetnet.graph.arch`; a width
is solved from the real Eqn. (1) cost of candidate Archs (it is a quadratic in the width,
since map sizes do not depend on widths), then rounded to a multiple. Every application
returns a :class:`Rewrite` report (cost before, after, relative change); a rewrite that
does not apply, breaks a shape or moves the cost beyond ``tolerance`` raises
:class:`~budgetnet.errors.RewriteError` naming the rule, the site and the reason.

Example:
    >>> from search_spaces.paper import MODELS
    >>> from budgetnet.rewrites import DEPTH_FILTER, rewrite
    >>> site = DEPTH_FILTER.find(MODELS["A"], stage=3, kernel_size=2)
    >>> site.where()
    "stage 3 layers 4:7 '(3,256)x3' (kernel_size=2, count=2)"
    >>> result = rewrite(MODELS["A"], site)
    >>> result.after == MODELS["B"], f"{result.change:+.1%}"
    (True, '-3.9%')
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from budgetnet.checks import is_int
from budgetnet.graph.arch import Arch, Conv, Layer, Pool
from budgetnet.graph.printing import format_layer
from budgetnet.rewrites.framework import Plan, Rule, Site, span_notation
from budgetnet.rewrites.params import check_sizes, check_width_multiple, site_param
from budgetnet.rewrites.roles import conv_groups, conv_kind, derive, is_plain_conv


class DepthFilterRule(Rule):
    """Depth vs filter size (Sec. 4.1, Eqns. 3-5): each s x s conv becomes a cascade of
    ``count`` t x t convs (t < s); the first maps the conv's input to its width, the rest
    keep the width. Eqn. (3): ``256*3^2*256 => 256*2^2*256 + 256*2^2*256`` (8/9 of the
    cost); Eqn. (4): ``64*5^2*128 => 64*3^2*128 + 128*3^2*128``; Eqn. (5): 5x5 -> four 2x2.

    Generalised to any stage, any s and t: the sites are the maximal runs of identical
    stride-1 convs (the notation's ``(s,n)xk`` groups), every conv of the run replaced, and
    each t whose cascade of ``count = (s-1)/(t-1)`` convs sees exactly the s x s field
    (3 -> 2+2, 5 -> 3+3, 5 -> 2x4, 7 -> 4+4, 7 -> 3x3, ...). A hand-made site may use any
    t < s and any count >= 2.

    Example:
        >>> from search_spaces.paper import MODELS
        >>> [site.where() for site in DepthFilterRule().sites(MODELS["A"])]  # doctest: +NORMALIZE_WHITESPACE
        ["stage 2 layers 2:3 '(5,128)' (kernel_size=2, count=4)",
         "stage 2 layers 2:3 '(5,128)' (kernel_size=3, count=2)",
         "stage 3 layers 4:7 '(3,256)x3' (kernel_size=2, count=2)"]
    """

    name = "depth_filter"
    equation = "Eqns. (3)-(5)"

    def _sites(self, arch: Arch) -> list[Site]:
        sites = []
        for stage, start, stop in conv_groups(arch, lambda info: arch.layers[info.index]):
            size = arch.layers[start].kernel_size
            for kernel in range(2, size):
                if (size - 1) % (kernel - 1):
                    continue
                count = (size - 1) // (kernel - 1)
                layers = span_notation(arch.layers[start:stop])
                sites.append(Site(self.name, stage, start, stop, layers, kernel_size=kernel, count=count))
        return sites

    def _plan(self, arch: Arch, site: Site) -> Plan:
        kernel = site_param(self, site, "kernel_size", 1)
        count = site_param(self, site, "count", 2)
        layers: list[Layer] = []
        for info in self._conv_span(arch, site, same_kernel=False):
            if info.layer.kernel_size <= kernel:
                raise self._refuse(
                    site,
                    f"layer {info.index} {format_layer(arch.layers[info.index])} is not larger than "
                    f"{kernel}x{kernel}; expected a filter size above kernel_size={kernel}",
                )
            layers += [derive(arch.layers[info.index], kernel_size=kernel)] * count
        return Plan(site.start, site.stop, tuple(layers))


class DepthWidthRule(Rule):
    """Depth vs width (Sec. 4.2, Eqns. 6-8): k convs of one filter size become ``depth``
    k' > k convs of that size; the first input and the last output width are kept and the
    k'-1 others take one width solved from Eqn. (1). Eqn. (6): A's three 3x3 convs ->
    ``(3,160)x5 + (3,256)`` (F); Eqn. (7): -> ``(3,128)x8 + (3,256)`` (G); Eqn. (8):
    ``(3,128)x2`` -> ``(3,64)x3 + (3,128)`` (H, I).

    Generalised to any stage and filter size: the sites are the maximal runs of stride-1
    convs of one filter size in a stage, with the depth multiplied by each of
    ``depth_factors`` (the paper doubles and triples); a hand-made site may use any depth
    above k.

    Args:
        depth_factors: the new depths the sites offer, as multiples of the old (2 gives F
            and H, 3 gives G).
        width_multiple: round the solved width to this multiple; ``None`` uses the largest
            power of two up to 32 that divides the kept output width.

    Example:
        >>> from search_spaces.paper import MODELS
        >>> site = DepthWidthRule().find(MODELS["A"], stage=3, depth=6)
        >>> DepthWidthRule().apply(MODELS["A"], site) == MODELS["F"]
        True
    """

    name = "depth_width"
    equation = "Eqns. (6)-(8)"

    def __init__(self, depth_factors: Sequence[int] = (2, 3), width_multiple: int | None = None):
        self.depth_factors = check_sizes(self.name, "depth_factors", depth_factors, 2)
        self.width_multiple = check_width_multiple(self.name, width_multiple)

    def _sites(self, arch: Arch) -> list[Site]:
        sites = []
        for stage, start, stop in conv_groups(arch, lambda info: info.layer.kernel_size):
            layers = span_notation(arch.layers[start:stop])
            for factor in self.depth_factors:
                sites.append(Site(self.name, stage, start, stop, layers, depth=factor * (stop - start)))
        return sites

    def _plan(self, arch: Arch, site: Site) -> Plan:
        infos = self._conv_span(arch, site, same_kernel=True)
        depth = site_param(self, site, "depth", len(infos) + 1)
        template, last = arch.layers[infos[0].index], arch.layers[infos[-1].index]

        def make(width: int) -> list[Layer]:
            return [derive(template, out_channels=width)] * (depth - 1) + [derive(last)]

        out = last.out_channels

        return self._solve_width(arch, site, make, out)


class WidthFilterRule(Rule):
    """Width vs filter size (Sec. 4.3, Eqns. 9-10): k convs of one filter size become k
    convs of another (``kernel_size``); the last output width is kept and the k-1 others
    take one width solved from Eqn. (1). B's ``(2,256)x6`` <-> F's ``(3,160)x5 + (3,256)``
    (Eqn. 9), and E's ``(2,128)x4`` <-> I's ``(3,64)x3 + (3,128)`` (Tables 1-2; Eqn. 10
    prints a 96-wide layer that neither table model has).

    Generalised to any stage, k >= 2 and any pair of filter sizes: the sites are the
    maximal runs of stride-1 convs of one filter size in a stage, with every size in
    ``kernel_sizes`` other than the current one.

    Args:
        kernel_sizes: the filter sizes the sites offer (the paper's 2 and 3 by default).
        width_multiple: as for :class:`DepthWidthRule`.

    Example:
        >>> from search_spaces.paper import MODELS
        >>> site = WidthFilterRule().find(MODELS["B"], stage=3, kernel_size=3)
        >>> str(WidthFilterRule().apply(MODELS["B"], site))
        '(7,64)/2 3/3 (5,128) 2/2 (3,160)x5 + (3,256)'
    """

    name = "width_filter"
    equation = "Eqns. (9)-(10)"

    def __init__(self, kernel_sizes: Sequence[int] = (2, 3), width_multiple: int | None = None):
        self.kernel_sizes = check_sizes(self.name, "kernel_sizes", kernel_sizes, 1)
        self.width_multiple = check_width_multiple(self.name, width_multiple)

    def _sites(self, arch: Arch) -> list[Site]:
        sites = []
        for stage, start, stop in conv_groups(arch, lambda info: info.layer.kernel_size):
            if stop - start < 2:
                continue
            layers = span_notation(arch.layers[start:stop])
            for kernel in self.kernel_sizes:
                if kernel != arch.layers[start].kernel_size:
                    sites.append(Site(self.name, stage, start, stop, layers, kernel_size=kernel))
        return sites

    def _plan(self, arch: Arch, site: Site) -> Plan:
        infos = self._conv_span(arch, site, same_kernel=True)
        kernel = site_param(self, site, "kernel_size", 1)
        if len(infos) < 2:
            raise self._refuse(site, "needs at least 2 convs: the last keeps its width, the others take the solved one")
        if kernel == infos[0].layer.kernel_size:
            raise self._refuse(site, f"kernel_size={kernel} is the current filter size; expected another")
        template, last = arch.layers[infos[0].index], arch.layers[infos[-1].index]
        out = last.out_channels

        def make(width: int) -> list[Layer]:
            return [derive(template, kernel_size=kernel, out_channels=width)] * (len(infos) - 1) + [
                derive(last, kernel_size=kernel)
            ]

        return self._solve_width(arch, site, make, out)


class AddPoolRule(Rule):
    """Adding a pooling layer (Sec. 4.5, Eqn. 11): a max pool of size and stride p goes
    before the last convs of a stage, which form a new stage on a map p times smaller. To
    keep the cost, the first moved conv is p^2 times wider, the last keeps its width.
    Eqn. (11): ``256*2^2*256 + 256*2^2*256 = (256*2^2*2304 + 2304*2^2*256)/3^2`` (E -> J).

    Generalised to any stage, p and number of moved convs: every other moved conv (the 1st,
    3rd, ...) is widened by p^2, which keeps each moved conv's ``n_{l-1} * n_l / p^2`` equal
    to the old ``n_{l-1} * n_l`` (exact for an even number of convs; with an odd number
    the last conv, whose width is kept, gets p^2 cheaper). The sites move an even number of
    convs, leaving at least one before the pool, with each p in ``pool_sizes``. The head's
    input must keep its size (true for SPP, whose bins do not depend on the map).

    Example:
        >>> from search_spaces.paper import MODELS
        >>> site = AddPoolRule().find(MODELS["E"], stage=3, pool_size=3, length=2)
        >>> AddPoolRule().apply(MODELS["E"], site) == MODELS["J"]
        True
    """

    name = "add_pool"
    equation = "Eqn. (11)"
    keeps = "features"

    def __init__(self, pool_sizes: Sequence[int] = (2, 3)):
        self.pool_sizes = check_sizes(self.name, "pool_sizes", pool_sizes, 2)

    def _sites(self, arch: Arch) -> list[Site]:
        sites = []
        for stage, convs in enumerate(arch.stages, start=1):
            for moved in range(2, len(convs), 2):
                moving = convs[-moved:]
                if any(info.kind != "conv" or info.layer.stride != 1 or not is_plain_conv(arch, info.index) for info in moving):
                    continue
                if len({conv_kind(arch.layers[info.index]) for info in moving}) > 1:
                    continue
                if not is_plain_conv(arch, moving[0].index - 1):
                    continue
                start, stop = convs[-moved].index, convs[-1].index + 1
                layers = span_notation(arch.layers[start:stop])
                for size in self.pool_sizes:
                    sites.append(Site(self.name, stage, start, stop, layers, pool_size=size))
        return sites

    def _plan(self, arch: Arch, site: Site) -> Plan:
        size = site_param(self, site, "pool_size", 2)
        infos = self._conv_span(arch, site, same_kernel=False)
        if site.start == 0 or not is_plain_conv(arch, site.start - 1):
            raise self._refuse(site, "at least one conv must stay in the stage before the new pool (a plain conv, not a block's or a gate's)")
        if site.stop < len(arch.layers) and arch.shapes[site.stop].kind == "conv":
            raise self._refuse(
                site, f"layer {site.stop} is a conv of the same stage; expected the site to end its stage"
            )
        layers: list[Layer] = [Pool(size)]
        for position, info in enumerate(infos):
            widen = position % 2 == 0 and position < len(infos) - 1
            width = info.layer.out_channels * size * size if widen else info.layer.out_channels
            layers.append(derive(arch.layers[info.index], out_channels=width))
        return Plan(site.start, site.stop, tuple(layers))


class DelayPoolRule(Rule):
    """Delayed subsampling (Sec. 4.6): a pool keeps its window but takes stride 1, and the
    conv right after it takes the pool's old stride, so the stage sizes, and Eqn. (1), stay
    as they were (B -> B', D -> D', E -> E', J -> J'). Paddings are re-chosen: after a
    strided 2x2 conv a run of 2x2 convs alternates 35, 36, 35 instead of 35, 36, 35, 36
    (E' costs 0.3% less than E); the map entering the head must stay as it was.

    The sites are each pool with stride > 1 followed by a stride-1 conv, and all such pools
    at once (``pools`` lists their positions).

    Example:
        >>> from search_spaces.paper import MODELS
        >>> site = DelayPoolRule().find(MODELS["B"], pools=(1, 3))
        >>> DelayPoolRule().apply(MODELS["B"], site) == MODELS["B'"]
        True
    """

    name = "delay_pool"
    equation = "Sec. 4.6"
    keeps = "head"

    def _sites(self, arch: Arch) -> list[Site]:
        eligible = [
            info.index
            for info in arch.features[:-1]
            if info.kind == "pool"
            and info.layer.stride > 1
            and arch.shapes[info.index + 1].kind == "conv"
            and arch.layers[info.index + 1].stride == 1
        ]
        choices = [(index,) for index in eligible] + ([tuple(eligible)] if len(eligible) > 1 else [])
        return [self._site(arch, pools) for pools in choices]

    def _site(self, arch: Arch, pools: tuple[int, ...]) -> Site:
        start, stop = pools[0], pools[-1] + 2
        layers = span_notation(arch.layers[start:stop])
        return Site(self.name, arch.shapes[start].stage, start, stop, layers, pools=pools)

    def _plan(self, arch: Arch, site: Site) -> Plan:
        pools = site.pools
        if not pools or any(not is_int(p) for p in pools):
            raise self._refuse(site, f"pools={pools!r} is invalid; expected the positions of one or more pools")
        if pools[0] != site.start or pools[-1] + 2 != site.stop or list(pools) != sorted(set(pools)):
            raise self._refuse(
                site, f"pools={pools!r} does not match layers {site.start}:{site.stop}; expected "
                "increasing positions, the first at start and the last at stop - 2"
            )
        layers = list(arch.layers[site.start : site.stop])
        for position in pools:
            pool = arch.layers[position]
            following = arch.layers[position + 1] if position + 1 < len(arch.layers) else None
            if not isinstance(pool, Pool):
                raise self._refuse(site, f"layer {position} is {format_layer(pool)}, not a pool")
            if pool.stride == 1:
                raise self._refuse(site, f"the pool at layer {position} already has stride 1; nothing to delay")
            if not isinstance(following, Conv):
                what = "nothing" if following is None else format_layer(following)
                raise self._refuse(
                    site,
                    f"the layer after the pool at layer {position} is {what}, not a conv; "
                    "expected a conv to take the pool's stride",
                )
            if following.stride != 1:
                raise self._refuse(
                    site,
                    f"the conv after the pool at layer {position} already has stride "
                    f"{following.stride}; expected a stride-1 conv to take the pool's stride",
                )
            layers[position - site.start] = replace(pool, stride=1)
            layers[position + 1 - site.start] = derive(following, stride=pool.stride)
        return Plan(site.start, site.stop, tuple(layers))


DEPTH_FILTER = DepthFilterRule()
DEPTH_WIDTH = DepthWidthRule()
WIDTH_FILTER = WidthFilterRule()
ADD_POOL = AddPoolRule()
DELAY_POOL = DelayPoolRule()

#: The paper's five rules with default parameters, in the paper's order (plain convs and pools).

#: The paper's five rules with default parameters, in the paper's order (plain convs and pools).
PLAIN_RULES: tuple[Rule, ...] = (DEPTH_FILTER, DEPTH_WIDTH, WIDTH_FILTER, ADD_POOL, DELAY_POOL)


__all__ = [
    "ADD_POOL",
    "DELAY_POOL",
    "DEPTH_FILTER",
    "DEPTH_WIDTH",
    "PLAIN_RULES",
    "WIDTH_FILTER",
    "AddPoolRule",
    "DelayPoolRule",
    "DepthFilterRule",
    "DepthWidthRule",
    "WidthFilterRule",
]
