"""Figures: the lineage of layer-replacement variants (the paper's Figs. 1-3), and the
search's Pareto front and optimisation history (PNG via matplotlib's Agg).

Each function returns a ``matplotlib.figure.Figure`` (made without pyplot, so nothing
changes the caller's backend) and saves it when given a ``path``.
"""

from __future__ import annotations

from collections import Counter
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
        label = "trial inside the budget" + (f" ({repeats} repeated architectures drawn once)" if repeats else "")
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

    figure = _figure()
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
    return _save(figure, path)


# -- lineage of layer-replacement variants (Figs. 1-3) ------------------------------------------
#: Layout of :func:`lineage`, in inches: one 7.5 pt text line, a box of 38 monospace
#: characters, the gap between columns (arrows and their labels) and between the
#: sub-columns of a cluster.
_LINE, _BOX_WIDTH, _COLUMN_GAP, _SUB_GAP = 7.5 * 1.25 / 72, 2.55, 1.6, 0.3
#: Past this many children of one parent (or boxes in one column), the children are drawn
#: as a cluster: a grid of at most ``_CLUSTER_ROWS`` rows, one arrow from the parent to it,
#: and the rewrite written inside each box instead of on its arrow.
_MAX_FAN, _CLUSTER_ROWS = 8, 8


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
    stage and the parameters. A box's colour is its cost ratio (the colour bar at the top);
    named models (``names`` in :func:`~budgetnet.variants`) have a bold frame.

    A parent with more than 8 children shown, or a column of more than 8 boxes, is drawn by
    rule as clusters: each parent's children in a framed grid of at most 8 rows, sorted by
    rule, one arrow from the parent to the frame, and each box naming the rewrite that made
    it; so the figure grows in both directions instead of into a long column.

    Args:
        graph: the graph of :func:`budgetnet.variants`.
        path: where to save the PNG (optional).
        nodes: node keys to draw (default: all, or, past ``max_nodes``, the named models and
            the variants on their derivations, else the ``max_nodes`` closest to the baseline).
        max_nodes: the most boxes drawn when ``nodes`` is not given.
        edge_labels: write the rule (and for long notations the stage and parameters) on
            every arrow (in clusters: in every box).
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
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    from budgetnet.cost.complexity import format_count
    from budgetnet.rewrites.explore import labels, records

    keys = _lineage_nodes(graph, nodes, max_nodes)
    briefs = {row["key"]: row["brief"] for row in records(graph)}
    long = any(brief != graph.nodes[key]["notation"] for key, brief in briefs.items())
    shown = graph.subgraph(keys)
    names = labels(graph)
    rewrite = {}  # node -> (parent, label of the rewrite from it) on the node's first in-edge shown
    for key in keys:
        parents = sorted(shown.predecessors(key), key=lambda parent: graph.nodes[parent]["steps"])
        if parents:
            edge = shown.edges[parents[0], key]
            rewrite[key] = (parents[0], edge["site"].label() if long else edge["rule"])
    fan = max(Counter(parent for parent, _ in rewrite.values()).values(), default=0)
    steps = {graph.nodes[key]["steps"] for key in keys}
    tallest = max(sum(graph.nodes[key]["steps"] == step for key in keys) for step in steps)
    clustered = fan > _MAX_FAN or tallest > _MAX_FAN

    def box_lines(key):
        data = graph.nodes[key]
        via = _wrap("via " + rewrite[key][1], 38) if clustered and edge_labels and key in rewrite else []
        return [f"{names[key]}   {data['ratio']:.2f}x", *via, *_wrap(briefs[key], 38),
                f"d={data['depth']}, {format_count(data['macs'])} MACs"]  # fmt: skip

    texts = {key: "\n".join(box_lines(key)) for key in keys}
    row_height = _LINE * max(len(text.splitlines()) for text in texts.values()) + 0.45
    layout = _cluster_layout if clustered else _column_layout
    positions, clusters, headers, (width, height) = layout(shown, rewrite, row_height)
    top = 1.5  # title, colour bar and column headers
    figure = Figure(figsize=(width, height + top), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(-height - top, 0)
    axes.axis("off")
    tolerance = graph.graph.get("tolerance") or 0.05
    norm = TwoSlopeNorm(vcenter=1.0, vmin=1 - 2 * tolerance, vmax=1 + 2 * tolerance)
    colours = colormaps["coolwarm"]
    boxes = {}
    for key, (x, y) in positions.items():
        named = bool(graph.nodes[key].get("name"))
        red, green, blue, _ = colours(norm(min(max(graph.nodes[key]["ratio"], norm.vmin), norm.vmax)))
        boxes[key] = axes.text(
            x, y - top, texts[key], ha="center", va="center", fontsize=7.5, family="monospace",
            fontweight="bold" if named else "normal", zorder=3,
            bbox=dict(boxstyle="round,pad=0.45", facecolor=(red, green, blue, 0.35),
                      edgecolor="black" if named else "0.45", linewidth=1.8 if named else 0.8),
        )  # fmt: skip
    for x, label in headers:
        axes.text(x, -top + 0.1, label, ha="center", va="bottom", fontsize=8, color="0.35")
    figure.canvas.draw()  # size the boxes so the arrows can stop at their edges
    arrow = dict(arrowstyle="-|>", color="0.25", linewidth=0.9, shrinkA=2, shrinkB=2)
    if clustered:
        for parent, members, (x0, y0, x1, y1) in clusters:
            frame = FancyBboxPatch((x0, y0 - top), x1 - x0, y1 - y0, boxstyle="round,pad=0.05", facecolor="none",
                                   edgecolor="0.6", linestyle="--", linewidth=0.8, zorder=1)  # fmt: skip
            axes.add_patch(frame)
            if len(members) > 1:
                axes.text(x0 + 0.08, y1 - top - 0.05, f"{len(members)} rewrites of {names[parent]}", ha="left",
                          va="top", fontsize=7.5, color="0.3")  # fmt: skip
            axes.annotate("", xy=(x0, (y0 + y1) / 2 - top), xytext=positions[parent] - (0, top), zorder=2,
                          arrowprops=dict(arrow, patchA=boxes[parent].get_bbox_patch()))  # fmt: skip
    else:
        rule_labels = []
        for source, target, data in shown.edges(data=True):
            (x0, y0), (x1, y1) = positions[source] - (0, top), positions[target] - (0, top)
            bend = _bend(axes, boxes[source], (x0, y0), (x1, y1))
            axes.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2, arrowprops=dict(
                arrow, patchA=boxes[source].get_bbox_patch(), patchB=boxes[target].get_bbox_patch(),
                connectionstyle=f"arc3,rad={bend}"))  # fmt: skip
            if edge_labels:
                spots = _arc_points(axes, (x0, y0), (x1, y1), bend)
                rule_labels.append((spots, axes.text(
                    *spots[0], "\n".join(_wrap(data["site"].label() if long else data["rule"], 24)), ha="center", va="center",
                    fontsize=6.5, color="0.15", zorder=4,
                    bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85),
                )))  # fmt: skip
        _spread(figure, axes, rule_labels, [box.get_bbox_patch() for box in boxes.values()])
    root = graph.graph["baseline"]
    if title is None:
        title = f"Variants of {names[root]} at equal cost: {len(keys) - (root in keys)} of {graph.number_of_nodes() - 1} shown"
        if "budget" in graph.graph:
            title += f"; budget {graph.graph['budget']}"
    figure.suptitle("\n".join(_wrap(title, int(width * 13))), y=1 - 0.12 / (height + top), va="top", fontsize=10)
    key_width = min(2.6, width - 0.4)
    bar = figure.add_axes((0.2 / width, 1 - 0.7 / (height + top), key_width / width, 0.1 / (height + top)))
    colour_bar = figure.colorbar(ScalarMappable(norm, colours), cax=bar, orientation="horizontal")
    colour_bar.ax.tick_params(labelsize=6.5, length=2, pad=1)
    colour_bar.set_label("box colour: Eqn. (1) cost / baseline", fontsize=7, labelpad=1)
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


def _by_step(graph) -> list[list]:
    by_step: dict[int, list] = {}
    for key, data in graph.nodes(data=True):
        by_step.setdefault(data["steps"], []).append(key)
    return [by_step[step] for step in sorted(by_step)]


def _column_header(column: int) -> str:
    return "baseline" if column == 0 else f"{column} rewrite{'s' * (column > 1)}"


def _column_layout(graph, rewrite, row_height: float):
    """Columns by ``steps``; inside a column, nodes ordered by their parents' rows. Returns
    box centres (inches, y down from 0 negative), no clusters, column headers and the size."""
    import numpy as np

    columns = _by_step(graph)
    rows = max(len(keys) for keys in columns)
    positions: dict = {}
    for column, keys in enumerate(columns):
        def order(key):
            parents = [positions[p][1] for p in graph.predecessors(key) if p in positions]
            data = graph.nodes[key]
            return (-(sum(parents) / len(parents) if parents else 0.0), not data.get("name"),
                    data.get("name") or "", -data["macs"])  # fmt: skip

        offset = (rows - len(keys)) / 2
        x = 0.25 + _BOX_WIDTH / 2 + column * (_BOX_WIDTH + _COLUMN_GAP)
        for row, key in enumerate(sorted(keys, key=order)):
            positions[key] = np.array((x, -(row + offset + 0.5) * row_height))
    width = 0.5 + len(columns) * _BOX_WIDTH + (len(columns) - 1) * _COLUMN_GAP
    headers = [(0.25 + _BOX_WIDTH / 2 + c * (_BOX_WIDTH + _COLUMN_GAP), _column_header(c)) for c in range(len(columns))]
    return positions, [], headers, (width, rows * row_height + 0.2)


def _cluster_layout(graph, rewrite, row_height: float):
    """Columns by ``steps``; in each, one cluster per parent (in its parent's order), a grid
    of at most ``_CLUSTER_ROWS`` rows filled column by column, sorted by rewrite. Returns box
    centres, clusters ``(parent, members, (x0, y0, x1, y1))``, headers and the size."""
    import math

    import numpy as np

    columns = _by_step(graph)
    positions, clusters, headers, spans = {}, [], [], []
    x = 0.25
    order = {}  # node -> its place, for the order of the clusters in the next column
    for column, keys in enumerate(columns):
        groups: dict = {}
        for key in keys:
            groups.setdefault(rewrite.get(key, (None,))[0], []).append(key)
        y, widest = 0.0, 1
        for parent in sorted(groups, key=lambda parent: order.get(parent, 0)):
            # parents of the next column last (the grid's last column), so their arrows cross no box
            members = sorted(groups[parent], key=lambda k: (graph.out_degree(k) > 0, rewrite.get(k, (None, ""))[1],
                                                            -graph.nodes[k]["macs"]))  # fmt: skip
            across = math.ceil(len(members) / _CLUSTER_ROWS)
            down = math.ceil(len(members) / across)
            header = 0.3 if parent is not None and len(members) > 1 else 0.0
            for index, key in enumerate(members):
                column_in, row_in = divmod(index, down)
                centre = (x + _BOX_WIDTH / 2 + column_in * (_BOX_WIDTH + _SUB_GAP), -(y + header + (row_in + 0.5) * row_height))
                positions[key] = np.array(centre)
                order[key] = len(order)
            if parent is not None:
                frame_width = across * _BOX_WIDTH + (across - 1) * _SUB_GAP
                clusters.append((parent, members, [x - 0.1, -(y + header + down * row_height), x + frame_width + 0.1, -y]))
            y += header + down * row_height + 0.3
            widest = max(widest, across)
        column_width = widest * _BOX_WIDTH + (widest - 1) * _SUB_GAP
        headers.append((x + column_width / 2, _column_header(column)))
        spans.append((keys, y - 0.3))
        x += column_width + _COLUMN_GAP
    height = max(span for _, span in spans)
    for keys, span in spans:  # centre each column vertically
        for key in keys:
            positions[key][1] -= (height - span) / 2
    for parent, members, frame in clusters:
        shift = (height - next(span for keys, span in spans if members[0] in keys)) / 2
        frame[1] -= shift
        frame[3] -= shift
    return positions, clusters, headers, (x - _COLUMN_GAP + 0.25, height + 0.2)


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


def _spread(figure, axes, labels, obstacles, attempts: int = 24) -> None:
    """Place each ``(spots, text)`` label at the first of its spots (points along its arrow)
    where it overlaps no box in ``obstacles`` and no label placed before it; failing that,
    move it down or up from the first spot (alternately, further each time) until it fits."""
    renderer = figure.canvas.get_renderer()
    taken = [patch.get_window_extent(renderer) for patch in obstacles]

    def fits(text) -> bool:
        extent = text.get_window_extent(renderer).expanded(1.05, 1.2)
        return not any(extent.overlaps(other) for other in taken)

    for spots, text in labels:
        for spot in spots:
            text.set_position(spot)
            if fits(text):
                break
        else:
            x, y = axes.transData.transform(spots[0])
            height = text.get_window_extent(renderer).height * 1.2
            for attempt in range(attempts):
                text.set_position(axes.transData.inverted().transform((x, y + (attempt // 2 + 1) * height * (-1) ** (attempt + 1))))
                if fits(text):
                    break
        taken.append(text.get_window_extent(renderer).expanded(1.05, 1.2))


def _arc_points(axes, start, end, bend: float) -> list:
    """Points along matplotlib's ``arc3`` curve from ``start`` to ``end`` (a quadratic Bezier
    through its control point), in data units: the middle first, then further from it."""
    import numpy as np

    to_display = axes.transData
    p0, p1 = to_display.transform(start), to_display.transform(end)
    middle = (p0 + p1) / 2
    control = middle + bend * np.array((p1[1] - p0[1], -(p1[0] - p0[0])))
    steps = (0.5, 0.4, 0.6, 0.3, 0.7, 0.25, 0.75)
    points = [(1 - t) ** 2 * p0 + 2 * t * (1 - t) * control + t**2 * p1 for t in steps]
    return [tuple(point) for point in to_display.inverted().transform(points)]
