"""Residual stage spaces: per stage the block type, blocks, kernel, groups and stride placement,
with the bottleneck widths solved so every candidate costs the budget.

The stage *output* widths, the stem and the head are fixed (so are the shapes between
stages); each stage chooses

==========================  =====================================================================
parameter                   values
==========================  =====================================================================
``stageN_block``            ``basic`` (two k x k convs, He et al. 2016), ``bottleneck`` (1x1, k x k,
                            1x1), ``inverted`` (1x1 expansion, depthwise k x k, linear 1x1;
                            Sandler et al. 2018)
``stageN_blocks``           1 to ``max_blocks``
``stageN_kernel``           the spatial filter size, from ``kernels``
``stageN_groups``           groups of the spatial conv (basic and bottleneck), from ``groups``
``stageN_stride_on``        a downsampling stage's stride on the ``first`` conv (ResNet v1) or the
                            ``spatial`` one (v1.5: He & Sun's delayed subsampling)
==========================  =====================================================================

Every block has an automatic shortcut (identity, or a 1x1 projection when the shape
changes). The inner width of stage N is ``k * unit * 2^(N-1)`` rounded up to a multiple of
its groups (times 4 for an inverted block's expansion), with one integer ``k`` for the whole
net: the largest ``k`` the budget admits (cost grows with ``k``; a bisection finds it).

Two spaces are registered (:data:`search_spaces.base.SPACES`):

* ``"residual"``: :class:`ResidualSpace` on 16-32 px inputs, a ``(3,16)bn`` stem, stages of
  16, 32 and 64 and ``gap``; the budget defaults to the zoo's ``small_residual`` (ResNet-14),
  so a search on the bundled digits finishes in minutes on 2 CPU cores;
* ``"residual224"``: :class:`Residual224Space` at 224 px: ResNet's stem, stages of 256, 512, 1024
  and 2048, budget ResNet-50's (for GPU users).

Example:
    >>> import optuna
    >>> space = ResidualSpace()
    >>> space.check()
    >>> arch = space.suggest(optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask())
    >>> space.budget.admits(arch), arch.feature_shape
    (True, (64, 4, 4))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from budgetnet.graph.arch import Arch
from budgetnet.cost.budgets import LatencyBudget
from budgetnet.cost.complexity import conv_macs
from budgetnet.errors import BudgetError, BudgetNetError, SearchError
from budgetnet.graph.notation import parse
from search_spaces.base import SearchSpace, check_int, register, retarget

BLOCK_TYPES = ("basic", "bottleneck", "inverted")
STRIDE_PLACES = ("first", "spatial")
#: An inverted block expands its input this many times more than a bottleneck's width unit.
INVERTED_EXPANSION = 4
#: The largest width unit ``k`` the bisection tries.
MAX_UNITS = 4096


@dataclass(frozen=True)
class BlockChoice:
    """What a trial chose for one stage."""

    block: str
    blocks: int
    kernel: int
    groups: int
    stride_on: str


@register
class ResidualSpace(SearchSpace):
    """Residual stages with a solved bottleneck width (see the module text).

    Args:
        budget: see :func:`search_spaces.base.resolve_budget`; ``None`` is the baseline's cost.
        baseline: the reference Arch; default the zoo's ``small_residual`` on the input.
        tolerance: relative tolerance of a budget given as ``None``, text or a number.
        input_shape: ``(C, H, W)``; default the baseline's (1x16x16).
        num_classes: classifier width; default the baseline's (10).
        stem: the notation of the fixed first layers.
        widths: the output width of each stage; stages after the first halve the map.
        unit: the inner width of stage 1 per unit of ``k``.
        max_blocks: most blocks per stage.
        kernels: spatial filter sizes a stage may take.
        groups: groups a basic or bottleneck stage's spatial conv may take.
        head: the notation of the head (after the last stage).

    Raises:
        SearchError: a setting out of range, or a layout that does not fit the input.
    """

    name = "residual"

    def __init__(
        self,
        budget=None,
        baseline: Arch | None = None,
        *,
        tolerance: float = 0.05,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        stem: str = "(3,16)bn",
        widths: Sequence[int] = (16, 32, 64),
        unit: int = 2,
        max_blocks: int = 3,
        kernels: Sequence[int] = (3, 5),
        groups: Sequence[int] = (1, 2, 4),
        head: str = "gap",
    ):
        if baseline is None:
            from budgetnet.graph.zoo import get

            baseline = get("small_residual")
        baseline = retarget(baseline, input_shape, num_classes)
        super().__init__(baseline, budget, tolerance)
        where = f"{self.name} space"
        self.stem, self.head = stem, head
        self.widths = tuple(check_int(where, "widths", width) for width in _sequence(where, "widths", widths))
        self.unit = check_int(where, "unit", unit)
        self.max_blocks = check_int(where, "max_blocks", max_blocks)
        self.kernels = tuple(check_int(where, "kernels", kernel, 1) for kernel in _sequence(where, "kernels", kernels))
        self.groups = tuple(check_int(where, "groups", value) for value in _sequence(where, "groups", groups))
        for value in self.groups:
            if any(width % value for width in self.widths):
                raise SearchError(f"{where}: groups={value} does not divide the stage widths {list(self.widths)}")
        self._solved: dict[tuple[BlockChoice, ...], Arch] = {}
        try:
            self.build(self.smallest(), 1)
        except BudgetNetError as error:
            raise SearchError(f"{where}: the layout does not fit input {self.input_shape}: {error}") from None

    # -- the trial ---------------------------------------------------------------------------------
    def suggest(self, trial) -> Arch:
        """Ask ``trial`` for each stage's block, blocks, kernel, groups and stride place, and
        return the candidate with the widest inner widths the budget admits (the narrowest,
        over budget, when none is admitted: the study then records it as infeasible)."""
        choices = []
        for number in range(1, len(self.widths) + 1):
            block = trial.suggest_categorical(f"stage{number}_block", list(BLOCK_TYPES))
            blocks = trial.suggest_int(f"stage{number}_blocks", 1, self.max_blocks)
            kernel = trial.suggest_categorical(f"stage{number}_kernel", list(self.kernels))
            groups = 1
            if block != "inverted" and len(self.groups) > 1:
                groups = trial.suggest_categorical(f"stage{number}_groups", list(self.groups))
            stride_on = "first"
            if number > 1 and block != "basic":
                stride_on = trial.suggest_categorical(f"stage{number}_stride_on", list(STRIDE_PLACES))
            choices.append(BlockChoice(block, blocks, kernel, groups, stride_on))
        return self.solve(tuple(choices))

    # -- building ------------------------------------------------------------------------------------
    def notation(self, choices: Sequence[BlockChoice], k: int) -> str:
        """The candidate's notation with width unit ``k``.

        Example:
            >>> str(ResidualSpace().build([BlockChoice("bottleneck", 2, 3, 2, "first")] * 3, 4))
            '(3,16)bn res[(1,8)bn (3,8)g2bn (1,16)bn@none]x2 res[(1,16)/2bn (3,16)g2bn (1,32)bn@none] res[(1,16)bn (3,16)g2bn (1,32)bn@none] res[(1,32)/2bn (3,32)g2bn (1,64)bn@none] res[(1,32)bn (3,32)g2bn (1,64)bn@none] gap'
        """
        parts = [self.stem]
        for number, (choice, width) in enumerate(zip(choices, self.widths), start=1):
            inner = k * self.unit * 2 ** (number - 1) * (INVERTED_EXPANSION if choice.block == "inverted" else 1)
            inner = -(-inner // choice.groups) * choice.groups
            stride = 2 if number > 1 else 1
            first = _block(choice, inner, width, stride)
            rest = _block(choice, inner, width, 1)
            parts.append(first)
            if choice.blocks > 1:
                parts.append(rest + (f"x{choice.blocks - 1}" if choice.blocks > 2 else ""))
        return " ".join(parts + [self.head])

    def build(self, choices: Sequence[BlockChoice], k: int) -> Arch:
        """The candidate as an Arch."""
        return parse(self.notation(choices, k), self.input_shape, self.num_classes)

    def solve(self, choices: tuple[BlockChoice, ...]) -> Arch:
        """The candidate for these choices with the largest width unit the budget admits."""
        if choices in self._solved:
            return self._solved[choices]
        if not self.budget.admits(self.build(choices, 1)):
            arch = self.build(choices, 1)
        else:
            low, high = 1, 2
            while high < MAX_UNITS and self.budget.admits(self.build(choices, high)):
                low, high = high, high * 2
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if self.budget.admits(self.build(choices, middle)) else (low, middle)
            arch = self.build(choices, low)
        self._solved[choices] = arch
        return arch

    def smallest(self) -> tuple[BlockChoice, ...]:
        """The cheapest structure: one bottleneck of the smallest kernel and most groups per stage."""
        return tuple(BlockChoice("bottleneck", 1, min(self.kernels), max(self.groups), "first") for _ in self.widths)

    # -- the budget ----------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise BudgetError when even the cheapest candidate at ``k = 1`` passes the budget
        (for a time budget, with the measured times of the cheapest and the baseline)."""
        cheapest = self.build(self.smallest(), 1)
        if isinstance(self.budget, LatencyBudget) and not self.budget.admits(cheapest):
            raise self.budget.below_every_candidate(f"the {self.name} space", cheapest, self.baseline)
        if self.target_macs is None:
            return
        if not self.budget.admits(cheapest):
            raise BudgetError(
                f"{self.name} space: budget {self.budget} is below the cheapest candidate "
                f"({conv_macs(cheapest):,} MACs: {cheapest}); expected a larger budget"
            )

    def options(self) -> dict:
        return {
            "stem": self.stem,
            "widths": list(self.widths),
            "unit": self.unit,
            "max_blocks": self.max_blocks,
            "kernels": list(self.kernels),
            "groups": list(self.groups),
            "head": self.head,
        }

    def summary(self) -> str:
        return (
            f"{len(self.widths)} residual stages (widths {'/'.join(map(str, self.widths))}): block "
            f"{'/'.join(BLOCK_TYPES)}, 1-{self.max_blocks} blocks, kernel {'/'.join(map(str, self.kernels))}, "
            f"groups {'/'.join(map(str, self.groups))}, stride on the first or spatial conv; inner widths solved"
        )


def _block(choice: BlockChoice, inner: int, width: int, stride: int) -> str:
    """One block in the notation."""
    k, g = choice.kernel, f"g{choice.groups}" if choice.groups > 1 else ""
    on_first = stride if choice.stride_on == "first" else 1
    on_spatial = stride if choice.stride_on == "spatial" else 1

    def s(value: int) -> str:
        return f"/{value}" if value > 1 else ""

    if choice.block == "basic":
        return f"res[({k},{inner}){s(stride)}{g}bn ({k},{width}){g}bn@none]"
    if choice.block == "bottleneck":
        return f"res[(1,{inner}){s(on_first)}bn ({k},{inner}){s(on_spatial)}{g}bn (1,{width})bn@none]"
    return f"res[(1,{inner}){s(on_first)}bn@relu6 ({k},{inner}){s(on_spatial)}dwbn@relu6 (1,{width})bn@none]@none"


def _sequence(where: str, field: str, values) -> tuple:
    try:
        values = tuple(values)
    except TypeError:
        values = ()
    if not values:
        raise SearchError(f"{where}: {field}={values!r} is invalid; expected a non-empty list of integers")
    return values


@register
class Residual224Space(ResidualSpace):
    """The 224-px residual space: ResNet's stem and head, stages of 256, 512, 1024 and 2048
    (bottleneck outputs), up to 6 blocks, a width unit of 4, and by default the budget and
    the input of torchvision's ResNet-50 (the zoo's ``resnet50_v1.5``). Meant for GPU users;
    other arguments as for :class:`ResidualSpace`.

    Example:
        >>> space = Residual224Space()
        >>> space.check()
        >>> space.input_shape, round(space.budget.target_macs / 1e9, 2)
        ((3, 224, 224), 4.09)
    """

    name = "residual224"

    def __init__(
        self,
        budget=None,
        baseline: Arch | None = None,
        *,
        stem: str = "(7,64)/2p3bn 3/2p1",
        widths: Sequence[int] = (256, 512, 1024, 2048),
        unit: int = 4,
        max_blocks: int = 6,
        **options,
    ):
        if baseline is None:
            from budgetnet.graph.zoo import get

            baseline = get("resnet50_v1.5")
        super().__init__(budget, baseline, stem=stem, widths=widths, unit=unit, max_blocks=max_blocks, **options)


__all__ = ["BLOCK_TYPES", "BlockChoice", "Residual224Space", "ResidualSpace"]
