"""StageSpace: depth, filter size, pooling and delayed subsampling per stage; widths solved.

A candidate is the paper's stage layout (Sec. 4): a fixed stem (stage 1), then searchable
stages, each opened by a pool. Per searchable stage ``N`` the trial picks

* ``stageN_depth``: how many convs (an int in the stage's range);
* ``stageN_kernel``: their filter size (one of ``kernels``, default 2, 3, 5);
* ``delay_stageN``: delayed subsampling (Sec. 4.6): the pool that opens the stage keeps
  stride 1 and the stage's first conv takes the pool's stride;

and ``pool_after_stageM`` (M the last stage) inserts a pool and a new stage ``M+1`` with
its own depth, kernel and delay (Sec. 4.5, model J). The widths are not sampled: every
conv of stage ``N`` gets one width ``w_N``, except the network's last conv, which keeps the
width the head expects (256 in the paper), and the ``w_N`` are **solved** so that the
candidate's Eqn. (1) cost is as close as possible to the budget without passing its
ceiling. All stages share one scale ``alpha`` (``w_N = alpha * base_N`` rounded to
``width_multiple``), found by bisection on :func:`budgetnet.cost.complexity.conv_macs`; then the
``w_N`` move apart, a step of ``width_multiple`` at a time, while that lands closer to the
target.

With the paper's settings and a zero-tolerance budget equal to a model's cost, the space
gives back models A, B, C, D, E, J and their delayed versions B', D', E', J' exactly.

Example:
    >>> import optuna
    >>> from search_spaces.stage import StageSpace
    >>> space = StageSpace("1.0x")
    >>> arch = space.suggest(optuna.trial.FixedTrial({
    ...     "stage2_depth": 4, "stage2_kernel": 2, "delay_stage2": False,
    ...     "stage3_depth": 6, "stage3_kernel": 2, "delay_stage3": False,
    ...     "pool_after_stage3": False}))
    >>> str(arch), space.budget.matches(arch)
    ('(7,64)/2 3/3 (2,128)x4 2/2 (2,256)x6', True)
    >>> from search_spaces.paper import MODELS
    >>> arch == MODELS["E"]
    True
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

from budgetnet.graph.arch import FC, REDUCERS, SPP, Arch, Conv, Layer, Pool, paper_head
from budgetnet.checks import is_int
from budgetnet.cost.budgets import LatencyBudget
from budgetnet.cost.complexity import conv_macs, format_count
from budgetnet.errors import BudgetError, BudgetNetError, SearchError, ShapeError
from budgetnet.graph.shapes import infer_shapes
from search_spaces.base import SearchSpace, check_int, register, retarget

BISECTION_STEPS = 48


@dataclass(frozen=True)
class StageSpec:
    """One searchable stage: the pool that opens it, its width at scale 1 and its depth range.

    Example:
        >>> StageSpec(Pool(2), 256, 1, 8).max_depth
        8
    """

    pool: Pool
    width: int
    min_depth: int = 1
    max_depth: int = 4

    def __post_init__(self):
        if not isinstance(self.pool, Pool):
            raise SearchError(f"StageSpec: pool={self.pool!r} is invalid; expected a budgetnet.Pool such as Pool(2)")
        check_int("StageSpec", "width", self.width)
        check_int("StageSpec", "min_depth", self.min_depth)
        check_int("StageSpec", "max_depth", self.max_depth, self.min_depth)


@dataclass(frozen=True)
class StageChoice:
    """What a trial picked for one stage."""

    depth: int
    kernel: int
    delay: bool = False


#: The paper's stage 1 (Table 1): one 7x7 conv of 64 filters, stride 2.
PAPER_STEM: tuple[Layer, ...] = (Conv(7, 64, stride=2),)
#: Stages 2 and 3 of model A: opened by the 3/3 and 2/2 pools, widths 128 and 256.
PAPER_STAGES = (StageSpec(Pool(3), 128, 1, 4), StageSpec(Pool(2), 256, 1, 8))
#: Stage 4 of model J: opened by a 3/3 pool, width 2304 = 256 * 3^2 (Eqn. (11)).
PAPER_EXTRA_STAGE = StageSpec(Pool(3), 2304, 1, 3)
#: The last conv's width in every model of Tables 1-2 (the SPP and fc layers expect it).
PAPER_LAST_WIDTH = 256


@register
class StageSpace(SearchSpace):
    """Depth and filter size per stage, optional pool insertion and delayed subsampling,
    widths solved so each candidate costs the budget.

    Args:
        budget: the budget (see :func:`search_spaces.base.resolve_budget`); ``None`` is the
            baseline's cost.
        baseline: reference Arch for relative budgets and ratios; default model A (moved
            onto ``input_shape`` / ``num_classes`` when they are given).
        tolerance: relative tolerance of a budget given as ``None``, text or a number.
        input_shape: ``(C, H, W)``; default the baseline's.
        num_classes: classifier width; default the baseline's.
        stem: the fixed layers of stage 1.
        stages: one :class:`StageSpec` per searchable stage, in order.
        extra_stage: the stage that ``pool_after_stageM`` inserts, or ``None`` for no
            pool insertion.
        kernels: filter sizes a stage may take.
        width_multiple: solved widths are multiples of this.
        min_width: narrowest solved width (default ``width_multiple``).
        max_width: widest solved width.
        last_width: the last conv's width, fixed (the head expects it).
        head: reducer and fc layers after the last stage (default the paper's SPP, fc4096,
            fc4096).
        delay: offer delayed subsampling (``delay_stageN``) for pools with a stride > 1.

    Raises:
        SearchError: a setting out of range, or a stage or kernel that does not fit the input.
    """

    name = "stage"

    @property
    def where(self) -> str:
        return f"{self.name} space"

    def __init__(
        self,
        budget=None,
        baseline: Arch | None = None,
        *,
        tolerance: float | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        stem: Sequence[Layer] = PAPER_STEM,
        stages: Sequence[StageSpec] = PAPER_STAGES,
        extra_stage: StageSpec | None = PAPER_EXTRA_STAGE,
        kernels: Sequence[int] = (2, 3, 5),
        width_multiple: int = 16,
        min_width: int | None = None,
        max_width: int = 4096,
        last_width: int = PAPER_LAST_WIDTH,
        head: Sequence[Layer] | None = None,
        delay: bool = True,
    ):
        if baseline is None:
            baseline = self.default_baseline(input_shape, num_classes)
        else:
            baseline = retarget(baseline, input_shape, num_classes)
        super().__init__(baseline, budget, tolerance)
        self.stem = self._check_layers("stem", stem, (Conv, Pool))
        self.stages = self._check_stages(stages)
        if extra_stage is not None and not isinstance(extra_stage, StageSpec):
            raise SearchError(f"{self.where}: extra_stage={extra_stage!r} is invalid; expected a StageSpec or None")
        self.extra_stage = extra_stage
        self.kernels = self._check_kernels(kernels)
        self.width_multiple = check_int(self.where, "width_multiple", width_multiple)
        self.min_width = check_int(self.where, "min_width", width_multiple if min_width is None else min_width)
        self.max_width = check_int(self.where, "max_width", max_width, self.min_width)
        self.last_width = check_int(self.where, "last_width", last_width)
        self.head = self._check_layers("head", paper_head() if head is None else head, REDUCERS + (FC,))
        if not isinstance(delay, bool):
            raise SearchError(f"{self.where}: delay={delay!r} is invalid; expected True or False")
        self.delay = delay
        self.first_stage = 2 + sum(isinstance(layer, Pool) for layer in self.stem)
        self._solved: dict[tuple[StageChoice, ...], Arch] = {}
        self._heads: dict[tuple[StageChoice, ...], tuple[Layer, ...]] = {}
        self._check_fits()

    def default_baseline(self, input_shape, num_classes) -> Arch:
        """Model A, on ``input_shape`` and ``num_classes`` when given."""
        from budgetnet.graph.zoo import PAPER_MODELS as MODELS

        return retarget(MODELS["A"], input_shape, num_classes)

    # -- the trial ---------------------------------------------------------------------------
    def suggest(self, trial) -> Arch:
        """Ask ``trial`` for depth, kernel and delay per stage and for pool insertion; solve widths.

        Returns the candidate whose widths bring its Eqn. (1) cost closest to the target
        without passing the budget's ceiling. When even ``min_width`` everywhere passes the
        ceiling, it returns that narrowest candidate, which is over budget: the study's
        ``budget.admits(arch)`` check then refuses to train it and records it as infeasible.
        When ``max_width`` everywhere stays below the target, it returns that widest
        candidate, which is cheaper than the budget (and admitted).
        """
        choices = [self._suggest_stage(trial, number, spec) for number, spec in self._numbered(self.stages)]
        if self.extra_stage is not None:
            last = self.first_stage + len(self.stages) - 1
            if trial.suggest_categorical(f"pool_after_stage{last}", [False, True]):
                choices.append(self._suggest_stage(trial, last + 1, self.extra_stage))
        return self.solve(tuple(choices))

    def _suggest_stage(self, trial, number: int, spec: StageSpec) -> StageChoice:
        depth = trial.suggest_int(f"stage{number}_depth", spec.min_depth, spec.max_depth)
        kernel = trial.suggest_categorical(f"stage{number}_kernel", list(self.kernels))
        delay = False
        if self.delay and spec.pool.stride > 1:
            delay = trial.suggest_categorical(f"delay_stage{number}", [False, True])
        return StageChoice(depth, kernel, delay)

    # -- building and solving ----------------------------------------------------------------
    def _numbered(self, specs) -> list[tuple[int, StageSpec]]:
        return [(self.first_stage + i, spec) for i, spec in enumerate(specs)]

    def _specs(self, count: int) -> list[tuple[int, StageSpec]]:
        specs = list(self.stages) + ([self.extra_stage] if count > len(self.stages) else [])
        return self._numbered(specs)

    def free_stages(self, choices: Sequence[StageChoice]) -> list[int]:
        """The stages whose width is solved (all but a last stage made of the last conv alone)."""
        numbers = [number for number, _ in self._specs(len(choices))]
        return [n for n, c in zip(numbers, choices) if n != numbers[-1] or c.depth > 1]

    def layers(self, choices: Sequence[StageChoice], widths: dict[int, int]) -> list[Layer]:
        """The layers of the candidate with these stage choices and stage widths."""
        return self._features(choices, widths) + list(self.head_for(tuple(choices)))

    def head_for(self, choices: tuple[StageChoice, ...]) -> tuple[Layer, ...]:
        """The head on the map these choices end with: an SPP keeps the levels that fit the
        map (the paper's 6x6 level needs a 6x6 map; a deep small candidate ends at 1x1, where
        only the 1x1 level is defined), or the map itself as its one level when none does."""
        if choices not in self._heads:
            features = self._features(choices, dict.fromkeys(self.free_stages(choices), self.min_width))
            side = min(infer_shapes(features, self.input_shape)[-1].out_shape[1:])
            self._heads[choices] = tuple(
                SPP(tuple(level for level in layer.levels if level <= side) or (side,), layer.mode)
                if isinstance(layer, SPP) and max(layer.levels) > side
                else layer
                for layer in self.head
            )
        return self._heads[choices]

    def _features(self, choices: Sequence[StageChoice], widths: dict[int, int]) -> list[Layer]:
        layers = list(self.stem)
        numbered = self._specs(len(choices))
        for position, ((number, spec), choice) in enumerate(zip(numbered, choices)):
            pool, stride = spec.pool, 1
            if choice.delay:
                pool, stride = Pool(pool.kernel_size, 1, pool.padding, pool.mode), spec.pool.stride
            layers.append(pool)
            for index in range(choice.depth):
                last = position == len(choices) - 1 and index == choice.depth - 1
                width = self.last_width if last else widths[number]
                layers.append(Conv(choice.kernel, width, stride if index == 0 else 1))
        return layers

    def build(self, choices: Sequence[StageChoice], widths: dict[int, int]) -> Arch:
        """The candidate as an Arch."""
        return Arch(self.layers(choices, widths), self.input_shape, self.num_classes)

    def _round(self, width: float) -> int:
        width = self.width_multiple * round(width / self.width_multiple)
        return min(self.max_width, max(self.min_width, width))

    def solve(self, choices: tuple[StageChoice, ...]) -> Arch:
        """The candidate for these stage choices with its widths solved against the budget.

        Bisection on the shared scale ``alpha`` finds the widest widths the budget admits;
        from there a hill-climb moves the widths, one ``width_multiple`` at a time per stage,
        while an admitted neighbour is closer to the target. For a budget with no MACs
        target (such as a latency budget) the bisection result is kept.
        """
        if choices in self._solved:
            return self._solved[choices]
        free = self.free_stages(choices)
        base = {number: spec.width for number, spec in self._specs(len(choices)) if number in free}

        def at(scale: float) -> dict[int, int]:
            return {number: self._round(scale * width) for number, width in base.items()}

        narrowest = self.build(choices, {number: self.min_width for number in free})
        widest = self.build(choices, {number: self.max_width for number in free})
        if not free or not self.budget.admits(narrowest):
            arch = narrowest
        elif self.budget.admits(widest):
            arch = widest
        else:
            low, high = 0.0, self.max_width / min(base.values())
            for _ in range(BISECTION_STEPS):
                if all(abs(a - b) <= self.width_multiple for a, b in zip(at(low).values(), at(high).values())):
                    break
                middle = (low + high) / 2
                if self.budget.admits(self.build(choices, at(middle))):
                    low = middle
                else:
                    high = middle
            if self.target_macs is None:
                arch = self.build(choices, at(low))
            else:
                arch = self._closest(choices, at(low))
        self._solved[choices] = arch
        return arch

    def _closest(self, choices, start: dict[int, int]) -> Arch:
        """Hill-climb from ``start``: move to the admitted neighbour (every width moved by
        at most one ``width_multiple``) closest to the target until none is closer."""
        best = self.build(choices, start)
        best_gap = abs(conv_macs(best) - self.target_macs)
        current = start
        while True:
            moves = [
                sorted({self._round(width + step * self.width_multiple) for step in (-1, 0, 1)})
                for width in current.values()
            ]
            found = None
            for combination in itertools.product(*moves):
                widths = dict(zip(current, combination))
                arch = self.build(choices, widths)
                cost = conv_macs(arch)
                if self.budget.admits(cost) and abs(cost - self.target_macs) < best_gap:
                    best, best_gap, found = arch, abs(cost - self.target_macs), widths
            if found is None:
                return best
            current = found

    # -- the budget ----------------------------------------------------------------------------
    def structures(self, depth: str = "min") -> list[tuple[StageChoice, ...]]:
        """Every combination of kernels, delays and pool insertion, each stage at its
        ``"min"`` or ``"max"`` depth (what :meth:`check` costs)."""

        def per_stage(spec: StageSpec) -> list[StageChoice]:
            count = spec.min_depth if depth == "min" else spec.max_depth
            delays = [False, True] if self.delay and spec.pool.stride > 1 else [False]
            return [StageChoice(count, kernel, flag) for kernel in self.kernels for flag in delays]

        options = [per_stage(spec) for spec in self.stages]
        structures = list(itertools.product(*options))
        if self.extra_stage is not None:
            structures += [s + (extra,) for s in structures for extra in per_stage(self.extra_stage)]
        return structures

    def extremes(self) -> tuple[Arch, Arch]:
        """The cheapest candidate (least depth, ``min_width``) and the most expensive one
        (most depth, ``max_width``), by Eqn. (1) over every kernel, delay and pool choice."""
        cheapest = min(
            (self.build(c, dict.fromkeys(self.free_stages(c), self.min_width)) for c in self.structures("min")),
            key=conv_macs,
        )
        priciest = max(
            (self.build(c, dict.fromkeys(self.free_stages(c), self.max_width)) for c in self.structures("max")),
            key=conv_macs,
        )
        return cheapest, priciest

    def check(self) -> None:
        """Raise BudgetError when no candidate fits under the budget, or when no candidate
        can reach it (every width at ``max_width`` still costs less than the target minus the
        tolerance); the message names the budget and the cost of the nearest candidate (for a
        time budget, the measured times of the cheapest and the baseline with their spread)."""
        cheapest, priciest = self.extremes()
        if not self.budget.admits(cheapest):
            if isinstance(self.budget, LatencyBudget):  # in measured ms, with the spread of the runs
                raise self.budget.below_every_candidate(f"the {self.name} space", cheapest, self.baseline)
            cost = conv_macs(cheapest)
            raise BudgetError(
                f"budget {self.budget} is below every candidate of the {self.name} space: the "
                f"cheapest, {cheapest}, costs {format_count(cost)} MACs ({cost:,}, Eqn. (1)); "
                f"expected a budget of at least {format_count(cost)} MACs "
                f"({cost / conv_macs(self.baseline):.3g}x the baseline)"
            )
        tolerance = getattr(self.budget, "tolerance", 0.0)
        cost = conv_macs(priciest)
        if self.target_macs is not None and cost < self.target_macs * (1 - tolerance):
            raise BudgetError(
                f"budget {self.budget} is out of reach of the {self.name} space: the most "
                f"expensive candidate, {priciest}, costs {format_count(cost)} MACs ({cost:,}, "
                f"Eqn. (1)); expected a budget of at most {format_count(cost)} MACs, or a larger "
                f"max_width (now {self.max_width})"
            )

    # -- description -------------------------------------------------------------------------
    def options(self) -> dict:
        from budgetnet.graph.arch import layer_to_dict

        def spec(s: StageSpec | None):
            if s is None:
                return None
            return {"pool": layer_to_dict(s.pool), "width": s.width, "min_depth": s.min_depth, "max_depth": s.max_depth}

        return {
            "stem": [layer_to_dict(layer) for layer in self.stem],
            "stages": [spec(s) for s in self.stages],
            "extra_stage": spec(self.extra_stage),
            "kernels": list(self.kernels),
            "width_multiple": self.width_multiple,
            "min_width": self.min_width,
            "max_width": self.max_width,
            "last_width": self.last_width,
            "head": [layer_to_dict(layer) for layer in self.head],
            "delay": self.delay,
        }

    def summary(self) -> str:
        from budgetnet.graph.printing import format_layer

        kernels = "/".join(str(k) for k in self.kernels)
        parts = [
            f"stage {n} depth {s.min_depth}-{s.max_depth}" for n, s in self._numbered(self.stages)
        ]
        text = f"{', '.join(parts)}, kernels {kernels}"
        if self.extra_stage is not None:
            last = self.first_stage + len(self.stages) - 1
            text += (
                f", optional stage {last + 1} (depth {self.extra_stage.min_depth}-"
                f"{self.extra_stage.max_depth}) after a {format_layer(self.extra_stage.pool)} pool"
            )
        if self.delay:
            text += ", delayed subsampling"
        return text + f"; widths solved (multiples of {self.width_multiple}, {self.min_width}-{self.max_width})"

    # -- validation --------------------------------------------------------------------------
    def _check_layers(self, field: str, layers, kinds) -> tuple[Layer, ...]:
        try:
            layers = tuple(layers)
        except TypeError:
            layers = None
        if layers is None or not all(isinstance(layer, kinds) for layer in layers):
            names = ", ".join(kind.__name__ for kind in kinds)
            raise SearchError(f"{self.where}: {field}={layers!r} is invalid; expected a list of {names} layers")
        return layers

    def _check_stages(self, stages) -> tuple[StageSpec, ...]:
        try:
            stages = tuple(stages)
        except TypeError:
            stages = ()
        if not stages or not all(isinstance(stage, StageSpec) for stage in stages):
            raise SearchError(f"{self.where}: stages={stages!r} is invalid; expected a non-empty list of StageSpec")
        return stages

    def _check_kernels(self, kernels) -> tuple[int, ...]:
        try:
            values = tuple(dict.fromkeys(kernels))
        except TypeError:
            values = ()
        if not values or any(not is_int(k, 1) for k in values):
            raise SearchError(
                f"{self.where}: kernels={kernels!r} is invalid; expected a non-empty list of integers >= 1"
            )
        return values

    def _check_fits(self) -> None:
        """Every stage, with every kernel at its least depth (and one more), fits the input
        (the other stages probed with 1x1 convs, so that an error names the right stage)."""
        counts = [len(self.stages)] + ([len(self.stages) + 1] if self.extra_stage is not None else [])
        for count in counts:
            numbered = self._specs(count)
            for position, (number, spec) in enumerate(numbered):
                depths = sorted({spec.min_depth, min(spec.min_depth + 1, spec.max_depth)})
                for kernel, depth in itertools.product(self.kernels, depths):
                    choices = [StageChoice(s.min_depth, 1) for _, s in numbered]  # 1x1 always fits
                    choices[position] = StageChoice(depth, kernel)
                    try:
                        self.build(choices, dict.fromkeys(self.free_stages(choices), self.min_width))
                    except ShapeError as error:
                        raise SearchError(
                            f"{self.where}: stage{number}_kernel={kernel} (depth {depth}) does not "
                            f"fit the input {self.input_shape}: {error}; expected kernels that fit, "
                            "fewer stages or a larger input"
                        ) from None
                    except BudgetNetError as error:
                        raise SearchError(f"{self.where}: the settings do not make a valid Arch: {error}") from None
