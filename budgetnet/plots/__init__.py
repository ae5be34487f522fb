"""Figures: the lineage of layer-replacement variants (the paper's Figs. 1-3), and the
search's Pareto front, optimisation history, confirmation and proxy fidelity (PNG via
matplotlib's Agg).

Each function returns a ``matplotlib.figure.Figure`` (made without pyplot, so nothing
changes the caller's backend) and saves it when given a ``path``.
"""

from budgetnet.plots.lineage import lineage
from budgetnet.plots.study import confirmation, optimization_history, pareto_front, proxy_scatter

__all__ = ["confirmation", "lineage", "optimization_history", "pareto_front", "proxy_scatter"]
