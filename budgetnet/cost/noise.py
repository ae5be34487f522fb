"""How noisy a timing is, and what a time budget says about noisy timings.

A :class:`Spread` describes the timed runs of one measurement
(:attr:`budgetnet.cost.latency.Measurement.spread`): the median a budget compares, the middle
half of the runs and all of them, and whether they are too far apart to trust (:attr:`Spread.noisy`,
the rule of :data:`NOISE_LIMIT`). :class:`~budgetnet.cost.budgets.LatencyBudget` words its
:class:`NoisyTimingWarning` and its refusals with :func:`noise_warning` and
:func:`time_budget_refusal`. Nothing here imports torch or times anything.

Example:
    >>> Spread.of([1.0, 1.1, 1.2, 1.3, 5.0]).describe()  # one slow run is not noise
    '1.2 ms/image, median of 5 runs (middle half 1.1-1.3 ms, all 1-5 ms)'
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence, Union

from budgetnet.errors import BudgetError

if TYPE_CHECKING:
    from budgetnet.cost.budgets import LatencyBudget
    from budgetnet.graph.arch import Arch

#: A timing is noisy when the middle half of its runs spans more than this share of its median,
#: or when its fastest run is faster than the median by more than this share of it.
NOISE_LIMIT = 0.5


@dataclass(frozen=True)
class Spread:
    """The timed runs of a :class:`~budgetnet.cost.latency.Measurement` per image: the fastest, the quartiles
    (``q1_ms``, ``median_ms``, ``q3_ms``: the middle half of the runs lies between
    ``q1_ms`` and ``q3_ms``) and the slowest.

    The timing is :attr:`noisy` when the middle half spans more than :data:`NOISE_LIMIT`
    of the median, or when the fastest run beats the median by more than that share of it:
    the network can run that fast, so the median is mostly time spent waiting for the CPU
    (on a loaded machine a whole measurement can be slowed a thousandfold, its runs close
    together). One slow run among ten (a page fault, a busy neighbour) moves neither the
    median nor the quartiles nor the fastest run. One run shows no spread and is never
    called noisy.

    Example:
        >>> spread = Spread.of([2.0, 4.0, 6.0, 8.0, 200.0], batch_size=2)
        >>> spread.q1_ms, spread.median_ms, spread.q3_ms, spread.noisy
        (2.0, 3.0, 4.0, True)
        >>> spread.describe()
        '3 ms/image, median of 5 runs (middle half 2-4 ms, all 1-100 ms; noisy: the middle half spans 67% of the median, the fastest run was 3x faster than the median)'
        >>> Spread.of([0.2, 90.0, 95.0, 100.0]).describe()
        '92.5 ms/image, median of 4 runs (middle half 67.5-96.2 ms, all 0.2-100 ms; noisy: the fastest run was 462x faster than the median)'
    """

    runs: int
    fastest_ms: float
    q1_ms: float
    median_ms: float
    q3_ms: float
    slowest_ms: float

    @classmethod
    def of(cls, times_ms, batch_size: int = 1, median_ms: float | None = None) -> "Spread":
        """The spread of per-batch ``times_ms`` over ``batch_size`` images (``median_ms``:
        the median per image already computed, so that it is the very number a budget compares)."""
        per_image = sorted(time / batch_size for time in times_ms)
        if len(per_image) > 1:
            q1, median, q3 = statistics.quantiles(per_image, n=4, method="inclusive")
        else:
            q1 = median = q3 = per_image[0]
        return cls(len(per_image), per_image[0], q1, median if median_ms is None else median_ms, q3, per_image[-1])

    @property
    def relative_width(self) -> float:
        """The middle half's width as a share of the median."""
        return (self.q3_ms - self.q1_ms) / self.median_ms if self.median_ms > 0 else 0.0

    @property
    def noise(self) -> list[str]:
        """Why the runs are noisy, in words (empty when they are not)."""
        reasons = []
        if self.relative_width > NOISE_LIMIT:
            reasons.append(f"the middle half spans {self.relative_width:.0%} of the median")
        if self.median_ms - self.fastest_ms > NOISE_LIMIT * self.median_ms:
            reasons.append(f"the fastest run was {self.median_ms / self.fastest_ms:.3g}x faster than the median")
        return reasons

    @property
    def noisy(self) -> bool:
        """True when the runs are too far apart to trust their median (see the class text)."""
        return bool(self.noise)

    def describe(self) -> str:
        """The median, the middle half and every run in ms, and whether they are noisy."""
        if self.runs == 1:
            return f"{format_ms(self.median_ms)} ms/image, 1 run (no spread known)"
        noise = f"; noisy: {', '.join(self.noise)}" if self.noisy else ""
        return (
            f"{format_ms(self.median_ms)} ms/image, median of {self.runs} runs (middle half "
            f"{format_ms(self.q1_ms)}-{format_ms(self.q3_ms)} ms, all "
            f"{format_ms(self.fastest_ms)}-{format_ms(self.slowest_ms)} ms{noise})"
        )


def format_ms(value: float) -> str:
    """Milliseconds to three significant digits, never in exponent form.

    Example:
        >>> format_ms(0.23149), format_ms(0.2), format_ms(90.46), format_ms(1234.6)
        ('0.231', '0.2', '90.5', '1235')
    """
    if not value > 0:
        return f"{value:g}"
    text = f"{value:.{max(0, 2 - math.floor(math.log10(value)))}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class NoisyTimingWarning(UserWarning):
    """A time budget enforced on timings too noisy to decide it
    (see :meth:`budgetnet.cost.budgets.LatencyBudget.undecided`)."""


def steadier(repeats: int, ratio: str) -> str:
    """What to do about noisy timings: ``repeats`` is the budget's, ``ratio`` a MACs budget to offer.

    Example:
        >>> "with more repeats (now 10), or give a MACs budget such as 0.9x" in steadier(10, "0.9")
        True
    """
    return (
        "time on an idle machine (no other jobs, fewer --workers, fewer threads), with more repeats "
        f"(now {repeats}), or give a MACs budget such as {ratio}x, which does not depend on the machine"
    )


def noise_warning(budget: LatencyBudget, arch: Arch, spread: Spread) -> str:
    """The text of the :class:`NoisyTimingWarning` for ``arch``, whose runs (``spread``) cannot
    decide ``budget``.

    Example:
        >>> from budgetnet import LatencyBudget, parse
        >>> net = parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=2)
        >>> noise_warning(LatencyBudget(2.0, "cpu"), net, Spread.of([1.0, 2.0, 3.0, 4.0, 100.0])).split(":")[0]
        'time budget 2 ms/image on cpu (forward, batch 1) cannot be enforced reliably'
    """
    return (
        f"time budget {budget} cannot be enforced reliably: {arch} measured {spread.describe()}, and the "
        f"ceiling {format_ms(budget.limit_ms)} ms lies among its runs, so another measurement may decide "
        f"otherwise; {steadier(budget.repeats, '0.9')}"
    )


#: A time: the spread of measured runs, or milliseconds predicted by a latency table.
Time = Union[Spread, float]


def time_budget_refusal(
    budget: LatencyBudget,
    where: str,
    which: str,
    cheapest: Arch,
    cheapest_times: Sequence[Time],
    baseline: Arch,
    baseline_time: Time | None,
    ratio: str,
) -> BudgetError:
    """The error for a ``budget`` that ``cheapest`` (the ``which`` candidate of ``where``) did
    not meet at its first time: its times (measured, then measured again; or one predicted),
    the baseline's (``None`` when it is the cheapest), and ``ratio``, the MACs budget of the
    cheapest as a share of the baseline's. When a second time meets the budget, the budget
    cannot be decided on this machine, and the error says so.

    Example:
        >>> from budgetnet import LatencyBudget, parse
        >>> net = parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=2)
        >>> times = [Spread.of([1.0, 1.1, 1.2]), Spread.of([0.3, 0.4, 0.5])]  # over 0.5 ms, then under it
        >>> str(time_budget_refusal(LatencyBudget(0.5, "cpu"), "the small space", "cheapest", net, times, net, None, "1")).split(":")[0]
        'budget 0.5 ms/image on cpu (forward, batch 1) cannot be decided against the small space on this machine'
    """
    medians = [time.median_ms if isinstance(time, Spread) else time for time in cheapest_times]
    fastest = min(medians)
    if len(cheapest_times) == 2:
        times = f"measured {_words(cheapest_times[0])}, and {_words(cheapest_times[1])} when timed again"
    else:
        times = f"is predicted to take {_words(cheapest_times[0])}"
    times = f"the {which}, {cheapest}, {times}"
    if baseline_time is not None:
        times += f", and the baseline, {baseline}, {_words(baseline_time)}"
    spreads = [time for time in (*cheapest_times, baseline_time) if isinstance(time, Spread)]
    noisy = any(spread.noisy for spread in spreads) or max(medians) - fastest > NOISE_LIMIT * fastest
    if fastest <= budget.limit_ms:
        return BudgetError(
            f"budget {budget} cannot be decided against {where} on this machine: {times}; the ceiling "
            f"{format_ms(budget.limit_ms)} ms lies between these times, which are too noisy to enforce a time "
            f"budget; expected steadier times: {steadier(budget.repeats, ratio)}"
        )
    return BudgetError(
        f"budget {budget} is below every candidate of {where}: {times}; expected a time budget of at least "
        f"{format_ms(fastest)} ms/image ({'its faster median' if len(medians) == 2 else 'its time'}), or a MACs "
        f"budget of at least {ratio}x (its Eqn. (1) cost, which does not depend on the machine)"
        + (f"; these times are noisy: {steadier(budget.repeats, ratio)}" if noisy else "")
    )


def _words(time: Time) -> str:
    return time.describe() if isinstance(time, Spread) else f"{format_ms(time)} ms/image by the latency table"
