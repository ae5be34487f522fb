"""LayerReplacementSpace: the candidates are exactly what the layer-replacement rules reach.

The space walks the lineage graph of :func:`budgetnet.variants` (every equal-cost variant of
the baseline within ``max_steps`` rewrites). A trial takes one rewrite per step:

* ``"step1"`` chooses among the rewrites that apply to the baseline, each named by its rule
  and site, e.g. ``"depth_filter stage 2 layers 2:3 '(5,32)' (kernel_size=3, count=2)"``,
  or ``"none"`` (stay at the baseline);
* ``"step2 from <notation>"`` then chooses among the rewrites of the architecture reached,
  named by its notation, and so on up to ``max_steps``.

A parameter is asked only where there is a choice to make, and its choices depend only on
the architecture in its name, so every parameter always offers the same list (as Optuna
requires) and every combination leads to a candidate: there is no infeasible path.
``"none"`` is offered wherever the architecture reached is itself a candidate (every variant
is; the baseline only when its cost matches the budget). Two paths to the same variant
share its ``step{k} from`` parameter, so the sampler learns about the variant, not the path.

Every candidate matches the budget (``budget.matches``), so it is admitted by
``budget.admits`` too; the walk never returns anything else.

Example:
    >>> import optuna
    >>> from search_spaces import small
    >>> from search_spaces.replacement import LayerReplacementSpace
    >>> space = LayerReplacementSpace(small.baseline(), max_steps=1)
    >>> space.check()
    >>> space.choices(space.baseline)[:3]
    ['none', "depth_filter stage 2 layers 2:3 '(5,32)' (kernel_size=2, count=4)", "depth_filter stage 2 layers 2:3 '(5,32)' (kernel_size=3, count=2)"]
    >>> arch = space.suggest(optuna.trial.FixedTrial({"step1": space.choices(space.baseline)[2]}))
    >>> str(arch)
    '(3,16) 2/2 (3,32)x2 2/2 (3,64)x3 spp(2,1)'
"""

from __future__ import annotations

from typing import Iterable, Sequence

import networkx as nx

from budgetnet.graph.arch import Arch
from budgetnet.cost.complexity import conv_macs, format_count
from budgetnet.errors import BudgetError, BudgetNetError, SearchError
from budgetnet.cost.budgets import DEFAULT_TOLERANCE, LatencyBudget
from search_spaces import small
from search_spaces.base import SearchSpace, check_int, register, retarget

#: The choice that stops the walk at the architecture reached so far.
STOP = "none"


def step_label(site) -> str:
    """How a rewrite is named to the sampler: its rule and its site.

    Example:
        >>> from budgetnet.rewrites import Site
        >>> step_label(Site("add_pool", 3, 5, 7, "(3,64)x2", pool_size=2))
        "add_pool stage 3 layers 5:7 '(3,64)x2' (pool_size=2)"
    """
    return f"{site.rule} {site.where()}"


@register
class LayerReplacementSpace(SearchSpace):
    """The equal-cost variants of a baseline, chosen one rewrite per step.

    Args:
        baseline: the Arch the rewrites start from.
        budget: the budget (see :func:`search_spaces.base.resolve_budget`); default the
            baseline's cost. A variant is a candidate when its Eqn. (1) cost matches the
            budget within its tolerance. For a budget without a MACs target (latency), the
            variants are those that match the baseline's cost within ``tolerance``.
        tolerance: relative tolerance of a budget given as ``None``, text or a number.
        max_steps: the most rewrites from the baseline.
        rules: rule names or objects (default: all five, see :mod:`budgetnet.rewrites`).
        max_depth: leave out variants with more convs than this.
        max_variants: stop the walk once this many variants are found.
        input_shape: move the baseline onto this input first.
        num_classes: resize the baseline's classifier first.

    The lineage graph is built on first use (:attr:`graph`) and kept.
    """

    name = "replacement"

    def __init__(
        self,
        baseline: Arch,
        budget=None,
        tolerance: float | None = None,
        *,
        max_steps: int = 2,
        rules: Iterable[str] | None = None,
        max_depth: int | None = None,
        max_variants: int | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
    ):
        if isinstance(baseline, Arch):
            baseline = retarget(baseline, input_shape, num_classes)
        super().__init__(baseline, budget, tolerance)
        # The MACs tolerance of the variants: the budget's own, or for a latency budget the argument.
        if self.target_macs is not None:
            self.tolerance = self.budget.tolerance
        else:
            self.tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
        self.max_steps = check_int(self.where, "max_steps", max_steps)
        self.max_depth = None if max_depth is None else check_int(self.where, "max_depth", max_depth)
        self.max_variants = None if max_variants is None else check_int(self.where, "max_variants", max_variants)
        from budgetnet.rewrites import resolve_rules

        try:
            self.rules = tuple(rule.name for rule in resolve_rules(rules))
        except BudgetNetError as error:
            raise SearchError(f"{self.where}: rules={rules!r} is invalid: {error}") from None
        self._graph: nx.DiGraph | None = None

    @property
    def where(self) -> str:
        return f"{self.name} space"

    # -- the lineage graph ---------------------------------------------------------------
    @property
    def graph(self) -> nx.DiGraph:
        """The lineage graph of :func:`budgetnet.variants` (built once)."""
        if self._graph is None:
            from budgetnet.rewrites.explore import variants

            target = self.budget if self.target_macs is not None else None
            self._graph = variants(
                self.baseline,
                budget=target,
                tolerance=self.tolerance,
                max_steps=self.max_steps,
                rules=self.rules,
                max_depth=self.max_depth,
                max_variants=self.max_variants,
            )
        return self._graph

    @property
    def root(self) -> str:
        return self.graph.graph["baseline"]

    def candidates(self) -> list[Arch]:
        """Every architecture a trial can return: the variants, and the baseline when it matches."""
        return [data["arch"] for _, data in self.graph.nodes(data=True) if data["matches"]]

    def _key(self, arch: Arch) -> str:
        key = arch.fingerprint()
        if key not in self.graph:
            raise SearchError(f"{self.where}: {arch} is not in the lineage graph of {self.baseline}")
        return key

    def choices(self, arch: Arch) -> list[str]:
        """What a trial may choose at ``arch``: ``"none"`` where ``arch`` is a candidate,
        then its rewrites (:func:`step_label`), in the order the rules found them."""
        return self._choices_at(self._key(arch))

    def _choices_at(self, key: str) -> list[str]:
        options = [STOP] if self.graph.nodes[key]["matches"] else []
        return options + [step_label(data["site"]) for _, _, data in self.graph.out_edges(key, data=True)]

    def parameter(self, step: int, arch: Arch) -> str:
        """The name of the parameter that picks rewrite number ``step`` at ``arch``.

        Example:
            >>> from search_spaces import small
            >>> space = LayerReplacementSpace(small.baseline())
            >>> space.parameter(1, space.baseline), space.parameter(2, space.baseline)
            ('step1', 'step2 from (3,16) 2/2 (5,32) 2/2 (3,64)x3 spp(2,1)')
        """
        return "step1" if step == 1 else f"step{step} from {arch.notation()}"

    # -- the trial ---------------------------------------------------------------------------
    @classmethod
    def create(cls, *, baseline=None, budget=None, tolerance=None, input_shape=None, num_classes=None, **options):
        """The space for :func:`~search_spaces.base.get_space`; without a baseline, the one
        that suits the input (:func:`search_spaces.small.default_baseline`)."""
        if baseline is None:
            baseline = small.default_baseline(input_shape, num_classes)
        return cls(baseline, budget, tolerance, **options)

    def suggest(self, trial) -> Arch:
        """Walk the lineage graph from the baseline, one rewrite per step, and return where
        the walk stops. Every path ends at a candidate whose cost matches the budget."""
        key = self.root
        for step in range(1, self.max_steps + 1):
            arch = self.graph.nodes[key]["arch"]
            options = self._choices_at(key)
            if not options or options == [STOP]:
                break
            choice = trial.suggest_categorical(self.parameter(step, arch), options)
            if choice == STOP:
                break
            key = next(
                target
                for _, target, data in self.graph.out_edges(key, data=True)
                if step_label(data["site"]) == choice
            )
        if not self.graph.nodes[key]["matches"]:
            raise SearchError(
                f"{self.where}: the walk from {self.baseline} stopped at {self.graph.nodes[key]['notation']}, "
                "which does not match the budget; expected max_steps large enough to leave the baseline"
            )
        return self.graph.nodes[key]["arch"]

    # -- the budget ----------------------------------------------------------------------------
    def check(self) -> None:
        """Raise before any trial when the space is empty or nothing in it meets the budget.

        Raises:
            SearchError: the space holds a single candidate (typically: no rule rewrites the
                baseline into a variant within the budget's tolerance).
            BudgetError: no candidate meets the budget; the message names the budget and the
                cost of the cheapest candidate or one-step rewrite (for a time budget, the
                measured times of the cheapest and the baseline with their spread).
        """
        candidates = self.candidates()
        admitted = [arch for arch in candidates if self.budget.admits(arch)]
        if admitted and len(candidates) > 1:
            return
        if admitted:
            if admitted[0] == self.baseline:
                what = f"no layer-replacement rule rewrites the baseline {self.baseline} into a variant"
            else:
                what = f"layer replacement from {self.baseline} reaches a single candidate, {admitted[0]},"
            raise SearchError(
                f"{self.where}: {what} within {self.tolerance:.1%} of the budget {self.budget} "
                f"({self._counts()}); expected a baseline with a conv stage the rules can rewrite "
                "(see budgetnet.rewrites), more steps, a larger tolerance, or the 'stage' space"
            )
        if isinstance(self.budget, LatencyBudget):  # every candidate was timed: the fastest, in ms with its spread
            fastest = min(candidates, key=self.budget.cost, default=self.baseline)
            raise self.budget.below_every_candidate(f"the {self.where}", fastest, self.baseline, "fastest")
        cheapest = min(candidates or self._one_step(), key=conv_macs, default=self.baseline)
        cost = conv_macs(cheapest)
        base = conv_macs(self.baseline)
        raise BudgetError(
            f"budget {self.budget} is out of reach of the {self.where} of {self.baseline} "
            f"({format_count(base)} MACs): layer replacement keeps the cost near the baseline's, "
            f"and the cheapest {'candidate' if candidates else 'rewrite one step away'}, {cheapest}, "
            f"costs {format_count(cost)} MACs ({cost:,}, {cost / base:.3g}x the baseline); expected a "
            "budget near the baseline's cost, or the 'stage' space, whose widths follow the budget"
        )

    def _one_step(self) -> list[Arch]:
        """The baseline and every single rewrite of it, whatever their cost (for messages)."""
        from budgetnet.errors import RewriteError
        from budgetnet.rewrites import resolve_rules

        found = [self.baseline]
        for rule in resolve_rules(self.rules):
            for site in rule.sites(self.baseline):
                try:
                    found.append(rule.rewrite(self.baseline, site, tolerance=None).after)
                except RewriteError:
                    continue
        return found

    def _counts(self) -> str:
        info = self.graph.graph
        return (
            f"{info['checked']} sites checked with rules {', '.join(self.rules)}: {info['refused']} "
            f"refused by a rule, {info['rejected']} off budget or too deep"
        )

    # -- description -------------------------------------------------------------------------
    def options(self) -> dict:
        return {
            "max_steps": self.max_steps,
            "rules": list(self.rules),
            "tolerance": self.tolerance,
            "max_depth": self.max_depth,
            "max_variants": self.max_variants,
        }

    def summary(self) -> str:
        rewrites = "rewrite" if self.max_steps == 1 else "rewrites"
        text = f"layer replacement from {self.baseline}, up to {self.max_steps} {rewrites} ({', '.join(self.rules)})"
        if self._graph is not None:
            text += f", {len(self.candidates())} candidates"
        return text


class SmallReplacementSpace(LayerReplacementSpace):
    """:class:`LayerReplacementSpace` from the small baseline (:func:`search_spaces.small.baseline`).

    Args:
        budget: the budget; ``None`` is the small baseline's cost.
        baseline: default :func:`search_spaces.small.baseline` on ``input_shape`` and ``num_classes``.
        tolerance: the budget's tolerance (see :func:`budgetnet.cost.budgets.resolve_budget`).
        input_shape: default 1x16x16.
        num_classes: default 10.
        **options: as for LayerReplacementSpace (``max_steps``, ``rules``, ...).

    Example:
        >>> space = SmallReplacementSpace(input_shape=(1, 28, 28))
        >>> space.baseline.notation(), space.baseline.input_shape
        ('(3,16) 2/2 (5,32) 2/2 (3,64)x3 spp(2,1)', (1, 28, 28))
    """

    def __init__(
        self,
        budget=None,
        baseline: Arch | None = None,
        tolerance: float | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        **options,
    ):
        if baseline is None:
            baseline = small.baseline(input_shape, num_classes)
        super().__init__(baseline, budget, tolerance, input_shape=input_shape, num_classes=num_classes, **options)
