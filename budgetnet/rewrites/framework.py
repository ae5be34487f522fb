"""The rule framework of layer replacement: sites, proposals, rewrites and the :class:`Rule` base.

A *rewrite* replaces a few layers of an :class:`~budgetnet.Arch` by others of nearly the
same Eqn. (1) cost and leaves the rest untouched. A rule finds its *sites* (every place and
parameterisation where it applies) and applies one as a replacement of the layers
``start:stop`` (a :class:`Plan`); :class:`Proposal` works out the cost and shapes on that span
and builds the new Arch last. Every application returns a :class:`Rewrite` report (cost
before, after, relative change); a rewrite that does not apply, breaks a shape or moves the
cost beyond ``tolerance`` raises :class:`~budgetnet.errors.RewriteError` naming the rule, the
site and the reason. The paper's rules are in :mod:`budgetnet.rewrites.paper_rules`, the
block rules in :mod:`budgetnet.rewrites.block_rules`, the inverted-residual (MBConv) rules in
:mod:`budgetnet.rewrites.inverted_rules`, the registry of all in
:mod:`budgetnet.rewrites.registry`; :mod:`budgetnet.rewrites.roles` says which convs form a
plain stage and builds every new conv from the one it replaces.

Example:
    >>> from search_spaces.paper import MODELS
    >>> from budgetnet.rewrites import DEPTH_FILTER
    >>> site = DEPTH_FILTER.find(MODELS["A"], stage=3, kernel_size=2)
    >>> site.where()
    "stage 3 layers 4:7 '(3,256)x3' (kernel_size=2, count=2)"
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import Counter
from functools import lru_cache
from dataclasses import asdict, dataclass, fields, replace
from typing import Callable, ClassVar, Iterable, Sequence

from budgetnet.graph.arch import Arch, Concat, Conv, Layer, LayerShape, Pool, Residual
from budgetnet.graph.layers import ELEMENTWISE, Gate
from budgetnet.cost.budgets import check_tolerance
from budgetnet.checks import is_int
from budgetnet.cost.complexity import EQN1_KINDS, conv_macs, eqn1_term, format_count, layer_cost
from budgetnet.errors import ArchError, LayerSpecError, RewriteError, ShapeError
from budgetnet.graph.printing import format_layer
from budgetnet.graph.shapes import infer_shapes
from budgetnet.rewrites.roles import conv_kind, is_plain_conv

#: Largest relative change of Eqn. (1) a single rewrite may make by default. The paper's
#: own steps move it by at most 5.7% (D -> I, Eqn. 8).
DEFAULT_TOLERANCE = 0.1
#: Solved widths are rounded to a multiple of the largest power of two that divides the
#: kept output width, at most this (32 gives the paper's 160, 128 and 64).
MAX_WIDTH_MULTIPLE = 32
#: Rules whose site labels name the layer positions: the stages of an MBConv net (strided
#: convs, no pools) all count as one stage of the paper's, so the stage alone does not tell
#: them apart.
POSITIONED_RULES = frozenset({"mbconv_filter", "mbconv_blocks"})


def span_notation(layers: Sequence[Layer]) -> str:
    """The notation of a few layers, repeats grouped: ``(3,256)x3`` or ``2/2 (2,256)``.

    Example:
        >>> span_notation([Conv(3, 256)] * 3)
        '(3,256)x3'
    """
    parts = []
    for layer, group in itertools.groupby(layers):
        count = len(list(group))
        parts.append(format_layer(layer) + (f"x{count}" if count > 1 else ""))
    return " ".join(parts)


@dataclass(frozen=True)
class Site:
    """Where and how a rule applies: layer positions ``start:stop`` and the parameters.

    Positions index ``arch.layers`` (pools included), half-open like :meth:`Arch.replace`.
    ``layers`` is the notation of the layers found there; :meth:`Rule.rewrite` refuses the
    site if the Arch has other layers at those positions. Parameters a rule does not use
    stay ``None``:

    * ``kernel_size``: the new filter size (``depth_filter``, ``width_filter``);
    * ``count``: convs in each cascade (``depth_filter``);
    * ``depth``: the new number of convs (``depth_width``);
    * ``pool_size``: size and stride of the new pool (``add_pool``, which moves the convs
      ``start:stop`` to the new stage);
    * ``pools``: positions of the pools whose stride is delayed (``delay_pool``), or of
      the pool removed (``stage_pool``);
    * ``groups``: the new cardinality of a block's spatial conv (``cardinality_width``);
    * ``blocks``: the new number of blocks of a stage (``blocks_width``, ``bottleneck_blocks``);
    * ``stride_on``: the body conv (1-based) that takes a block's stride (``block_stride``).

    Example:
        >>> site = Site("depth_width", 3, 4, 7, "(3,256)x3", depth=6)
        >>> Site.from_dict(site.to_dict()) == site
        True
    """

    rule: str
    stage: int
    start: int
    stop: int
    layers: str
    kernel_size: int | None = None
    count: int | None = None
    depth: int | None = None
    pool_size: int | None = None
    pools: tuple[int, ...] | None = None
    groups: int | None = None
    blocks: int | None = None
    stride_on: int | None = None

    def __post_init__(self):
        if isinstance(self.pools, (list, tuple)):
            object.__setattr__(self, "pools", tuple(self.pools))

    @property
    def length(self) -> int:
        """Number of layers the site covers (for ``add_pool``: the convs moved)."""
        return self.stop - self.start

    def params(self) -> dict:
        """The rule parameters that are set."""
        names = ("kernel_size", "count", "depth", "pool_size", "pools", "groups", "blocks", "stride_on")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def where(self) -> str:
        """A one-line description for messages and tables.

        Example:
            >>> Site("add_pool", 3, 11, 13, "(2,256)x2", pool_size=3).where()
            "stage 3 layers 11:13 '(2,256)x2' (pool_size=3)"
        """
        params = ", ".join(f"{key}={value}" for key, value in self.params().items())
        text = f"stage {self.stage} layers {self.start}:{self.stop} '{self.layers}'"
        return text + (f" ({params})" if params else "")

    def label(self) -> str:
        """A short label for tables and plots: the rule, the stage and the parameters.

        Example:
            >>> Site("cardinality_width", 2, 2, 5, "res[(1,64) (3,64) (1,256)@none]x3", groups=32).label()
            'cardinality_width(stage 2, groups=32)'
            >>> Site("mbconv_filter", 1, 9, 14, "...", kernel_size=3).label()
            'mbconv_filter(stage 1 layers 9:14, kernel_size=3)'
        """
        params = "".join(f", {key}={value}" for key, value in self.params().items())
        where = f"stage {self.stage}" + (f" layers {self.start}:{self.stop}" if self.rule in POSITIONED_RULES else "")
        return f"{self.rule}({where}{params})"

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        data = asdict(self)
        if self.pools is not None:
            data["pools"] = list(self.pools)
        return data

    @classmethod
    def from_dict(cls, data) -> "Site":
        """Rebuild a site from :meth:`to_dict` output."""
        known = [item.name for item in fields(cls)]
        required = {"rule", "stage", "start", "stop", "layers"}
        if not isinstance(data, dict) or not required <= set(data):
            rule = data.get("rule", "?") if isinstance(data, dict) else "?"
            raise RewriteError(rule, None, f"site={data!r} is invalid; expected an object with fields {known}")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise RewriteError(data["rule"], None, f"site has unknown fields {unknown}; expected {known}")
        return cls(**data)


@dataclass(frozen=True)
class Rewrite:
    """The report of one applied rewrite; costs are Eqn. (1) MACs from
    :func:`budgetnet.cost.complexity.conv_macs` and :func:`~budgetnet.cost.complexity.layer_cost`.

    ``before_macs``/``after_macs`` are whole-network costs; ``replaced_macs`` is the cost
    of the replaced convs in ``before`` and ``replacement_macs`` that of the new convs in
    ``after`` (the paper's "complexity involved"). ``detail`` says how a width was solved.
    """

    rule: str
    site: Site
    before: Arch
    after: Arch
    before_macs: int
    after_macs: int
    replaced_macs: int
    replacement_macs: int
    new_layers: str
    detail: str = ""

    @property
    def change(self) -> float:
        """Relative change of the whole network's Eqn. (1) cost (``-0.039`` = -3.9%)."""
        return self.after_macs / self.before_macs - 1

    @property
    def local_change(self) -> float:
        """Relative change of the cost of the replaced layers alone."""
        return self.replacement_macs / self.replaced_macs - 1 if self.replaced_macs else math.inf

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "rule": self.rule,
            "site": self.site.to_dict(),
            "before": self.before.notation(),
            "after": self.after.notation(),
            "new_layers": self.new_layers,
            "before_macs": self.before_macs,
            "after_macs": self.after_macs,
            "change": self.change,
            "replaced_macs": self.replaced_macs,
            "replacement_macs": self.replacement_macs,
            "local_change": self.local_change,
            "detail": self.detail,
        }

    def __str__(self) -> str:
        text = (
            f"{self.rule}: '{self.site.layers}' -> '{self.new_layers}' at stage {self.site.stage}; "
            f"Eqn. (1) {format_count(self.before_macs)} -> {format_count(self.after_macs)} MACs "
            f"({self.change:+.1%}; replaced layers {self.local_change:+.1%})"
        )
        return text + (f"; {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Plan:
    """What a rule decided for one site: the new layers for ``start:stop``."""

    start: int
    stop: int
    layers: tuple[Layer, ...]
    detail: str = ""


@dataclass(frozen=True)
class Proposal:
    """A rewrite worked out on the changed span only: the new layers, their shapes and the
    cost, without building the new :class:`~budgetnet.Arch` (see :meth:`Rule.propose`).

    When the old and new spans are blocks (and pools) ending with a block, the new layers
    are inferred alone from the span's input shape, and their output must equal the old
    span's, so nothing after the span changes. Otherwise (plain convs, whose paddings
    depend on the layers around them) the new layer list is inferred whole, without a
    graph. ``after_macs`` is exact either way; :meth:`build` makes the Arch.
    """

    rule: "Rule"
    site: Site
    before: Arch
    plan: Plan
    before_macs: int
    after_macs: int
    replaced_macs: int
    replacement_macs: int
    depth_change: int
    #: The whole new Arch's shapes when it was inferred whole (``None`` on the local path).
    shapes: tuple[LayerShape, ...] | None = None

    @property
    def change(self) -> float:
        """Relative change of the whole network's Eqn. (1) cost."""
        return self.after_macs / self.before_macs - 1

    @property
    def depth(self) -> int:
        """Conv layers (off the shortcuts) of the rewritten Arch."""
        return self.before.depth + self.depth_change

    def build(self) -> Arch:
        """The rewritten Arch: the layer list with the span replaced (node ids are not kept)."""
        return self.rule._build(self.before, self.site, self.plan.start, self.plan.stop, self.plan.layers)

    def report(self) -> "Rewrite":
        """The :class:`Rewrite` report, with the new Arch built."""
        return Rewrite(
            rule=self.rule.name,
            site=self.site,
            before=self.before,
            after=self.build(),
            before_macs=self.before_macs,
            after_macs=self.after_macs,
            replaced_macs=self.replaced_macs,
            replacement_macs=self.replacement_macs,
            new_layers=span_notation(self.plan.layers),
            detail=self.plan.detail,
        )


class Rule:
    """Base of the rewrite rules. Subclasses set ``name``, ``equation`` and implement
    ``_sites`` (see :meth:`sites`) and ``_plan`` (the replacement for one site)."""

    name: ClassVar[str] = ""
    equation: ClassVar[str] = ""
    #: Which maps must stay as they were: ``"pools"`` (the map entering every pool and the
    #: head), ``"head"`` (the map entering the head) or ``"features"`` (only the head's
    #: input size, e.g. SPP's bins, since the rule changes maps by design).
    keeps: ClassVar[str] = "pools"
    #: True when ``_plan`` reads nothing of the Arch but the site's layers and their
    #: shapes. Then a proposal that was worked out locally (a span of blocks and pools
    #: ending with a block, whose shapes depend on its input shape alone) is remembered
    #: by (rule, site, layers, input shape) and served to every Arch with those layers on
    #: that input there: a walk meets the same stage in many variants.
    plans_on_span: ClassVar[bool] = False
    #: Multiple the solved widths are rounded to (``None``: automatic); rules that solve set it.
    width_multiple: int | None = None

    def sites(self, arch: Arch) -> list[Site]:
        """Every place and parameterisation where the rule applies in ``arch``."""
        if not isinstance(arch, Arch):
            raise RewriteError(self.name, None, f"arch={arch!r} is not an Arch")
        return self._sites(arch)

    def _sites(self, arch: Arch) -> list[Site]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _plan(self, arch: Arch, site: Site) -> Plan:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- public API ------------------------------------------------------------------------
    def rewrite(self, arch: Arch, site: Site, tolerance: float | None = DEFAULT_TOLERANCE) -> Rewrite:
        """Apply ``site`` to ``arch`` and report the cost change.

        Args:
            arch: the Arch to rewrite.
            site: one of :meth:`sites` (or a hand-made one for the same layers).
            tolerance: largest accepted ``abs(change)`` of the whole network's Eqn. (1)
                cost; ``None`` accepts any change.

        Raises:
            RewriteError: the site is not in ``arch``, the rule does not apply there, a
                width solves to zero, a shape breaks, or the cost moves beyond tolerance.
        """
        tolerance = check_tolerance(tolerance, allow_none=True)
        proposal = self.propose(arch, site)
        if tolerance is not None and abs(proposal.change) > tolerance:
            detail = f" ({proposal.plan.detail})" if proposal.plan.detail else ""
            raise RewriteError(
                self.name,
                site,
                f"moves Eqn. (1) by {proposal.change:+.1%} ({format_count(proposal.before_macs)} -> "
                f"{format_count(proposal.after_macs)} MACs){detail}, beyond the tolerance ±{tolerance:.1%}",
            )
        return proposal.report()

    def propose(self, arch: Arch, site: Site, before_macs: int | None = None) -> Proposal:
        """Work out ``site`` on ``arch`` without building the new Arch: the new layers,
        the shape checks and the exact cost (see :class:`Proposal`). No tolerance check.

        Args:
            arch: the Arch to rewrite.
            site: one of :meth:`sites`.
            before_macs: ``conv_macs(arch)`` when the caller knows it already.

        Example:
            >>> from search_spaces.paper import MODELS
            >>> from budgetnet.rewrites import DEPTH_FILTER
            >>> proposal = DEPTH_FILTER.propose(MODELS["A"], DEPTH_FILTER.find(MODELS["A"], stage=3))
            >>> f"{proposal.change:+.1%}", proposal.build() == MODELS["B"]
            ('-3.9%', True)
        """
        if not isinstance(arch, Arch):
            raise RewriteError(self.name, site, f"arch={arch!r} is not an Arch")
        self._check_site(arch, site)
        if before_macs is None:
            before_macs = conv_macs(arch)
        key = self._span_key(arch, site)
        known = _SPAN_PROPOSALS.get(key) if key is not None else None
        if known is not None:
            plan, *costs = known
            plan = replace(plan, start=plan.start + site.start, stop=plan.stop + site.start)
            return self._proposal(arch, site, before_macs, plan, *costs)
        proposal = self._evaluate(arch, site, self._plan(arch, site), before_macs)
        self._check_shapes(arch, site, proposal)
        if key is not None and proposal.shapes is None:
            plan = proposal.plan
            plan = replace(plan, start=plan.start - site.start, stop=plan.stop - site.start)
            _remember_span(key, (plan, proposal.replaced_macs, proposal.replacement_macs, proposal.depth_change))
        return proposal

    def apply(self, arch: Arch, site: Site, tolerance: float | None = DEFAULT_TOLERANCE) -> Arch:
        """The rewritten Arch (see :meth:`rewrite` for the checks)."""
        return self.rewrite(arch, site, tolerance).after

    def find(self, arch: Arch, **criteria) -> Site:
        """The one site of :meth:`sites` whose fields equal ``criteria``.

        Example:
            >>> from search_spaces.paper import MODELS
            >>> from budgetnet.rewrites import DEPTH_WIDTH
            >>> DEPTH_WIDTH.find(MODELS["A"], stage=3, depth=6).start
            4
        """
        found = [site for site in self.sites(arch) if _matches(site, criteria)]
        if len(found) != 1:
            wanted = ", ".join(f"{key}={value!r}" for key, value in criteria.items())
            problem = "no site" if not found else f"{len(found)} sites"
            listing = "; ".join(site.where() for site in self.sites(arch)) or "none"
            raise RewriteError(
                self.name, None, f"{problem} with {wanted} in '{arch}'; expected exactly one (sites: {listing})"
            )
        return found[0]

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({params})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))

    # -- shared checks ---------------------------------------------------------------------
    def _refuse(self, site, reason: str) -> RewriteError:
        return RewriteError(self.name, site, reason)

    def _check_site(self, arch: Arch, site: Site) -> None:
        if not isinstance(site, Site):
            raise self._refuse(repr(site), "expected a Site (from rule.sites(arch))")
        if site.rule != self.name:
            raise self._refuse(site, f"the site belongs to rule {site.rule!r}, not {self.name!r}")
        count = len(arch.layers)
        for name in ("start", "stop"):
            value = getattr(site, name)
            if not is_int(value):
                raise self._refuse(site, f"{name}={value!r} is not an integer layer position")
        if not 0 <= site.start < site.stop <= count:
            raise self._refuse(
                site,
                f"the site does not exist in this Arch: layers {site.start}:{site.stop} are out of "
                f"range; expected 0 <= start < stop <= {count} in '{arch}'",
            )
        found = span_notation(arch.layers[site.start : site.stop])
        if site.layers != found:
            raise self._refuse(
                site,
                f"the site does not exist in this Arch: layers {site.start}:{site.stop} are "
                f"'{found}', the site expects '{site.layers}'",
            )
        stage = arch.shapes[site.start].stage
        if stage != site.stage:
            raise self._refuse(
                site, f"the site does not exist in this Arch: layer {site.start} is in stage {stage}"
            )

    def _span_key(self, arch: Arch, site: Site) -> tuple | None:
        """The key of ``site``'s proposal in :data:`_SPAN_PROPOSALS` (see
        :attr:`plans_on_span`), or ``None`` when it may depend on the rest of the Arch."""
        if not self.plans_on_span:
            return None
        layers = arch.layers[site.start : site.stop]
        if not _is_local_layers(layers):
            return None
        # positions relative to the span: a stage met again after an earlier stage changed
        # its number of layers is the same span
        where = replace(site, start=0, stop=site.stop - site.start, pools=_shifted(site.pools, -site.start))
        return (self, where, layers, arch.shapes[site.start].in_shape)

    def _build(self, arch: Arch, site: Site, start: int, stop: int, layers: Sequence[Layer]) -> Arch:
        try:
            return arch.with_layers(arch.layers[:start] + tuple(layers) + arch.layers[stop:])
        except ShapeError as error:
            raise self._refuse(site, f"collapses a map: {error}") from None
        except (ArchError, LayerSpecError) as error:
            raise self._refuse(site, f"gives an invalid Arch: {error}") from None

    def _evaluate(self, arch: Arch, site: Site, plan: Plan, before_macs: int) -> Proposal:
        """Shapes and cost of ``plan`` (see :class:`Proposal` for the local and whole paths)."""
        old = arch.shapes[plan.start : plan.stop]
        full = None
        try:
            if _is_local_layers(arch.layers[plan.start : plan.stop]) and _is_local_layers(plan.layers):
                new = _span_shapes(arch, plan)
                if new[-1].out_shape != old[-1].out_shape:
                    raise self._refuse(
                        site,
                        f"breaks a shape: the new layers give {_shape(new[-1].out_shape)}, the replaced "
                        f"ones gave {_shape(old[-1].out_shape)}; expected the same map after the span",
                    )
            else:
                layers = arch.layers[: plan.start] + tuple(plan.layers) + arch.layers[plan.stop :]
                full = infer_shapes(layers, arch.input_shape)
                new = full[plan.start : plan.start + len(plan.layers)]
        except ShapeError as error:
            raise self._refuse(site, f"collapses a map: {error}") from None
        except (ArchError, LayerSpecError) as error:
            raise self._refuse(site, f"gives an invalid Arch: {error}") from None
        return self._proposal(arch, site, before_macs, plan, span_macs(old), span_macs(new), _depth(new) - _depth(old), full)

    def _proposal(self, arch, site, before_macs, plan, replaced, replacement, depth_change, shapes=None) -> Proposal:
        """The Proposal; after a local inference (``shapes`` None) its cost is the
        before-cost with the span's cost swapped, else the whole new Arch's."""
        return Proposal(
            rule=self,
            site=site,
            before=arch,
            plan=plan,
            before_macs=before_macs,
            after_macs=before_macs - replaced + replacement if shapes is None else span_macs(shapes),
            replaced_macs=replaced,
            replacement_macs=replacement,
            depth_change=depth_change,
            shapes=shapes,
        )

    def _check_shapes(self, arch: Arch, site: Site, proposal: Proposal) -> None:
        """Refuse a plan that changes the width after the span, the maps of :attr:`keeps`,
        or the size of the head's input (a local proposal kept the span's output already)."""
        if proposal.shapes is None:
            return
        plan = proposal.plan
        old = arch.shapes[plan.stop - 1].out_shape
        new = proposal.shapes[plan.start + len(plan.layers) - 1].out_shape
        if old[0] != new[0]:
            raise self._refuse(
                site, f"breaks a shape: the replaced layers end with {new[0]} channels, was {old[0]}"
            )
        before_points, after_points = _map_checkpoints(arch.shapes), _map_checkpoints(proposal.shapes)
        if self.keeps != "features":
            checkpoints = slice(None) if self.keeps == "pools" else slice(-1, None)
            for before, after in zip(before_points[checkpoints], after_points[checkpoints]):
                if before.in_shape != after.in_shape:
                    raise self._refuse(
                        site,
                        f"breaks a shape: the map entering {after.name} (layer {after.index}) is "
                        f"{_shape(after.in_shape)}, was {_shape(before.in_shape)}",
                    )
        old_head, new_head = before_points[-1], after_points[-1]
        if old_head.out_shape != new_head.out_shape:
            raise self._refuse(
                site,
                f"breaks a shape: the head gets {new_head.out_shape[0]} features instead of "
                f"{old_head.out_shape[0]} (map {_shape(new_head.in_shape)}, was {_shape(old_head.in_shape)})",
            )

    def _conv_span(self, arch: Arch, site: Site, same_kernel: bool) -> list[LayerShape]:
        """The convs ``start:stop`` of a site, checked to be stride-1 convs of one stage."""
        infos = list(arch.shapes[site.start : site.stop])
        kinds = set()
        for info in infos:
            written = format_layer(arch.layers[info.index])
            if info.kind != "conv":
                raise self._refuse(site, f"layer {info.index} is {written}, not a conv")
            if not is_plain_conv(arch, info.index):
                raise self._refuse(
                    site,
                    f"layer {info.index} {written} is not a plain conv: a non-square filter, a depthwise or grouped conv, or "
                    "the 1x1 expansion or projection of an inverted-residual block or gate, keeps its "
                    "block's widths; the paper's rules replace dense convs of a plain stage",
                )
            kinds.add(conv_kind(arch.layers[info.index]))
            if info.layer.stride != 1:
                raise self._refuse(
                    site,
                    f"layer {info.index} {written} has stride {info.layer.stride}; "
                    "the rule replaces stride-1 convs only (a strided conv sets its stage's map size)",
                )
        if len(kinds) > 1:
            raise self._refuse(
                site,
                "the convs differ in norm, BN eps/momentum, activation or dilation; expected one kind "
                "of conv (a plain stage), so the new convs inherit it",
            )
        if same_kernel and len({info.layer.kernel_size for info in infos}) > 1:
            raise self._refuse(site, "the convs have different filter sizes; expected one filter size")
        return infos

    def _solve_width(self, arch: Arch, site: Site, make: Callable[[int], list[Layer]], out_channels: int) -> Plan:
        """The plan ``make(w)`` for ``start:stop``, with the free width ``w`` solved so that
        Eqn. (1) stays as it was.

        Map sizes do not depend on widths, so one trial proposal gives every new layer's
        shape and the cost of any width is :func:`layer_cost` of those shapes with the
        channel counts set: exactly ``a*w^2 + b*w + c``, whose coefficients three widths
        give. The root is rounded to the multiple (below or above) whose cost is closest to
        the old.
        """
        target = conv_macs(arch)
        trial_layers = make(1)
        trial = self._evaluate(arch, site, Plan(site.start, site.stop, tuple(trial_layers)), target)
        self._check_shapes(arch, site, trial)
        infos = trial.shapes[site.start : site.start + len(trial_layers)]
        rest = trial.after_macs - span_macs(infos)
        in_channels = arch.shapes[site.start].in_shape[0]

        def cost(width: int) -> int:
            channels = in_channels
            total = rest
            for info, layer in zip(infos, make(width)):
                total += layer_cost(_with_channels(info, layer, channels)).macs
                channels = layer.out_channels
            return total

        c1, c2, c3 = cost(1), cost(2), cost(3)
        a = (c3 - 2 * c2 + c1) / 2
        b = c2 - c1 - 3 * a
        c = c1 - a - b - target
        root = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a) if a else -c / b
        multiple = self.width_multiple or _power_of_two_divisor(out_channels, MAX_WIDTH_MULTIPLE)
        if root < multiple / 2:
            raise self._refuse(
                site,
                f"the new width solves to {root:.1f}, which rounds to 0 at a width multiple of "
                f"{multiple}; expected a width of at least {multiple / 2:g} (use a smaller "
                "width_multiple or fewer new layers)",
            )
        low = int(root // multiple) * multiple
        candidates = [w for w in (low, low + multiple) if w > 0]
        width = min(candidates, key=lambda w: (abs(cost(w) - target), w))
        detail = f"width solved {root:.1f} -> {width} (multiple of {multiple})"
        return Plan(site.start, site.stop, tuple(make(width)), detail)


# -- helpers ---------------------------------------------------------------------------------
#: Proposals worked out on a span alone, as ``(plan, replaced_macs, replacement_macs,
#: depth_change)`` by :meth:`Rule._span_key`; the oldest goes past :data:`_SPAN_PROPOSALS_MAX`.
_SPAN_PROPOSALS: dict[tuple, tuple] = {}
_SPAN_PROPOSALS_MAX = 8192
_SPAN_LOCK = threading.Lock()


def _shifted(pools: tuple[int, ...] | None, offset: int) -> tuple[int, ...] | None:
    return None if pools is None else tuple(p + offset for p in pools)


def _remember_span(key: tuple, value: tuple) -> None:
    with _SPAN_LOCK:
        if len(_SPAN_PROPOSALS) >= _SPAN_PROPOSALS_MAX:
            del _SPAN_PROPOSALS[next(iter(_SPAN_PROPOSALS))]
        _SPAN_PROPOSALS[key] = value


def span_macs(infos: Iterable[LayerShape]) -> int:
    """Eqn. (1) of some inferred layers, the convs inside blocks included (ECA's convs along
    the channels too)."""
    return sum(eqn1_term(inner) for info in infos for inner in info.walk() if inner.kind in EQN1_KINDS)


def _depth(infos: Iterable[LayerShape]) -> int:
    """Conv layers off the shortcuts among some inferred layers (see :attr:`Arch.depth`)."""
    return sum(1 for info in infos for inner in info.walk() if inner.kind == "conv" and not inner.shortcut)


@lru_cache(maxsize=8192)
def local_shapes(layers: tuple[Layer, ...], in_shape: tuple[int, ...]) -> tuple[LayerShape, ...]:
    """:func:`~budgetnet.graph.shapes.infer_shapes` of a few layers on their own input, cached: a
    walk over variants meets the same stage on the same input many times.

    Example:
        >>> [info.out_shape for info in local_shapes((Conv(3, 8, stride=2),), (1, 8, 8))]
        [(8, 4, 4)]
    """
    return infer_shapes(layers, in_shape)


def _span_shapes(arch: Arch, plan: Plan) -> tuple[LayerShape, ...]:
    """Shapes of a local plan's new layers (see :func:`_is_local_layers`) on the span's input,
    with the indexes, names and stages they get in the rewritten Arch, so that building it
    finds those blocks inferred already (:func:`budgetnet.graph.shapes.infer_shapes` caches a
    block by its spec, input shape, name, index and stage)."""
    previous = arch.shapes[plan.start - 1] if plan.start else None
    stage = 1 if previous is None else previous.stage + (previous.kind == "pool")
    counts = Counter(layer.kind for layer in arch.layers[: plan.start])
    return infer_shapes(plan.layers, arch.shapes[plan.start].in_shape, start=plan.start, stage=stage, counts=counts)


def _is_local_layers(layers: Sequence[Layer]) -> bool:
    """Whether a span's shapes can be inferred alone: blocks, pools, norms, activations and
    convs whose padding reads nothing of the main chain's state (written, or odd and stride
    1), ending with a block (a block's paddings depend on its input alone, and the main
    chain's padding state starts afresh after one): e.g. an MBConv stage that opens with a
    main-chain block of 1x1 convs and a depthwise conv with written padding."""
    return (
        bool(layers)
        and all(_context_free(layer) for layer in layers)
        and isinstance(layers[-1], (Residual, Concat, Gate))
    )


def _context_free(layer: Layer) -> bool:
    if isinstance(layer, Conv):
        return layer.padding is not None or not layer.square or (layer.stride == 1 and layer.field % 2 == 1)
    return isinstance(layer, (Residual, Concat, Gate, Pool, *ELEMENTWISE))


def _with_channels(info: LayerShape, layer: Conv, in_channels: int) -> LayerShape:
    """``info`` (a trial layer's inferred shape) with other channel counts; maps stay."""
    return replace(
        info,
        layer=replace(info.layer, out_channels=layer.out_channels),
        in_shape=(in_channels, *info.in_shape[1:]),
        out_shape=(layer.out_channels, *info.out_shape[1:]),
    )


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(value) for value in shape)


def _map_checkpoints(shapes: Sequence[LayerShape]) -> list[LayerShape]:
    """The pools and the head's reducer (spp, gap or flat), in order."""
    reducer = next(info for info in shapes if info.stage is None)
    return [info for info in shapes if info.kind == "pool"] + [reducer]


def _matches(site: Site, criteria: dict) -> bool:
    for key, value in criteria.items():
        if key == "pools" and value is not None:
            value = tuple(value)
        if getattr(site, key, object()) != value:
            return False
    return True


def _power_of_two_divisor(value: int, limit: int) -> int:
    multiple = 1
    while multiple < limit and value % (multiple * 2) == 0:
        multiple *= 2
    return multiple
