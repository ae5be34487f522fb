"""Tests for ``budgetnet.cost.budgets``: Budget, the one grammar, the one tolerance rule, and the
interface that Budget and LatencyBudget share.

Golden values are hand arithmetic written here (model A's Eqn. (1) cost from tests/test_paper.py).
"""

from __future__ import annotations

import math
import statistics
import warnings

import pytest

import budgetnet
from budgetnet import Budget, parse
from budgetnet.cost.budgets import CostBudget, budget_to_dict, is_time_budget, parse_budget, resolve_budget
from budgetnet.errors import BudgetError
from budgetnet.cost import latency
from budgetnet.cost.budgets import LatencyBudget
from budgetnet.cost.noise import NoisyTimingWarning
from search_spaces.paper import MODELS

A_MACS = 854_954_688  # Eqn. (1) of model A, by hand in tests/test_paper.py

def test_absolute_budget():
    budget = Budget(1000, tolerance=0.1, label="tiny")
    assert budget.target_macs == 1000
    assert budget.limit_macs == 1100  # 1000 * (1 + 0.1)
    assert budget.admits(1100) and not budget.admits(1101)
    assert budget.slack(1000) == 100 and budget.slack(1200) == -100 and budget.slack(1100) == 0
    assert budget.matches(900) and budget.matches(1100)
    assert not budget.matches(899) and not budget.matches(1101)
    assert str(budget) == "1.0K MACs (tiny) ±10.0%"


def test_budget_against_archs():
    budget = Budget(A_MACS)
    assert budget.admits(MODELS["A"]) and budget.matches(MODELS["A"])
    assert budget.slack(MODELS["A"]) == 0
    assert budget.slack(MODELS["B"]) == A_MACS - 821_400_256 > 0
    assert not budget.admits(MODELS["C"])  # C is 1.02 x A
    assert budget.slack(MODELS["C"]) == A_MACS - 876_188_352 < 0


def test_relative_budget():
    budget = Budget.relative(MODELS["A"], 1.02, tolerance=0.0)
    assert budget.target_macs == round(A_MACS * 1.02) == 872_053_782
    assert budget.label == "1.02x baseline"
    assert not budget.admits(MODELS["C"])
    assert budget.slack(MODELS["C"]) == 872_053_782 - 876_188_352
    loose = Budget.relative(MODELS["A"], 1.0, tolerance=0.05)
    assert all(loose.admits(arch) for arch in MODELS.values())  # every row is within 1.02 x A
    assert loose.matches(MODELS["E"])  # 0.99 x A is within 5 % of A
    assert not loose.matches(MODELS["I"])  # 0.93 x A is not


@pytest.mark.parametrize(
    "text, target",
    [
        ("850M", 850_000_000),
        ("1.2G", 1_200_000_000),
        ("850000000", 850_000_000),
        (" 2.5k ", 2_500),
        ("1T", 10**12),
        ("3e6", 3_000_000),
    ],
)
def test_parse_absolute(text, target):
    assert Budget.parse(text).target_macs == target


def test_parse_relative():
    budget = Budget.parse("0.9x", baseline=MODELS["A"], tolerance=0.01)
    assert budget.target_macs == round(A_MACS * 0.9) == 769_459_219
    assert budget.tolerance == 0.01
    assert Budget.parse("1X", baseline=MODELS["A"]).target_macs == A_MACS
    assert Budget.parse(850_000_000).target_macs == 850_000_000


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Budget.relative(MODELS["A"], 0), "budget ratio=0 is invalid; expected a number > 0"),
        (lambda: Budget.relative(MODELS["A"], -0.5), "budget ratio=-0.5 is invalid"),
        (lambda: Budget.relative(MODELS["A"], math.nan), "budget ratio=nan is invalid"),
        (lambda: Budget.parse("0x", baseline=MODELS["A"]), "budget ratio=0.0 is invalid"),
        (lambda: Budget(1000, tolerance=-0.1), "budget tolerance=-0.1 is invalid; expected a number >= 0"),
        (lambda: Budget(1000, tolerance="5%"), "budget tolerance='5%' is invalid"),
        (lambda: Budget(0), "budget target_macs=0 is invalid; expected a number of MACs > 0"),
        (lambda: Budget(-5), "budget target_macs=-5 is invalid"),
        (lambda: Budget(True), "budget target_macs=True is invalid"),
        (lambda: Budget.parse("fast"), "budget='fast' is invalid; expected a ratio like 0.9x, or MACs like 850M"),
        (lambda: Budget.parse("850 MB"), "budget='850 MB' is invalid"),
        (lambda: Budget.parse(""), "budget='' is invalid"),
        (lambda: Budget.parse("-1G"), "budget='-1G' is invalid"),
        (lambda: Budget.parse("0.9x"), "budget='0.9x' is relative; give a baseline"),
        (lambda: Budget.parse("1e999"), "budget target_macs=inf is invalid"),
        (lambda: Budget.relative("A", 0.9), "budget baseline='A' is not a budgetnet.Arch"),
        (lambda: Budget(1000).admits("A"), "budget: arch='A' is invalid; expected a budgetnet.Arch or a MAC count"),
        (lambda: Budget(1000).slack(None), "budget: arch=None is invalid"),
    ],
)
def test_bad_budgets(make, message):
    with pytest.raises(BudgetError) as error:
        make()
    assert message in str(error.value)
    assert isinstance(error.value, budgetnet.BudgetNetError)


def test_budget_and_latency_budget_share_one_interface():
    budgets = [Budget(1000, 0.1), LatencyBudget(2.0, "cpu", tolerance=0.1)]
    costs = {"MACs": (1100, 1101, 900, 899), "ms": (2.2, 2.21, 1.8, 1.79)}  # limit, over, -10 %, beyond
    for budget, unit in zip(budgets, costs):
        limit, over, low, beyond = costs[unit]
        assert isinstance(budget, CostBudget) and budget.unit == unit
        assert budget.limit == pytest.approx(limit)  # target * (1 + 0.1)
        assert budget.admits(limit) and not budget.admits(over)
        assert budget.matches(low) and not budget.matches(beyond)
        assert budget.slack(budget.target) == pytest.approx(limit - budget.target)
        looser = budget.with_tolerance(0.5)
        assert type(looser) is type(budget) and looser.tolerance == 0.5 and budget.tolerance == 0.1
        assert looser.target == budget.target
        assert budget_to_dict(budget)["type"] == type(budget).__name__
    assert str(budgets[1]) == "2 ms/image on cpu (forward, batch 1) ±10.0%"


def test_one_grammar_for_macs_ratios_and_milliseconds():
    base = parse("(3,8)", input_shape=(1, 4, 4))  # 1 * 9 * 8 * 16 = 1152 MACs
    assert parse_budget("0.5x", base).target == 576
    assert parse_budget("2K").target == 2000 and parse_budget(3000).target == 3000
    latency = parse_budget("2.5ms@cpu", tolerance=0.2)
    assert isinstance(latency, LatencyBudget) and (latency.target, latency.device, latency.tolerance) == (2.5, "cpu", 0.2)
    assert parse_budget("1.5ms", device="cpu").device == "cpu"
    assert is_time_budget(" 2ms ") and is_time_budget("1e-1ms@cuda:1")
    assert not any(is_time_budget(text) for text in ("2M", "2m", "2x", "ms", "2 ms MB"))
    with pytest.raises(BudgetError, match=r"budget='2M@cpu' is invalid; expected a ratio like 0.9x"):
        parse_budget("2M@cpu")  # a device only goes with milliseconds


def test_one_tolerance_rule():
    base = parse("(3,8)", input_shape=(1, 4, 4))
    own = Budget(1000, 0.2)
    # No tolerance given: a budget object keeps its own; a built one gets the default 5 %.
    assert resolve_budget(own, base) is own
    assert resolve_budget("0.5x", base).tolerance == resolve_budget(None, base).tolerance == 0.05
    assert resolve_budget(1000, base).tolerance == 0.05
    # A tolerance given applies to every kind of budget, objects included.
    assert resolve_budget(own, base, tolerance=0.0).tolerance == 0.0 and own.tolerance == 0.2
    latency = resolve_budget(LatencyBudget(1.0, "cpu", tolerance=0.3), base, tolerance=0.1)
    assert isinstance(latency, LatencyBudget) and latency.tolerance == 0.1
    assert resolve_budget("1ms", base, device="cpu").device == "cpu"
    with pytest.raises(BudgetError, match=r"tolerance=-0.5 is invalid; expected a number >= 0 or None"):
        resolve_budget(own, base, tolerance=-0.5)
    with pytest.raises(BudgetError, match=r"budget=\[1\] is invalid; expected a budgetnet.Budget or LatencyBudget"):
        resolve_budget([1], base)


# -- a time budget on noisy timings (issue 20): measured times injected, nothing is timed -------------------

CHEAP = parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=2)  # Eqn. (1): 1 * 3^2 * 4 * 8^2 = 2,304 MACs
BASE = parse("(3,8) gap", input_shape=(1, 8, 8), num_classes=2)  # 1 * 3^2 * 8 * 8^2 = 4,608 MACs: 0.5x
STEADIER = ("time on an idle machine (no other jobs, fewer --workers, fewer threads), with more repeats (now 10), "
            "or give a MACs budget such as 0.5x, which does not depend on the machine")  # fmt: skip


def timing(*times: float) -> latency.Measurement:
    """A measurement of batch 1 with these per-run times (ms)."""
    median = statistics.median(times)
    return latency.Measurement(median, median, 1, "cpu", "forward", len(times), times, (1, 8, 8), "float32")


@pytest.fixture
def timings(monkeypatch):
    """Make `measure` hand out the measurements appended to the returned list, in order."""
    queue: list[latency.Measurement] = []
    monkeypatch.setattr(latency, "measure", lambda arch, *args, **kwargs: queue.pop(0))
    return queue


def test_a_noisy_timing_that_cannot_decide_the_budget_warns_once(timings):
    timings += [timing(1, 2, 3, 4, 100), timing(1, 2, 3, 4, 100)]  # middle half 2-4 ms around 3: noisy
    budget = LatencyBudget(2.0, "cpu")
    with pytest.warns(NoisyTimingWarning) as record:
        assert not budget.admits(CHEAP)  # 3 ms > 2 ms
        assert not budget.admits(BASE)  # noisy as well: no second warning
    assert len(record) == 1
    assert str(record[0].message) == (
        "time budget 2 ms/image on cpu (forward, batch 1) cannot be enforced reliably: (3,4) gap measured 3 ms/image, "
        "median of 5 runs (middle half 2-4 ms, all 1-100 ms; noisy: the middle half spans 67% of the median, the "
        "fastest run was 3x faster than the median), and the ceiling 2 ms lies among its runs, so another measurement "
        "may decide otherwise; " + STEADIER.replace("0.5x", "0.9x")
    )


@pytest.mark.parametrize(
    "times, target",
    [((1, 2, 3, 4, 100), 0.5),  # noisy, but every run is over the ceiling of 0.5 ms: it decides nothing
     ((1, 2, 3, 4, 100), 200.0),  # noisy, every run under the ceiling
     ((1.0, 1.1, 1.2, 1.3, 5.0), 1.15)],  # the ceiling among the runs, but the middle half is steady
)  # fmt: skip
def test_no_warning_where_the_runs_decide_the_budget(timings, times, target):
    timings.append(timing(*times))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LatencyBudget(target, "cpu").admits(CHEAP)


def test_a_candidate_over_budget_is_timed_again_and_both_times_are_given(timings):
    # the cheapest: 1.2 ms, then 1.1 ms (quartiles 1.05, 1.1, 1.2); the baseline 2 ms; ceiling 0.5 ms
    timings += [timing(1.0, 1.1, 1.2, 1.3, 5.0), timing(2, 2, 2), timing(1.0, 1.05, 1.1, 1.2, 1.4)]
    budget = LatencyBudget(0.5, "cpu")
    assert not budget.admits(CHEAP) and budget.cost(BASE) == 2
    error = budget.below_every_candidate("the small space", CHEAP, BASE)
    assert isinstance(error, BudgetError) and timings == []
    assert str(error) == (
        "budget 0.5 ms/image on cpu (forward, batch 1) is below every candidate of the small space: the cheapest by "
        "Eqn. (1), (3,4) gap, measured 1.2 ms/image, median of 5 runs (middle half 1.1-1.3 ms, all 1-5 ms), and "
        "1.1 ms/image, median of 5 runs (middle half 1.05-1.2 ms, all 1-1.4 ms) when timed again, and the baseline, "
        "(3,8) gap, 2 ms/image, median of 3 runs (middle half 2-2 ms, all 2-2 ms); expected a time budget of at least "
        "1.1 ms/image (its faster median), or a MACs budget of at least 0.5x (its Eqn. (1) cost, which does not "
        "depend on the machine)"
    )
    assert budget.cost(CHEAP) == 1.2  # the second timing informs the message, not the cost


def test_times_that_disagree_are_called_noisy(timings):
    # 1.2 ms, then 92.5 ms (a loaded CPU): both over 0.5 ms, but 92.5 - 1.2 > 0.5 * 1.2
    timings += [timing(1.0, 1.1, 1.2, 1.3, 5.0), timing(0.2, 90, 95, 100), timing(2, 2, 2)]
    budget = LatencyBudget(0.5, "cpu")
    assert not budget.admits(CHEAP)
    text = str(budget.below_every_candidate("the small space", CHEAP, BASE, "fastest"))
    assert "the fastest, (3,4) gap, measured 1.2 ms/image" in text
    assert "and 92.5 ms/image, median of 4 runs (middle half 67.5-96.2 ms, all 0.2-100 ms; noisy: the fastest run " \
           "was 462x faster than the median) when timed again" in text  # fmt: skip
    assert text.endswith("expected a time budget of at least 1.2 ms/image (its faster median), or a MACs budget of "
                         "at least 0.5x (its Eqn. (1) cost, which does not depend on the machine); these times are "
                         "noisy: " + STEADIER)  # fmt: skip


def test_a_second_timing_under_the_ceiling_leaves_the_budget_undecided(timings):
    timings += [timing(1, 2, 3, 4, 100), timing(0.5, 0.6, 0.7), timing(2, 2, 2)]  # 3 ms, then 0.6 ms; ceiling 2 ms
    budget = LatencyBudget(2.0, "cpu")
    with pytest.warns(NoisyTimingWarning):
        assert not budget.admits(CHEAP)
    text = str(budget.below_every_candidate("the small space", CHEAP, BASE))
    assert text.startswith("budget 2 ms/image on cpu (forward, batch 1) cannot be decided against the small space on "
                           "this machine: the cheapest by Eqn. (1), (3,4) gap, measured 3 ms/image")  # fmt: skip
    assert "and 0.6 ms/image, median of 3 runs (middle half 0.55-0.65 ms, all 0.5-0.7 ms) when timed again" in text
    assert text.endswith("the ceiling 2 ms lies between these times, which are too noisy to enforce a time budget; "
                         "expected steadier times: " + STEADIER)  # fmt: skip


def test_a_table_prediction_is_not_timed_again(monkeypatch):
    from budgetnet.cost.latency import LatencyTable

    table = LatencyTable("cpu", cache_dir=False)
    keys = [key for _, key in table.layer_keys(CHEAP)] + [key for _, key in table.layer_keys(BASE)]
    table.entries.update(dict.fromkeys(keys, 1.5))  # two pieces each (the conv, the head): 3 ms per network
    monkeypatch.setattr(latency, "measure", lambda *args, **kwargs: pytest.fail("a table budget timed a network"))
    budget = LatencyBudget(0.5, "cpu", table=table)
    assert len(table.layer_keys(CHEAP)) == 2 and budget.cost(CHEAP) == 3.0
    assert "the cheapest by Eqn. (1), (3,4) gap, is predicted to take 3 ms/image by the latency table, and the " \
           "baseline, (3,8) gap, 3 ms/image by the latency table; expected a time budget of at least 3 ms/image " \
           "(its time)" in str(budget.below_every_candidate("the small space", CHEAP, BASE))  # fmt: skip
