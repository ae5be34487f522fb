"""The lineage of layer-replacement variants, drawn like the paper's Figs. 1-3."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from budgetnet.checks import is_int
from budgetnet.plots.common import save, wrap

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
        via = wrap("via " + rewrite[key][1], 38) if clustered and edge_labels and key in rewrite else []
        return [f"{names[key]}   {data['ratio']:.2f}x", *via, *wrap(briefs[key], 38),
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
                    *spots[0], "\n".join(wrap(data["site"].label() if long else data["rule"], 24)), ha="center", va="center",
                    fontsize=6.5, color="0.15", zorder=4,
                    bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85),
                )))  # fmt: skip
        _spread(figure, axes, rule_labels, [box.get_bbox_patch() for box in boxes.values()])
    root = graph.graph["baseline"]
    if title is None:
        title = f"Variants of {names[root]} at equal cost: {len(keys) - (root in keys)} of {graph.number_of_nodes() - 1} shown"
        if "budget" in graph.graph:
            title += f"; budget {graph.graph['budget']}"
    figure.suptitle("\n".join(wrap(title, int(width * 13))), y=1 - 0.12 / (height + top), va="top", fontsize=10)
    key_width = min(2.6, width - 0.4)
    bar = figure.add_axes((0.2 / width, 1 - 0.7 / (height + top), key_width / width, 0.1 / (height + top)))
    colour_bar = figure.colorbar(ScalarMappable(norm, colours), cax=bar, orientation="horizontal")
    colour_bar.ax.tick_params(labelsize=6.5, length=2, pad=1)
    colour_bar.set_label("box colour: Eqn. (1) cost / baseline", fontsize=7, labelpad=1)
    return save(figure, path)


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
