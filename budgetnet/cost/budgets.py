"""Budgets: a ceiling on a network's cost, in Eqn. (1) MACs or in measured milliseconds.

Every budget is a :class:`CostBudget`: a ``target`` in its ``unit``, a relative
``tolerance``, and the same four questions about an Arch (or a cost already counted):

* ``cost(arch)``: the Arch's cost in the budget's unit;
* ``admits(arch)``: the hard test of the search, ``cost <= target * (1 + tolerance)``;
* ``matches(arch)``: the equal-cost test of layer replacement, ``cost`` within
  ``tolerance`` of the target on either side;
* ``slack(arch)``: the signed room left under the ceiling (negative when over).

:class:`Budget` counts Eqn. (1); :class:`LatencyBudget` measures time on a
device (through :mod:`budgetnet.cost.latency`). :func:`parse_budget` reads both from text (one grammar), and :func:`resolve_budget`
turns whatever a user gives into a budget with one tolerance rule: **a tolerance given
explicitly applies to any budget; otherwise a budget object keeps its own, and a budget
built from text, a number or ``None`` gets** :data:`DEFAULT_TOLERANCE`.

Example:
    >>> import budgetnet
    >>> base = budgetnet.parse("(3,8)", input_shape=(1, 4, 4))
    >>> budget = parse_budget("0.5x", base, tolerance=0.1)
    >>> budget.target, budget.unit, budget.admits(600), budget.admits(700)
    (576, 'MACs', True, False)
    >>> resolve_budget(budget, base).tolerance, resolve_budget(budget, base, tolerance=0.0).tolerance
    (0.1, 0.0)
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import math
import re
import warnings
from typing import TYPE_CHECKING, Union

from budgetnet.graph.arch import Arch
from budgetnet.checks import is_int
from budgetnet.cost.complexity import conv_macs, format_count
from budgetnet.cost.noise import NoisyTimingWarning, Spread, noise_warning, time_budget_refusal
from budgetnet.errors import BudgetError

if TYPE_CHECKING:  # annotations only: importing torch here would make `import budgetnet` slow
    import torch

    from budgetnet.cost.latency import LatencyTable, Measurement

#: The tolerance of a budget built from text, a number or ``None`` when none is given.
DEFAULT_TOLERANCE = 0.05

#: The budget grammar: a number, then ``x`` (of the baseline), an SI suffix of MACs
#: (``K``, ``M``, ``G``, ``T``), nothing (MACs), or ``ms`` (per image) with ``@device``.
_GRAMMAR = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)\s*(ms(?:@(\S+))?|[xXkKmMgGtT]?)\s*")
_EXPECTED = (
    "expected a ratio like 0.9x, or MACs like 850M, 1.2G, 850000000, or milliseconds per image "
    "like 2.5ms or 2.5ms@cuda"
)
_SCALES = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def check_tolerance(value, field: str = "tolerance", allow_none: bool = False) -> float | None:
    """A relative tolerance (``0.05`` = 5%) as a float, or a BudgetError naming ``field``.

    Example:
        >>> check_tolerance(0.05)
        0.05
        >>> check_tolerance(-1, "budget tolerance")
        Traceback (most recent call last):
        ...
        budgetnet.errors.BudgetError: budget tolerance=-1 is invalid; expected a number >= 0 (a relative change of the cost, 0.05 = 5%)
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        accepted = "a number >= 0" + (" or None" if allow_none else "")
        raise BudgetError(f"{field}={value!r} is invalid; expected {accepted} (a relative change of the cost, 0.05 = 5%)")
    return float(value)


class CostBudget(abc.ABC):
    """The interface every budget shares (see the module docstring).

    Subclasses set ``tolerance`` and ``label`` and implement :attr:`target`, :attr:`unit`,
    :meth:`cost`, :meth:`with_tolerance`, :meth:`to_dict` and :meth:`describe_target`.
    """

    tolerance: float
    label: str

    @property
    @abc.abstractmethod
    def target(self) -> float:
        """The target cost, in :attr:`unit`."""

    @property
    @abc.abstractmethod
    def unit(self) -> str:
        """``"MACs"`` or ``"ms"``."""

    @abc.abstractmethod
    def cost(self, arch: Union[Arch, int, float]) -> float:
        """The cost of ``arch`` in :attr:`unit`; a number is a cost already counted."""

    @abc.abstractmethod
    def with_tolerance(self, tolerance: float) -> "CostBudget":
        """The same budget with another tolerance."""

    @abc.abstractmethod
    def to_dict(self) -> dict:
        """The budget as JSON-ready values."""

    @abc.abstractmethod
    def describe_target(self) -> str:
        """The target in words, e.g. ``"2.3M MACs (1x baseline)"``."""

    @property
    def limit(self) -> float:
        """The hard ceiling, ``target * (1 + tolerance)``."""
        return self.target * (1 + self.tolerance)

    def admits(self, arch) -> bool:
        """True when ``arch`` costs at most :attr:`limit`."""
        return self.cost(arch) <= self.limit

    def matches(self, arch) -> bool:
        """True when ``arch`` costs within ``tolerance`` of the target, either side."""
        return abs(self.cost(arch) - self.target) <= self.tolerance * self.target

    def slack(self, arch):
        """``limit - cost``: the room left under the ceiling (negative when over)."""
        return self.limit - self.cost(arch)

    def __str__(self) -> str:
        return self.describe_target() + (f" ±{self.tolerance:.1%}" if self.tolerance else "")


@dataclasses.dataclass(frozen=True)
class Budget(CostBudget):
    """A ceiling on Eqn. (1): ``target_macs`` with a relative ``tolerance``.

    Example:
        >>> import budgetnet
        >>> from search_spaces.paper import MODELS
        >>> budget = budgetnet.Budget.relative(MODELS["A"], 1.0, tolerance=0.05)
        >>> budget.admits(MODELS["J'"]), budget.matches(MODELS["J'"])
        (True, True)
        >>> budget.slack(MODELS["C"]) < 0
        False
    """

    target_macs: int
    tolerance: float = 0.0
    label: str = ""

    def __post_init__(self):
        if isinstance(self.target_macs, bool) or not isinstance(self.target_macs, (int, float)) or not (
            self.target_macs > 0 and math.isfinite(self.target_macs)
        ):
            raise BudgetError(f"budget target_macs={self.target_macs!r} is invalid; expected a number of MACs > 0")
        check_tolerance(self.tolerance, "budget tolerance")
        object.__setattr__(self, "target_macs", int(round(self.target_macs)))

    @classmethod
    def relative(cls, baseline: Arch, ratio: float = 1.0, tolerance: float = 0.0) -> "Budget":
        """``ratio`` times the baseline's Eqn. (1) cost."""
        if not isinstance(baseline, Arch):
            raise BudgetError(f"budget baseline={baseline!r} is not a budgetnet.Arch; expected budgetnet.parse(...)")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not (ratio > 0 and math.isfinite(ratio)):
            raise BudgetError(f"budget ratio={ratio!r} is invalid; expected a number > 0 (1.0 = the baseline's cost)")
        return cls(conv_macs(baseline) * ratio, tolerance, f"{ratio:g}x baseline")

    @classmethod
    def parse(cls, text: str, baseline: Arch | None = None, tolerance: float = 0.0, device: str = "auto"):
        """:func:`parse_budget` (a time per image gives a :class:`LatencyBudget`).

        Example:
            >>> Budget.parse("850M").target_macs
            850000000
        """
        return parse_budget(text, baseline, tolerance, device)

    @property
    def target(self) -> int:
        return self.target_macs

    @property
    def unit(self) -> str:
        return "MACs"

    @property
    def limit_macs(self) -> int:
        """The hard ceiling in whole MACs, ``int(target * (1 + tolerance))``."""
        return int(self.target_macs * (1 + self.tolerance))

    @property
    def limit(self) -> int:
        return self.limit_macs

    def cost(self, arch: Union[Arch, int]) -> int:
        """Eqn. (1) of ``arch``, or ``arch`` itself when it is already a MAC count."""
        if isinstance(arch, Arch):
            return conv_macs(arch)
        if not is_int(arch):
            raise BudgetError(f"budget: arch={arch!r} is invalid; expected a budgetnet.Arch or a MAC count")
        return arch

    def with_tolerance(self, tolerance: float) -> "Budget":
        return dataclasses.replace(self, tolerance=tolerance)

    def to_dict(self) -> dict:
        return {"target_macs": self.target_macs, "tolerance": self.tolerance, "label": self.label}

    def describe_target(self) -> str:
        return f"{format_count(self.target_macs)} MACs" + (f" ({self.label})" if self.label else "")


# -- measured time ------------------------------------------------------------------------------
class LatencyBudget(CostBudget):
    """A ceiling on measured time: ``ms_per_image`` on ``device``, with a relative ``tolerance``.

    The cost of an Arch is its measured time per image (:func:`budgetnet.cost.latency.measure`, cached by the
    Arch's fingerprint), or its time predicted by ``table`` when one is given
    (``table=True`` uses the cached table of the device). It is a
    :class:`CostBudget`: ``admits``, ``matches`` and ``slack`` mean what
    they mean for :class:`budgetnet.Budget`, in milliseconds.

    Measured times are medians over ``repeats`` runs, and runs on a busy machine lie far
    apart. The first measurement that cannot decide the budget (:meth:`undecided`) emits one
    :class:`NoisyTimingWarning` naming its times; :meth:`below_every_candidate`, the error
    of a search space whose cheapest candidate does not fit, times that candidate again to
    tell noise from cost and gives both times in milliseconds with their spread.

    Example:
        >>> import budgetnet
        >>> budget = LatencyBudget(1000.0, "cpu", tolerance=0.1, repeats=2, warmup=1)
        >>> budget.admits(budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8), num_classes=2))
        True
        >>> str(LatencyBudget.parse("2.5ms@cpu"))
        '2.5 ms/image on cpu (forward, batch 1)'
    """

    def __init__(
        self,
        ms_per_image: float,
        device: str | torch.device = "auto",
        tolerance: float = 0.0,
        *,
        batch_size: int = 1,
        mode: str = "forward",
        table: LatencyTable | bool | None = None,
        repeats: int = 10,
        warmup: int = 3,
        label: str = "",
    ):
        if (
            isinstance(ms_per_image, bool)
            or not isinstance(ms_per_image, (int, float))
            or not (ms_per_image > 0 and math.isfinite(ms_per_image))
        ):
            raise BudgetError(f"budget ms_per_image={ms_per_image!r} is invalid; expected milliseconds > 0")
        check_tolerance(tolerance, "budget tolerance")
        from budgetnet.cost.latency import LatencyTable, check_settings

        dev, batch_size, mode, _ = check_settings(device, batch_size, mode, repeats, warmup, None)
        self.ms_per_image = float(ms_per_image)
        self.device = str(dev)
        self.tolerance = float(tolerance)
        self.batch_size, self.mode, self.repeats, self.warmup = batch_size, mode, repeats, warmup
        self.label = label
        if table is True:
            table = LatencyTable(dev, batch_size=batch_size, mode=mode, repeats=repeats, warmup=warmup)
        if table is False:
            table = None
        if table is not None and not isinstance(table, LatencyTable):
            raise BudgetError(f"budget table={table!r} is invalid; expected a LatencyTable, True or None")
        self.table = table
        self._costs: dict[str, float] = {}
        self._measurements: dict[str, Measurement] = {}
        self._warned = False

    @classmethod
    def parse(
        cls, text: str, device: str | torch.device = "auto", tolerance: float = 0.0, **options
    ) -> "LatencyBudget":
        """Read ``"2.5ms"`` or ``"2.5ms@cuda"`` (milliseconds per image on a device), with
        :func:`parse_budget`'s grammar.

        Example:
            >>> LatencyBudget.parse("0.8ms@cpu", tolerance=0.05).limit_ms
            0.8400000000000001
        """
        if not is_time_budget(text):
            raise BudgetError(f"budget={text!r} is invalid; expected milliseconds per image like 2.5ms or 2.5ms@cuda")
        budget = parse_budget(text, tolerance=tolerance, device=device)
        return cls(budget.ms_per_image, budget.device, tolerance, label=budget.label, **options)

    @property
    def target(self) -> float:
        return self.ms_per_image

    @property
    def unit(self) -> str:
        return "ms"

    @property
    def limit_ms(self) -> float:
        """The hard ceiling, ``ms_per_image * (1 + tolerance)``."""
        return self.limit

    def with_tolerance(self, tolerance: float) -> "LatencyBudget":
        budget = copy.copy(self)
        budget.tolerance = check_tolerance(tolerance, "budget tolerance")
        return budget

    def cost(self, arch: Union[Arch, float]) -> float:
        """Milliseconds per image of ``arch`` (measured or predicted); a number passes through."""
        if not isinstance(arch, Arch):
            return float(arch)
        key = arch.fingerprint()
        if key not in self._costs:
            if self.table is not None:
                self._costs[key] = self.table.predict(arch).ms_per_image
            else:
                self.remember(arch, self._measure(arch))
        return self._costs[key]

    def remember(self, arch: Arch, measurement: Measurement) -> None:
        """Take ``measurement`` as the time of ``arch`` (one already taken, or one a test
        makes up); the first one that cannot decide the budget (:meth:`undecided`) warns."""
        key = arch.fingerprint()
        self._measurements[key] = measurement
        self._costs[key] = measurement.ms_per_image
        if not self._warned and self.undecided(measurement):
            self._warned = True
            warnings.warn(noise_warning(self, arch, measurement.spread), NoisyTimingWarning, stacklevel=2)

    def undecided(self, measurement: Measurement) -> bool:
        """True when ``measurement`` is too noisy to decide this budget: its runs are noisy
        (:attr:`budgetnet.cost.noise.Spread.noisy`: the middle half spans more than
        :data:`~budgetnet.cost.noise.NOISE_LIMIT` of the median, or the fastest run took less
        than that share of it) and the ceiling :attr:`limit_ms` lies between its fastest and its
        slowest run, so that runs fall on both sides and another measurement may decide otherwise.

        Example:
            >>> from budgetnet.cost.latency import Measurement
            >>> times = (1.0, 2.0, 3.0, 4.0, 100.0)  # middle half 2-4 ms around a median of 3
            >>> noisy = Measurement(3.0, 3.0, 1, "cpu", "forward", 5, times, (1, 8, 8), "float32")
            >>> LatencyBudget(2.0, "cpu").undecided(noisy), LatencyBudget(0.5, "cpu").undecided(noisy)
            (True, False)
        """
        spread = measurement.spread
        return spread.noisy and spread.fastest_ms <= self.limit_ms <= spread.slowest_ms

    def below_every_candidate(
        self, where: str, cheapest: Arch, baseline: Arch, which: str = "cheapest by Eqn. (1)"
    ) -> BudgetError:
        """The error for a budget that ``cheapest`` (the ``which`` candidate of ``where``, a
        search space) did not meet (:func:`budgetnet.cost.noise.time_budget_refusal`). A
        measured ``cheapest`` is timed a second time first, to tell noise from cost; the cost
        stays the first time.

        Example:
            >>> import budgetnet
            >>> base = budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8), num_classes=2)
            >>> budget = LatencyBudget(1e-6, "cpu", repeats=3, warmup=1)
            >>> text = str(budget.below_every_candidate("the small space", base, base))
            >>> text.startswith("budget 1e-06 ms/image on cpu (forward, batch 1) is below every candidate of the small space")
            True
            >>> "ms/image, median of 3 runs (middle half" in text and "when timed again" in text
            True
        """
        times = [self._time(cheapest)]
        if isinstance(times[0], Spread):
            times.append(self._measure(cheapest).spread)
        baseline_time = None if baseline.fingerprint() == cheapest.fingerprint() else self._time(baseline)
        ratio = f"{conv_macs(cheapest) / conv_macs(baseline):.3g}"
        return time_budget_refusal(self, where, which, cheapest, times, baseline, baseline_time, ratio)

    def _time(self, arch: Arch) -> Spread | float:
        """The spread of the runs ``arch`` was measured with, or the time a table predicts."""
        cost = self.cost(arch)
        measurement = self._measurements.get(arch.fingerprint())
        return cost if measurement is None else measurement.spread

    def _measure(self, arch: Arch) -> Measurement:
        from budgetnet.cost.latency import measure

        return measure(arch, self.device, self.batch_size, self.mode, repeats=self.repeats, warmup=self.warmup)

    def to_dict(self) -> dict:
        return {
            "ms_per_image": self.ms_per_image,
            "device": self.device,
            "tolerance": self.tolerance,
            "batch_size": self.batch_size,
            "mode": self.mode,
            "table": self.table is not None,
            "label": self.label,
        }

    def describe_target(self) -> str:
        return f"{self.ms_per_image:g} ms/image on {self.device} ({self.mode}, batch {self.batch_size})"

    def __repr__(self) -> str:
        return f"LatencyBudget({self.ms_per_image!r}, {self.device!r}, tolerance={self.tolerance!r})"


def parse_budget(text, baseline: Arch | None = None, tolerance: float = 0.0, device: str = "auto") -> CostBudget:
    """Read a budget: ``"0.9x"`` (of ``baseline``), ``"850M"``, ``"1.2G"``, ``"850000000"``
    (MACs), or ``"2.5ms"`` / ``"2.5ms@cuda"`` (milliseconds per image, on ``device`` unless
    named); a number is MACs.

    Raises:
        BudgetError: text outside the grammar, or a ratio without a baseline.

    Example:
        >>> parse_budget("1.2G").target_macs
        1200000000
        >>> str(parse_budget("2.5ms@cpu"))
        '2.5 ms/image on cpu (forward, batch 1)'
        >>> parse_budget("850 MB")
        Traceback (most recent call last):
        ...
        budgetnet.errors.BudgetError: budget='850 MB' is invalid; expected a ratio like 0.9x, or MACs like 850M, 1.2G, 850000000, or milliseconds per image like 2.5ms or 2.5ms@cuda
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return Budget(text, tolerance)
    match = _GRAMMAR.fullmatch(str(text))
    if not match:
        raise BudgetError(f"budget={text!r} is invalid; {_EXPECTED}")
    value, unit = float(match.group(1)), match.group(2)
    if unit.startswith("ms"):
        return LatencyBudget(value, match.group(3) or device, tolerance, label=str(text).strip())
    if unit in ("x", "X"):
        if baseline is None:
            raise BudgetError(f"budget={text!r} is relative; give a baseline to measure it against")
        return Budget.relative(baseline, value, tolerance)
    return Budget(value * _SCALES[unit.upper()], tolerance, str(text).strip())


def is_time_budget(text) -> bool:
    """True when ``text`` is a budget in milliseconds (it needs a device to be measured on).

    Example:
        >>> is_time_budget("2ms@cuda"), is_time_budget("2M")
        (True, False)
    """
    match = _GRAMMAR.fullmatch(str(text))
    return bool(match) and match.group(2).startswith("ms")


def resolve_budget(budget, baseline: Arch, tolerance: float | None = None, device: str = "auto") -> CostBudget:
    """A budget from what a user gives, with the one tolerance rule (module docstring).

    Args:
        budget: ``None`` (the baseline's own cost), a :class:`CostBudget`, text for
            :func:`parse_budget` or a number of MACs.
        baseline: what relative budgets (``None``, ``"0.9x"``) are measured against.
        tolerance: given: the tolerance of the result, whatever ``budget`` is; ``None``: a
            budget object keeps its own, any other gets :data:`DEFAULT_TOLERANCE`.
        device: where a time budget without ``@device`` is measured.

    Example:
        >>> import budgetnet
        >>> base = budgetnet.parse("(3,8)", input_shape=(1, 4, 4))
        >>> str(resolve_budget("0.5x", base))
        '576 MACs (0.5x baseline) ±5.0%'
        >>> resolve_budget(Budget(1000, 0.2), base).tolerance
        0.2
    """
    tolerance = check_tolerance(tolerance, allow_none=True)
    if isinstance(budget, CostBudget):
        return budget if tolerance is None else budget.with_tolerance(tolerance)
    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    if budget is None:
        return Budget.relative(baseline, 1.0, tolerance)
    if isinstance(budget, (str, int, float)) and not isinstance(budget, bool):
        return parse_budget(budget, baseline, tolerance, device)
    raise BudgetError(
        f"budget={budget!r} is invalid; expected a budgetnet.Budget or LatencyBudget, a ratio of the baseline "
        "like '0.9x', MACs like '850M', milliseconds like '2ms', or a number of MACs"
    )


def budget_to_dict(budget: CostBudget) -> dict:
    """A JSON-ready description of a budget: its type and its ``to_dict()``.

    Example:
        >>> budget_to_dict(Budget(1000, 0.05, "1K"))
        {'type': 'Budget', 'target_macs': 1000, 'tolerance': 0.05, 'label': '1K'}
    """
    return {"type": type(budget).__name__, **budget.to_dict()}
