"""Figures: the search's Pareto front and optimisation history (PNG via matplotlib's Agg).

Each function returns a ``matplotlib.figure.Figure`` (made without pyplot, so nothing
changes the caller's backend) and saves it when given a ``path``.
"""

from __future__ import annotations

from pathlib import Path


def _figure(size=(6.4, 4.4)):
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100, layout="constrained")


def _save(figure, path):
    if path is not None:
        figure.savefig(Path(path), format="png")
    return figure


def pareto_front(study, x: str = "macs", path: str | Path | None = None):
    """Validation accuracy against Eqn. (1) MACs (``x="macs"``) or measured latency
    (``x="latency"``) for every completed trial, the Pareto front, the budget and the
    baseline (a star when it was trained, a dashed line otherwise).

    Example:
        >>> import optuna
        >>> study = optuna.create_study(direction="maximize")
        >>> study.add_trial(optuna.create_trial(value=0.9, user_attrs={"macs": 1000, "status": "ok"}))
        >>> pareto_front(study).axes[0].get_xlabel()
        'Eqn. (1) multiply-adds per image'
    """
    from optuna.trial import TrialState

    from budgetnet.errors import SearchError
    from budgetnet.results import is_feasible, pareto_trials

    key = {"macs": "macs", "latency": "latency_ms"}.get(x)
    if key is None:
        raise SearchError(f"x={x!r} is invalid; expected 'macs' or 'latency'")
    settings = study.user_attrs.get("budgetnet", {})
    figure = _figure()
    axes = figure.add_subplot()
    feasible, infeasible = [], []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        cost = trial.user_attrs.get(key)
        if cost is None:
            continue
        (feasible if is_feasible(trial) else infeasible).append((cost, trial.values[0]))
    if feasible:
        axes.scatter(*zip(*feasible), s=22, color="tab:blue", alpha=0.7, label="trial inside the budget")
    if infeasible:
        axes.scatter(*zip(*infeasible), s=22, color="0.6", marker="x", label="over the budget (not trained)")
    front = sorted((t.user_attrs[key], t.values[0]) for t in pareto_trials(study, x))
    if front:
        axes.plot(*zip(*front), color="tab:red", marker="o", drawstyle="steps-post", label="Pareto front")
    budget = settings.get("space", {}).get("budget", {})
    if x == "macs" and budget.get("target_macs"):
        limit = budget["target_macs"] * (1 + budget.get("tolerance", 0.0))
        axes.axvline(limit, color="tab:green", linestyle=":", label="budget")
    baseline = study.user_attrs.get("baseline_result")
    baseline_x = (baseline or {}).get(key) or (settings.get("baseline", {}).get("macs") if x == "macs" else None)
    if baseline and baseline_x is not None:
        axes.scatter([baseline_x], [baseline["accuracy"]], marker="*", s=180, color="black", zorder=5, label="baseline")
    elif baseline_x is not None:
        axes.axvline(baseline_x, color="black", linestyle="--", linewidth=1, label="baseline cost")
    axes.set_xlabel("Eqn. (1) multiply-adds per image" if x == "macs" else "latency, ms per image (batch 1)")
    axes.set_ylabel("validation accuracy")
    axes.set_title(f"{study.study_name}: accuracy vs {'cost' if x == 'macs' else 'latency'}")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small", loc="lower right")
    return _save(figure, path)


def optimization_history(study, path: str | Path | None = None):
    """Accuracy of each trial by trial number (pruned ones at their last report), and the
    best accuracy inside the budget so far.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(direction="maximize")
        >>> study.add_trial(optuna.create_trial(value=0.9, user_attrs={"status": "ok"}))
        >>> optimization_history(study).axes[0].get_ylabel()
        'validation accuracy'
    """
    from optuna.trial import TrialState

    from budgetnet.results import is_feasible

    figure = _figure()
    axes = figure.add_subplot()
    groups = {"completed": [], "over the budget": [], "pruned": []}
    best, best_line = None, []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.COMPLETE:
            value = trial.values[0]
            if is_feasible(trial):
                groups["completed"].append((trial.number, value))
                best = value if best is None else max(best, value)
            else:
                groups["over the budget"].append((trial.number, value))
        elif trial.state == TrialState.PRUNED and trial.intermediate_values:
            groups["pruned"].append((trial.number, trial.intermediate_values[max(trial.intermediate_values)]))
        if best is not None:
            best_line.append((trial.number, best))
    styles = {
        "completed": dict(color="tab:blue", marker="o"),
        "over the budget": dict(color="0.6", marker="x"),
        "pruned": dict(color="tab:orange", marker="v"),
    }
    for label, points in groups.items():
        if points:
            axes.scatter(*zip(*points), s=22, alpha=0.8, label=label, **styles[label])
    if best_line:
        axes.plot(*zip(*best_line), color="tab:red", drawstyle="steps-post", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel("validation accuracy")
    axes.set_title(f"{study.study_name}: optimisation history")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small", loc="lower right")
    return _save(figure, path)
