"""Figures: the lineage of layer-replacement variants (the paper's Figs. 1-3), and the
search's Pareto front and optimisation history (PNG via matplotlib's Agg).

Each function returns a ``matplotlib.figure.Figure`` (made without pyplot, so nothing
changes the caller's backend) and saves it when given a ``path``.
"""

from __future__ import annotations

from pathlib import Path
from budgetnet.checks import is_int


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

    from budgetnet.studies.record import StudyRecord, TrialRecord
    from budgetnet.studies.results import cost_key, is_feasible, pareto_trials

    key = cost_key(x)
    record = StudyRecord.read(study)
    figure = _figure()
    axes = figure.add_subplot()
    feasible, infeasible = [], []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        cost = TrialRecord.read(trial).get(key)
        if cost is None:
            continue
        (feasible if is_feasible(trial) else infeasible).append((cost, trial.values[0]))
    if feasible:
        axes.scatter(*zip(*feasible), s=22, color="tab:blue", alpha=0.7, label="trial inside the budget")
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

    from budgetnet.studies.results import arm, is_feasible

    figure = _figure()
    axes = figure.add_subplot()
    groups = {"completed": [], "over the budget": [], "pruned": []}
    best, best_line = None, []
    for trial in study.get_trials(deepcopy=False):
        if arm(trial) == "confirm":  # a confirmation's retraining, not a search trial
            continue
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
    figure = _figure((max(4.0, 1.3 * len(rows) + 2), 4.4))
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
    axes.set_title("\n".join(_wrap("confirmation: " + report["verdict"], 80)[:3]), fontsize=9)
    axes.grid(axis="y", alpha=0.3)
    axes.set_xlabel("\n".join(_wrap("held out: " + report["held_out"]["text"], 120)), fontsize=7, color="0.35")
    return _save(figure, path)


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
    figure = _figure((5.6, 4.6))
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
    return _save(figure, path)


def _finish_accuracy_plot(figure, axes, xlabel: str, title: str, path):
    """Labels, grid and legend of a plot of validation accuracy; saved when ``path`` is given."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel("validation accuracy")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small", loc="lower right")
    return _save(figure, path)


# -- lineage of layer-replacement variants (Figs. 1-3) ------------------------------------------
def lineage(
    graph,
    path: str | Path | None = None,
    nodes=None,
    max_nodes: int = 40,
    edge_labels: bool = True,
    title: str | None = None,
):
    """Draw a :func:`budgetnet.variants` graph like the paper's Figs. 1-3.

    Models are boxes (name, cost ratio to the baseline, notation, depth and Eqn. (1) MACs),
    in columns by the number of rewrites from the baseline; arrows are rewrites, labelled
    by rule. A long notation (a ResNet) is shown as the layers the rewrites wrote
    (``brief`` in :func:`~budgetnet.rewrites.explore.records`), and the arrows then also name the
    stage and the parameters. A box's colour is its cost ratio; named models (``names`` in
    :func:`~budgetnet.variants`) have a bold frame.

    Args:
        graph: the graph of :func:`budgetnet.variants`.
        path: where to save the PNG (optional).
        nodes: node keys to draw (default: all, or, past ``max_nodes``, the named models and
            the variants on their derivations, else the ``max_nodes`` closest to the baseline).
        max_nodes: the most boxes drawn when ``nodes`` is not given.
        edge_labels: write the rule (and for long notations the stage and parameters) on
            every arrow.
        title: the figure title (default: baseline, counts and budget).

    Example:
        >>> import budgetnet
        >>> from search_spaces.paper import MODELS
        >>> graph = budgetnet.variants(MODELS["A"], max_steps=1, rules=["depth_filter"], names=MODELS)
        >>> figure = lineage(graph)
        >>> sorted(text.get_text().split()[0] for text in figure.axes[0].texts if "MACs" in text.get_text())
        ['A', 'B', 'C', 'v1']
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    from budgetnet.cost.complexity import format_count
    from budgetnet.rewrites.explore import labels, records

    keys = _lineage_nodes(graph, nodes, max_nodes)
    briefs = {row["key"]: row["brief"] for row in records(graph)}
    long = any(brief != graph.nodes[key]["notation"] for key, brief in briefs.items())
    shown = graph.subgraph(keys)
    names = labels(graph)
    positions, columns, rows = _lineage_layout(shown)
    tolerance = graph.graph.get("tolerance") or 0.05
    norm = TwoSlopeNorm(vcenter=1.0, vmin=1 - 2 * tolerance, vmax=1 + 2 * tolerance)
    colours = colormaps["coolwarm"]

    figure = Figure(figsize=(1.0 + 3.9 * columns, 1.6 + 1.05 * rows), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.01, 0.01, 0.98, 0.9 if rows > 3 else 0.84))
    axes.set_xlim(-0.55, columns - 0.45)
    axes.set_ylim(-rows + 0.45, 0.55)
    axes.axis("off")
    boxes = {}
    for key, (x, y) in positions.items():
        data = graph.nodes[key]
        named = bool(data.get("name"))
        text = (
            f"{names[key]}   {data['ratio']:.2f}x\n"
            + "\n".join(_wrap(briefs[key], 38))
            + f"\nd={data['depth']}, {format_count(data['macs'])} MACs"
        )
        red, green, blue, _ = colours(norm(min(max(data["ratio"], norm.vmin), norm.vmax)))
        boxes[key] = axes.text(
            x, y, text, ha="center", va="center", fontsize=7.5, family="monospace",
            fontweight="bold" if named else "normal", zorder=3,
            bbox=dict(boxstyle="round,pad=0.45", facecolor=(red, green, blue, 0.35),
                      edgecolor="black" if named else "0.45", linewidth=1.8 if named else 0.8),
        )  # fmt: skip
    figure.canvas.draw()  # size the boxes so the arrows can stop at their edges
    rule_labels = []
    for source, target, data in shown.edges(data=True):
        (x0, y0), (x1, y1) = positions[source], positions[target]
        bend = _bend(axes, boxes[source], (x0, y0), (x1, y1))
        axes.annotate(
            "", xy=(x1, y1), xytext=(x0, y0), zorder=2,
            arrowprops=dict(arrowstyle="-|>", color="0.25", linewidth=0.9, shrinkA=2, shrinkB=2,
                            patchA=boxes[source].get_bbox_patch(), patchB=boxes[target].get_bbox_patch(),
                            connectionstyle=f"arc3,rad={bend}"),
        )  # fmt: skip
        if edge_labels:
            lx, ly = _arc_point(axes, (x0, y0), (x1, y1), bend)
            rule_labels.append(axes.text(
                lx, ly, data["site"].label() if long else data["rule"], ha="center", va="center", fontsize=6.5,
                color="0.15", zorder=4,
                bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85),
            ))  # fmt: skip
    _spread(figure, axes, rule_labels)
    for column in range(columns):
        axes.text(column, 0.5, "baseline" if column == 0 else f"{column} rewrite{'s' * (column > 1)}",
                  ha="center", va="bottom", fontsize=8, color="0.35")  # fmt: skip
    root = graph.graph["baseline"]
    total = graph.number_of_nodes() - 1
    if title is None:
        title = f"Variants of {names[root]} at equal cost: {len(keys) - (root in keys)} of {total} shown"
        if "budget" in graph.graph:
            title += f"; budget {graph.graph['budget']}"
    figure.suptitle(title, fontsize=10)
    figure.text(0.99, 0.995, "box colour: Eqn. (1) cost / baseline (blue cheaper, red dearer)",
                ha="right", va="top", fontsize=7, color="0.35")  # fmt: skip
    return _save(figure, path)


def _lineage_nodes(graph, nodes, max_nodes: int) -> list:
    from budgetnet.errors import BudgetError
    from budgetnet.rewrites.explore import derivation, records

    if not is_int(max_nodes, 1):
        raise BudgetError(f"max_nodes={max_nodes!r} is invalid; expected an integer >= 1")
    root = graph.graph["baseline"]
    if nodes is not None:
        keys = list(dict.fromkeys(nodes))
        missing = [key for key in keys if key not in graph]
        if missing or not keys:
            raise BudgetError(f"nodes={missing or keys!r} are not in the graph; expected node keys (fingerprints)")
        return keys
    if graph.number_of_nodes() <= max_nodes:
        return list(graph)
    named = [key for key, data in graph.nodes(data=True) if data.get("name")]
    keys = {root}
    for key in named:
        keys.add(key)
        keys.update(step["source"] for step in derivation(graph, key))
    if len(keys) > 1:
        return [row["key"] for row in records(graph) if row["key"] in keys]
    return [row["key"] for row in records(graph)[:max_nodes]]


def _lineage_layout(graph) -> tuple[dict, int, int]:
    """Columns by ``steps``; inside a column, nodes ordered by their parents' rows."""
    by_step: dict[int, list] = {}
    for key, data in graph.nodes(data=True):
        by_step.setdefault(data["steps"], []).append(key)
    steps = sorted(by_step)
    rows = max(len(keys) for keys in by_step.values())
    positions: dict = {}
    for column, step in enumerate(steps):
        def order(key):
            parents = [positions[p][1] for p in graph.predecessors(key) if p in positions]
            centre = sum(parents) / len(parents) if parents else 0.0
            data = graph.nodes[key]
            return (-centre, not data.get("name"), data.get("name") or "", -data["macs"])

        keys = sorted(by_step[step], key=order)
        offset = (rows - len(keys)) / 2
        for row, key in enumerate(keys):
            positions[key] = (column, -(row + offset))
    return positions, len(steps), rows


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _bend(axes, box, start, end) -> float:
    """``arc3`` curvature: straight between columns; an edge inside a column bulges (right
    going down, left going up) just past the boxes; a backward edge curves a little."""
    if start[0] != end[0]:
        return 0.25 if start[0] > end[0] else 0.0
    y0, y1 = axes.transData.transform(start)[1], axes.transData.transform(end)[1]
    half_width = box.get_bbox_patch().get_window_extent().width / 2
    # the arc's middle lies bend * distance / 2 off the chord
    return -max(0.3, 2.6 * half_width / max(abs(y1 - y0), 1.0))


def _spread(figure, axes, texts, attempts: int = 8) -> None:
    """Move each text down until it overlaps none placed before it (in display pixels)."""
    renderer = figure.canvas.get_renderer()
    placed = []
    for text in texts:
        for _ in range(attempts):
            extent = text.get_window_extent(renderer).expanded(1.1, 1.25)
            if not any(extent.overlaps(other) for other in placed):
                break
            x, y = axes.transData.transform(text.get_position())
            text.set_position(axes.transData.inverted().transform((x, y - extent.height)))
        placed.append(text.get_window_extent(renderer).expanded(1.1, 1.25))


def _arc_point(axes, start, end, bend: float) -> tuple[float, float]:
    """The middle of matplotlib's ``arc3`` curve from ``start`` to ``end``, in data units."""
    to_display, to_data = axes.transData, axes.transData.inverted()
    (x0, y0), (x1, y1) = to_display.transform(start), to_display.transform(end)
    mid_x, mid_y = (x0 + x1) / 2, (y0 + y1) / 2
    control = (mid_x + bend * (y1 - y0), mid_y - bend * (x1 - x0))
    return tuple(to_data.transform(((mid_x + control[0]) / 2, (mid_y + control[1]) / 2)))
