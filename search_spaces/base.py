"""The search-space interface: an Optuna trial in, one :class:`~budgetnet.Arch` out.

A :class:`SearchSpace` holds a baseline, a budget and the input it designs for. Its
:meth:`~SearchSpace.suggest` asks the trial for parameters that mean something to the
sampler (``"stage3_depth"``, ``"stage3_kernel"``, ``"pool_after_stage3"``,
``"delay_stage2"``, ``"step1"``, ...), never an index into a list, and returns the Arch they
describe. :meth:`~SearchSpace.check` raises :class:`~budgetnet.errors.BudgetError` before
the first trial when nothing in the space can meet the budget.

The budget is a hard ceiling, enforced by the study: it calls ``budget.admits(arch)`` on
every suggestion before training, and a candidate over budget is never trained but recorded
as infeasible with ``trial.set_constraint``. Each space's ``suggest`` documents when it can
return such a candidate.

Five spaces are registered in :data:`SPACES` and built by :func:`get_space`:

* ``"small"``: :class:`search_spaces.small.SmallStageSpace`, stages for 8-32 pixel inputs;
* ``"stage"``: :class:`search_spaces.stage.StageSpace`, the paper's stages at 224 pixels;
* ``"replacement"``: :class:`search_spaces.replacement.LayerReplacementSpace`, the
  layer-replacement variants of a baseline (the block rules included, so a residual
  baseline such as the zoo's ``resnet18`` works);
* ``"residual"`` and ``"residual224"``: :class:`search_spaces.residual.ResidualSpace`
  and :class:`~search_spaces.residual.Residual224Space`, residual stages (block type,
  blocks, kernel, groups, stride placement) for 16-32 px and 224 px inputs.

Example:
    >>> from search_spaces.base import get_space
    >>> space = get_space("small")
    >>> space.check()
    >>> space.input_shape, space.num_classes, space.budget.target_macs
    ((1, 16, 16), 10, 2330624)
"""

from __future__ import annotations

import abc
from typing import Sequence

from budgetnet.graph.arch import Arch
from budgetnet.cost.budgets import budget_to_dict, resolve_budget
from budgetnet import checks
from budgetnet.checks import check_shape
from budgetnet.errors import BudgetNetError, SearchError

#: The registered spaces, name -> class; each space's module adds its own with :func:`register`
#: (importing :mod:`search_spaces` imports them all).
SPACES: dict[str, type] = {}


def register(space_class: type) -> type:
    """Class decorator: make ``space_class`` buildable by :func:`get_space` under its ``name``.

    Example:
        >>> SPACES["small"].__name__
        'SmallStageSpace'
    """
    if not (isinstance(space_class, type) and issubclass(space_class, SearchSpace) and space_class.name):
        raise SearchError(f"register({space_class!r}): expected a SearchSpace subclass with a name")
    SPACES[space_class.name] = space_class
    return space_class


def space_names() -> str:
    """The registered names, for messages: ``"replacement, small, stage"``."""
    return ", ".join(sorted(SPACES))


def check_int(where: str, field: str, value, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a SearchError naming where, the field and the value.

    Example:
        >>> check_int("small space", "max_width", 256)
        256
    """
    return checks.check_int(SearchError, field, value, minimum, where)


class SearchSpace(abc.ABC):
    """Base class of every search space: a trial in, one Arch out.

    Attributes:
        name: the registered name (see :data:`SPACES`).
        baseline: the reference Arch; relative budgets and ratios are measured against it.
        budget: the hard budget, a :class:`~budgetnet.Budget` (or a latency budget).
        input_shape: ``(C, H, W)`` of the images every candidate takes.
        num_classes: width of every candidate's classifier.

    Subclasses implement :meth:`suggest`, :meth:`check`, :meth:`options` and
    :meth:`summary`.
    """

    name: str = ""

    def __init__(self, baseline: Arch, budget=None, tolerance: float | None = None):
        if not isinstance(baseline, Arch):
            raise SearchError(
                f"{self.name} space: baseline={baseline!r} is not a budgetnet.Arch; expected "
                "budgetnet.parse(...), Arch.load(...) or a model of search_spaces.paper.MODELS"
            )
        self.baseline = baseline
        self.budget = resolve_budget(budget, baseline, tolerance)
        self.input_shape = baseline.input_shape
        self.num_classes = baseline.num_classes

    @classmethod
    def create(cls, *, baseline=None, budget=None, tolerance=None, input_shape=None, num_classes=None, **options):
        """The space for :func:`get_space` (a space whose constructor differs overrides this)."""
        return cls(
            budget, baseline, tolerance=tolerance, input_shape=input_shape, num_classes=num_classes, **options
        )

    @abc.abstractmethod
    def suggest(self, trial) -> Arch:
        """Ask ``trial`` for this space's parameters and return the Arch they describe."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise BudgetError (or SearchError) when no candidate can meet the budget."""

    @abc.abstractmethod
    def options(self) -> dict:
        """The space's own settings, JSON-ready (part of :meth:`to_dict`)."""

    @abc.abstractmethod
    def summary(self) -> str:
        """What the space varies, in a few words (part of :meth:`describe`)."""

    @property
    def target_macs(self) -> int | None:
        """The budget's Eqn. (1) target, or ``None`` for a budget of another kind."""
        return self.budget.target if self.budget.unit == "MACs" else None

    def to_dict(self) -> dict:
        """A JSON-ready description; the study stores it to refuse resuming with another space."""
        return {
            "space": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "baseline": self.baseline.to_dict(),
            "budget": budget_to_dict(self.budget),
            "options": self.options(),
        }

    def describe(self) -> str:
        """One line for the terminal."""
        shape = "x".join(str(side) for side in self.input_shape)
        return f"{self.name} space on {shape} inputs, {self.num_classes} classes: {self.summary()}; budget {self.budget}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def retarget(baseline: Arch, input_shape=None, num_classes=None) -> Arch:
    """``baseline`` on another input shape and/or class count, or a SearchError if it does not fit.

    Example:
        >>> from search_spaces.paper import MODELS
        >>> retarget(MODELS["A"], num_classes=10).num_classes
        10
    """
    if input_shape is None and num_classes is None:
        return baseline
    try:
        return baseline.with_input(
            None if input_shape is None else tuple(input_shape),
            num_classes,
        )
    except BudgetNetError as error:  # ShapeError, ArchError: say which baseline and which input
        raise SearchError(
            f"baseline {baseline} does not fit input_shape={input_shape!r}, "
            f"num_classes={num_classes!r}: {error}"
        ) from None


def get_space(
    name: str,
    *,
    baseline: Arch | None = None,
    budget=None,
    tolerance: float | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    **options,
) -> SearchSpace:
    """Build a registered search space by name.

    Args:
        name: a key of :data:`SPACES`: ``"small"``, ``"stage"``, ``"replacement"``,
            ``"residual"`` or ``"residual224"``.
        baseline: the reference Arch. Defaults: the small baseline for ``"small"``, model A
            for ``"stage"``, and the one that suits the input for ``"replacement"``.
        budget: see :func:`budgetnet.cost.budgets.resolve_budget`; ``None`` is the baseline's own cost.
        tolerance: the budget's relative tolerance (``None``: a budget object's own, 5 % for
            one given as ``None``, text or a number).
        input_shape: ``(C, H, W)`` of the data; the baseline is moved onto it.
        num_classes: the data's class count; the baseline's classifier is resized to it.
        **options: passed to the space's class (``max_steps``, ``kernels``, ...).

    Raises:
        SearchError: an unknown name (the message lists :data:`SPACES`), or a baseline that
            does not fit the input.

    Example:
        >>> get_space("stage", num_classes=10).baseline.notation()
        '(7,64)/2 3/3 (5,128) 2/2 (3,256)x3'
        >>> get_space("nas")
        Traceback (most recent call last):
        ...
        budgetnet.errors.SearchError: space='nas' is unknown; expected one of replacement, residual, residual224, small, stage
    """
    if name not in SPACES:
        raise SearchError(f"space={name!r} is unknown; expected one of {space_names()}")
    if input_shape is not None:
        input_shape = check_shape(SearchError, input_shape)
    if num_classes is not None:
        check_int(f"{name} space", "num_classes", num_classes)
    if baseline is not None:
        baseline = retarget(baseline, input_shape, num_classes)
    return SPACES[name].create(
        baseline=baseline, budget=budget, tolerance=tolerance, input_shape=input_shape, num_classes=num_classes, **options
    )
