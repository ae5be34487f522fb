"""Figures of a search: the Pareto front, the optimisation history, the confirmation of its
best candidates and the proxy fidelity (PNG via matplotlib's Agg)."""

from __future__ import annotations

from pathlib import Path

from budgetnet.plots.common import new_figure, save, wrap


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

    from budgetnet.studies.record import StudyRecord, TrialRecord
    from budgetnet.studies.results import cost_key, is_feasible, pareto_trials

    key = cost_key(x)
    record = StudyRecord.read(study)
    figure = new_figure()
    axes = figure.add_subplot()
    feasible, infeasible, drawn, repeats = [], [], set(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        trial_record = TrialRecord.read(trial)
        cost = trial_record.get(key)
        if cost is None:
            continue
        if trial_record.fingerprint in drawn:  # a repeated architecture: the point is already there
            repeats += 1
            continue
        drawn.add(trial_record.fingerprint or ("trial", trial.number))
        (feasible if is_feasible(trial) else infeasible).append((cost, trial.values[0]))
    if feasible:
        label = "trial inside the budget" + (
            f" ({repeats} repeated architecture{'s' if repeats > 1 else ''} drawn once)" if repeats else ""
        )
        axes.scatter(*zip(*feasible), s=22, color="tab:blue", alpha=0.7, label=label)
    if infeasible:
        axes.scatter(*zip(*infeasible), s=22, color="0.6", marker="x", label="over the budget (not trained)")
    front = sorted((TrialRecord.read(t).get(key), t.values[0]) for t in pareto_trials(study, x))
    if front:
        axes.plot(*zip(*front), color="tab:red", marker="o", drawstyle="steps-post", label="Pareto front")
    budget = record.setting("space", "budget", default={})
    if x == "macs" and budget.get("target_macs"):
        limit = budget["target_macs"] * (1 + budget.get("tolerance", 0.0))
        axes.axvline(limit, color="tab:green", linestyle=":", label="budget")
    baseline = record.baseline_result
    baseline_x = (baseline or {}).get(key) or (record.setting("baseline", "macs") if x == "macs" else None)
    if baseline and baseline_x is not None:
        axes.scatter([baseline_x], [baseline["accuracy"]], marker="*", s=180, color="black", zorder=5, label="baseline")
    elif baseline_x is not None:
        axes.axvline(baseline_x, color="black", linestyle="--", linewidth=1, label="baseline cost")
    xlabel = "Eqn. (1) multiply-adds per image" if x == "macs" else "latency, ms per image (batch 1)"
    if x == "macs":
        _count_axis(axes.xaxis)
    title = f"{study.study_name}: accuracy vs {'cost' if x == 'macs' else 'latency'}"
    return _finish_accuracy_plot(figure, axes, xlabel, title, path)


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

    from budgetnet.studies.record import TrialRecord
    from budgetnet.studies.results import arm, is_feasible

    figure = new_figure()
    axes = figure.add_subplot()
    groups = {"completed": [], "repeated an earlier architecture": [], "over the budget": [], "pruned": []}
    best, best_line = None, []
    for trial in study.get_trials(deepcopy=False):
        if arm(trial) == "confirm":  # a confirmation's retraining, not a search trial
            continue
        if trial.state == TrialState.COMPLETE:
            value = trial.values[0]
            if TrialRecord.read(trial).duplicate_of is not None:  # its result is the first one's, drawn there
                groups["repeated an earlier architecture"].append((trial.number, value))
            elif is_feasible(trial):
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
        "repeated an earlier architecture": dict(facecolors="none", edgecolors="tab:blue", marker="o"),
        "over the budget": dict(color="0.6", marker="x"),
        "pruned": dict(color="tab:orange", marker="v"),
    }
    for label, points in groups.items():
        if points:
            axes.scatter(*zip(*points), s=22, alpha=0.8, label=label, **styles[label])
    if best_line:
        axes.plot(*zip(*best_line), color="tab:red", drawstyle="steps-post", label="best so far")
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers, never 0.5
    return _finish_accuracy_plot(figure, axes, "trial", f"{study.study_name}: optimisation history", path)


def confirmation(report: dict, path: str | Path | None = None):
    """The confirmation of a search (:func:`budgetnet.studies.confirm.confirm`): per model the
    mean held-out accuracy with its 95 % confidence interval and every run as a dot; the
    baseline in grey with its interval shaded across the plot.

    Example:
        >>> rows = [{"model": "baseline", "runs": [0.90, 0.92], "interval": {"mean": 0.91, "low": 0.8, "high": 1.0}},
        ...         {"model": "trial 3", "runs": [0.93, 0.95], "interval": {"mean": 0.94, "low": 0.81, "high": 1.0}}]
        >>> confirmation({"models": rows, "verdict": "v", "held_out": {"text": "t"}}).axes[0].get_ylabel()
        'held-out accuracy (mean, 95% CI)'
    """
    rows = report["models"]
    width = max(5.2, 1.3 * len(rows) + 2)
    figure = new_figure((width, 4.6))
    axes = figure.add_subplot()
    base = rows[0]["interval"]
    if base.get("low") is not None:
        axes.axhspan(base["low"], base["high"], color="0.85", zorder=0, label="baseline 95% CI")
    for index, row in enumerate(rows):
        colour = "0.35" if index == 0 else ("tab:orange" if row.get("arm") == "control" else "tab:blue")
        runs = [value for value in row["runs"] if value is not None]
        axes.scatter([index] * len(runs), runs, s=12, color=colour, alpha=0.45, zorder=2)
        interval = row["interval"]
        if interval.get("mean") is None:
            continue
        low, high = interval.get("low"), interval.get("high")
        error = None if low is None else [[interval["mean"] - low], [high - interval["mean"]]]
        axes.errorbar([index], [interval["mean"]], yerr=error, fmt="D" if index == 0 else "o", color=colour,
                      capsize=6, markersize=7, zorder=3)  # fmt: skip
    labels = [row["model"] + (f"\n{row['ratio']:.2f}x cost" if row.get("ratio") is not None else "") for row in rows]
    axes.set_xticks(range(len(rows)), labels, fontsize=8)
    axes.set_xlim(-0.6, len(rows) - 0.4)
    axes.set_ylabel("held-out accuracy (mean, 95% CI)")
    # wrapped to the figure's width (about 11 characters of 9 pt per inch of axes), never clipped
    axes.set_title("\n".join(wrap("confirmation: " + report["verdict"], int(width * 11))), fontsize=9)
    axes.grid(axis="y", alpha=0.3)
    axes.set_xlabel("\n".join(wrap("held out: " + report["held_out"]["text"], int(width * 15))), fontsize=7,
                    color="0.35")  # fmt: skip
    return save(figure, path)


def proxy_scatter(report: dict, path: str | Path | None = None):
    """Proxy fidelity (:func:`budgetnet.studies.proxy.proxy_fidelity`): each candidate's
    short-run accuracy against its long-run accuracy, with the second long run as hollow
    marks (the noise ceiling); Kendall's tau of both in the title.

    Example:
        >>> rows = [{"short": 0.5 + i / 10, "long": 0.6 + i / 10, "long_again": 0.61 + i / 10} for i in range(4)]
        >>> tau = {"kendall": {"value": 1.0, "low": 1.0, "high": 1.0}}
        >>> report = {"candidates": rows, "short_vs_long": tau, "noise_ceiling": tau, "short_epochs": 1, "long_epochs": 5}
        >>> proxy_scatter(report).axes[0].get_xlabel()
        'long run: test accuracy (5 epochs)'
    """
    rows = report["candidates"]
    figure = new_figure((5.6, 4.6))
    axes = figure.add_subplot()
    long = [row["long"] for row in rows]
    axes.scatter(long, [row["short"] for row in rows], color="tab:blue", label=f"short run ({report['short_epochs']} epochs, val)")
    axes.scatter(long, [row["long_again"] for row in rows], facecolors="none", edgecolors="tab:orange",
                 label="long run, second seed (noise ceiling)")  # fmt: skip
    for index, row in enumerate(rows):
        axes.annotate(str(index), (row["long"], row["short"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.set_xlabel(f"long run: test accuracy ({report['long_epochs']} epochs)")
    axes.set_ylabel("accuracy of the other run")
    short, ceiling = report["short_vs_long"]["kendall"], report["noise_ceiling"]["kendall"]
    axes.set_title(f"proxy fidelity: Kendall tau {short['value']:+.2f} [{short['low']:+.2f}, {short['high']:+.2f}], "
                   f"ceiling {ceiling['value']:+.2f}", fontsize=9)  # fmt: skip
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    return save(figure, path)


def _count_axis(axis) -> None:
    """Tick labels as counts with one SI suffix and just enough decimals to tell the ticks
    apart (2.25M, 2.30M; 152.6K), never an offset such as 1e6."""
    import math

    from matplotlib.ticker import Formatter

    class CountFormatter(Formatter):
        def format_ticks(self, values):
            values = list(values)
            largest = max((abs(value) for value in values), default=0)
            suffix, scale = next(((s, f) for s, f in (("G", 1e9), ("M", 1e6), ("K", 1e3)) if largest >= f), ("", 1))
            steps = [abs(b - a) for a, b in zip(values, values[1:]) if b != a]
            decimals = max(0, -math.floor(math.log10(min(steps) / scale))) if steps else 1
            return [f"{value / scale:.{decimals}f}{suffix}" if value else "0" for value in values]

        def __call__(self, value, position=None):
            return self.format_ticks([value])[0]

    axis.set_major_formatter(CountFormatter())


def _finish_accuracy_plot(figure, axes, xlabel: str, title: str, path):
    """Labels, grid and legend of a plot of validation accuracy; saved when ``path`` is given."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel("validation accuracy")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:  # below the plot, where it hides no point
        axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    return save(figure, path)
