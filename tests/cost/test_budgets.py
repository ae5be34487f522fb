"""Tests for ``budgetnet.cost.budgets``: Budget, the one grammar, the one tolerance rule, and the
interface that Budget and LatencyBudget share.

Golden values are hand arithmetic written here (model A's Eqn. (1) cost from tests/test_paper.py).
"""

from __future__ import annotations

import math

import pytest

import budgetnet
from budgetnet import Budget, parse
from budgetnet.cost.budgets import CostBudget, budget_to_dict, is_time_budget, parse_budget, resolve_budget
from budgetnet.errors import BudgetError
from budgetnet.cost.budgets import LatencyBudget
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
