"""What a network costs: Eqn. (1) and the per-layer report, memory, budgets, measured latency.

:mod:`budgetnet.cost.latency` imports torch, so its names load on first access.

Example:
    >>> import budgetnet
    >>> from budgetnet.cost import Budget, conv_macs
    >>> arch = budgetnet.parse("(3,8) 2/2 (3,16) gap", input_shape=(1, 8, 8), num_classes=10)
    >>> conv_macs(arch), Budget(25000).admits(arch)
    (23040, True)
"""

from budgetnet.cost.budgets import (
    DEFAULT_TOLERANCE,
    Budget,
    CostBudget,
    LatencyBudget,
    budget_to_dict,
    is_time_budget,
    parse_budget,
    resolve_budget,
)
from budgetnet.cost.complexity import ComplexityReport, LayerCost, complexity, conv_macs, format_count
from budgetnet.cost.memory import MemoryEstimate, check_fits, estimate_memory, format_bytes, parse_bytes
from budgetnet.cost.noise import NoisyTimingWarning

#: Names of :mod:`budgetnet.cost.latency` (torch), imported on first access.
_LAZY = ("LatencyTable", "measure")


def __getattr__(name):
    if name in _LAZY:
        from budgetnet.cost import latency

        return getattr(latency, name)
    raise AttributeError(f"module 'budgetnet.cost' has no attribute {name!r}")


__all__ = [
    "Budget",
    "ComplexityReport",
    "CostBudget",
    "DEFAULT_TOLERANCE",
    "LatencyBudget",
    "LatencyTable",
    "LayerCost",
    "MemoryEstimate",
    "NoisyTimingWarning",
    "budget_to_dict",
    "check_fits",
    "complexity",
    "conv_macs",
    "estimate_memory",
    "format_bytes",
    "format_count",
    "is_time_budget",
    "measure",
    "parse_budget",
    "parse_bytes",
    "resolve_budget",
]
