"""Regions of a layer DAG that are not series-parallel, rewritten as a chain of concatenations.

Res2Net's hierarchical split (``y2 = K2(y1 + x2)`` while ``y1`` also goes to the block's
concatenation), RexNet's add into the first channels of a wider map, DPN's dual paths and
DLA's tree aggregation all read one map from two places that no single fork closes: the
graph is not series-parallel, so no nesting of ``res``, ``cat`` and ``gate`` blocks draws it
as written. Such a region is still a chain of steps if the maps still needed later are
*carried* along: each step concatenates the maps that stay alive with the one it computes,
and every layer reads its input as a slice of the carried maps. The layers, their weights and
Eqn. (1) are unchanged; only slices and concatenations (which cost nothing in Eqn. (1)) are
added. A region is the part of the graph between a join and its immediate dominator that no
other edge enters or leaves; regions that are series-parallel already are left alone, and so
are series-parallel blocks inside a rewritten region (a residual block, a gate).

Example:
    >>> import networkx as nx
    >>> from budgetnet.graph.dag import INPUT, read_graph
    >>> from budgetnet.graph.layers import Add, Cat, Conv, Slice
    >>> g = nx.DiGraph(); g.add_node(INPUT, layer=None)
    >>> for node, layer, inputs in [(0, Slice(0, 2), [INPUT]), (1, Slice(2, 4), [INPUT]), (2, Conv(3, 2, padding=1), [0]),
    ...                             (3, Add("none"), [2, 1]), (4, Conv(3, 2, padding=1), [3]), (5, Cat(), [2, 4])]:
    ...     g.add_node(node, layer=layer); g.add_edges_from((i, node) for i in inputs)
    >>> counter = iter(range(100, 200))
    >>> def new(layer, sources):
    ...     node = next(counter); g.add_node(node, layer=layer); g.add_edges_from((s, node) for s in sources); return node
    >>> carry_regions(g, (4, 8, 8), new) is None  # every region carried
    True
    >>> from budgetnet.graph.printing import format_layers
    >>> format_layers(read_graph(g)[0])
    'cat[id | slice(0,2) (3,2)p1] cat[slice(4,6) | res[slice(4,6) | slice(2,4)]@none (3,2)p1]'
"""

from __future__ import annotations

from typing import Callable

import networkx as nx

from budgetnet.errors import ArchError
from budgetnet.graph.dag import read_graph_nodes
from budgetnet.graph.layers import JOINS, Add, Cat, Mul, Slice
from budgetnet.graph.shapes import infer_shapes

#: ``new(layer, sources)``: adds a node with that layer, fed by ``sources`` in order, and returns it.
NewNode = Callable[[object, list], object]


def carry_regions(graph: nx.DiGraph, input_shape: tuple[int, int, int], new: NewNode) -> tuple | None:
    """Rewrite every closed region of ``graph`` that is not series-parallel into a chain of
    concatenations of the maps it carries (see the module docstring). ``None`` when every
    such region was rewritten; else ``(join, reason)`` of the first that cannot be, left as it
    is for the series-parallel reading to refuse: its carried maps differ in size (which no
    concatenation takes), or it multiplies two computed maps.
    """
    # each rewrite leaves its region series-parallel: fewer rewrites than nodes, or a fault
    for _ in range(graph.number_of_nodes()):
        region = _next_region(graph)
        if region is None:
            return None
        reason = _rewrite(graph, *region, _shapes(graph, input_shape), new)
        if reason is not None:
            return region[1], reason
    region = _next_region(graph)
    return None if region is None else (region[1], "carrying its maps left it still not series-parallel")


def _order(graph: nx.DiGraph) -> list:
    """A topological order that follows the order nodes were made in (the forward's order)."""
    return list(nx.lexicographical_topological_sort(graph, key=_made))


def _made(node) -> tuple:
    """Sorts nodes in the order they were made: numbers, then names (the input)."""
    return not isinstance(node, int), str(node).zfill(12)


def _next_region(graph: nx.DiGraph):
    """``(dominator, join, nodes)`` of the first closed region that is not series-parallel."""
    order = _order(graph)
    if not order:
        return None
    dominators = nx.immediate_dominators(graph, order[0])
    for join in order:
        if graph.in_degree(join) < 2:
            continue
        region = _region(graph, dominators[join], join)
        if region is not None and not _series_parallel(graph, dominators[join], region):
            return dominators[join], join, region
    return None


def _region(graph: nx.DiGraph, start, join) -> set | None:
    """The nodes on paths from ``start`` to ``join``, if no edge enters or leaves them elsewhere."""
    nodes = (nx.descendants(graph, start) & nx.ancestors(graph, join)) | {start, join}
    inner_out = all(set(graph.successors(node)) <= nodes for node in nodes - {join})
    inner_in = all(set(graph.predecessors(node)) <= nodes for node in nodes - {start})
    return nodes if inner_out and inner_in else None


def _series_parallel(graph: nx.DiGraph, start, nodes: set) -> bool:
    region = graph.subgraph(nodes).copy()
    region.nodes[start]["layer"] = None  # the region's input, whatever layer made it
    try:
        read_graph_nodes(region)
    except ArchError:
        return False
    return True


def _shapes(graph: nx.DiGraph, input_shape) -> dict:
    """Each node's output shape ``(channels, height, width)``, one layer at a time."""
    shapes: dict = {}
    for node in _order(graph):
        layer, inputs = graph.nodes[node]["layer"], [shapes[p] for p in graph.predecessors(node)]
        if layer is None:
            shapes[node] = tuple(input_shape)
        elif isinstance(layer, Cat):
            shapes[node] = (sum(shape[0] for shape in inputs), *inputs[0][1:])
        elif isinstance(layer, JOINS):
            shapes[node] = max(inputs, key=lambda shape: shape[1] * shape[2])
        else:
            shapes[node] = infer_shapes((layer,), inputs[0])[0].out_shape
    return shapes


def _units(graph: nx.DiGraph, start, join, region: set) -> list[list]:
    """The region's nodes (but ``start``) grouped into units, each a chain that runs on as long
    as one node follows another alone, or a series-parallel block closes in the region."""
    order = [node for node in _order(graph) if node in region and node != start]
    dominators = nx.immediate_dominators(graph.subgraph(region), start)
    block_end = {}  # a fork -> the join closing the series-parallel block it starts
    for node in order:
        if node != join and graph.in_degree(node) >= 2:
            inner = _region(graph, dominators[node], node)
            if inner is not None and dominators[node] != start and _series_parallel(graph, dominators[node], inner):
                block_end[dominators[node]] = node
    units, seen = [], set()
    for node in order:
        if node in seen:
            continue
        unit = [node]
        while True:
            tail = unit[-1]
            if tail in block_end:  # the whole block, then on from its join
                inside = (nx.descendants(graph, tail) & nx.ancestors(graph, block_end[tail])) | {block_end[tail]}
                unit += [n for n in order if n in inside]
                continue
            following = list(graph.successors(tail))
            if tail == join or len(following) != 1:
                break
            after = following[0]
            if after == join or after not in region or graph.in_degree(after) != 1 or isinstance(
                graph.nodes[after]["layer"], JOINS
            ):
                break
            unit.append(after)
        seen.update(unit)
        units.append(unit)
    return units


def _rewrite(graph: nx.DiGraph, start, join, region: set, shapes: dict, new: NewNode) -> str | None:
    """The region as a chain of carrying steps; where it cannot be, why (graph unchanged)."""
    units = _units(graph, start, join, region)
    virtual = {}  # a slice of a carried map -> (that map, start, stop): read in place, no step
    for index, unit in enumerate(units):
        node = unit[0]
        layer = graph.nodes[node]["layer"]
        # a slice read in place; not one that opens a block of the unit (a residual block
        # on a slice reads it twice, and the block needs it as a map of its own)
        if isinstance(layer, Slice) and node != join and (len(unit) == 1 or list(graph.successors(node)) == [unit[1]]):
            source, low = next(iter(graph.predecessors(node))), layer.start
            if source in virtual:  # a slice of a slice: of the first one's map
                source, low = virtual[source][0], virtual[source][1] + low
            virtual[node] = (source, low, low + layer.channels)
            units[index] = unit[1:]
    units = [unit for unit in units if unit]
    inputs = {unit[0]: list(graph.predecessors(unit[0])) for unit in units}
    if any(isinstance(graph.nodes[unit[0]]["layer"], Mul) for unit in units):
        return "it multiplies two maps computed in it (a gate reads one map and multiplies it)"
    waves = _waves(units, inputs, virtual, start)
    last_read = {}  # a carried map -> the last wave that reads it (or a slice of it)
    for index, wave in enumerate(waves):
        for unit in wave:
            for source in inputs[unit[0]]:
                last_read[virtual[source][0] if source in virtual else source] = index
    plan = []  # (wave, the carried maps before it [(map, channels)], the ranges each unit reads, those kept)
    state = [(start, shapes[start][0])]
    for index, wave in enumerate(waves):
        offsets = _offsets(state)
        ranges = []
        for unit in wave:
            read = [_range(source, virtual, offsets) for source in inputs[unit[0]]]
            merged = _runs(read)  # adjacent inputs of a concatenation read as one slice
            whole = merged == [(0, sum(channels for _, channels in state))] and unit == [join]
            if isinstance(graph.nodes[unit[0]]["layer"], Cat) and (len(merged) > 1 or whole):
                read = merged
            ranges.append(read)
        kept = [(item, channels) for item, channels in state if last_read.get(item, -1) > index]
        plan.append((wave, state, ranges, kept))
        state = kept + [(unit[-1], shapes[unit[-1]][0]) for unit in wave]
        sizes = sorted({shapes[item][1:] for item, _ in state}, reverse=True)
        if len(state) > 1 and len(sizes) > 1:
            return (f"it would carry maps of {' and '.join('x'.join(map(str, size)) for size in sizes)} pixels "
                    "together, which no concatenation joins")
    for node in virtual:
        graph.remove_node(node)
    for unit in units:
        for source in inputs[unit[0]]:
            if graph.has_edge(source, unit[0]):
                graph.remove_edge(source, unit[0])
        if unit[-1] != join:
            for following in list(graph.successors(unit[-1])):
                graph.remove_edge(unit[-1], following)
    carried = start
    for wave, before, ranges, kept in plan:
        width = sum(channels for _, channels in before)
        if wave == [[join]] and isinstance(graph.nodes[join]["layer"], Cat) and ranges == [[(0, width)]]:
            _bypass(graph, join, carried)  # the last concatenation already holds its inputs in order
            return None
        for unit, read in zip(wave, ranges):
            for low, high in read:
                source = carried if (low, high) == (0, width) else new(Slice(low, high), [carried])
                graph.add_edge(source, unit[0])
        if not kept and len(wave) == 1:
            carried = wave[0][-1]
            continue
        offsets = _offsets(before)
        runs = _runs([(offsets[item][0], offsets[item][0] + channels) for item, channels in kept])
        sources = [carried if run == (0, width) else new(Slice(*run), [carried]) for run in runs]
        carried = new(Cat(), sources + [unit[-1] for unit in wave])
    return None


def _bypass(graph: nx.DiGraph, node, replacement) -> None:
    """Remove ``node``; ``replacement`` feeds its readers in its place, in their input order."""
    for reader in list(graph.successors(node)):
        inputs = list(graph.predecessors(reader))
        graph.remove_edges_from([(source, reader) for source in inputs])
        graph.add_edges_from([(replacement if source == node else source, reader) for source in inputs])
    graph.remove_node(node)


def _waves(units: list, inputs: dict, virtual: dict, start) -> list[list]:
    """The units in steps: each step computes every unit whose inputs are ready, so that a map
    read by several units (a block's input read by its body and its projection) is read by all
    of them at once and need not be carried beside their outputs of another size."""
    ready, waves, remaining = {start}, [], list(units)
    while remaining:
        wave = [u for u in remaining if all((virtual[s][0] if s in virtual else s) in ready for s in inputs[u[0]])]
        if not wave:  # a closed region always has a ready unit; never loop on one that has not
            raise ArchError(f"arch graph: the units {remaining} of a region read maps from outside it")
        waves.append(wave)
        ready |= {unit[-1] for unit in wave}
        remaining = [unit for unit in remaining if unit not in wave]
    return waves


def _offsets(state: list) -> dict:
    """Each carried map -> ``(its first channel, its channels)`` in the concatenation."""
    offsets, position = {}, 0
    for item, channels in state:
        offsets[item] = (position, channels)
        position += channels
    return offsets


def _range(node, virtual: dict, offsets: dict) -> tuple[int, int]:
    """The channels of the carried maps that ``node`` (a map or a slice of one) is."""
    if node in virtual:
        source, low, high = virtual[node]
        return offsets[source][0] + low, offsets[source][0] + high
    first, channels = offsets[node]
    return first, first + channels


def _runs(ranges: list) -> list:
    """Adjacent channel ranges merged: ``[(0, 4), (4, 6), (8, 9)]`` -> ``[(0, 6), (8, 9)]``."""
    runs: list = []
    for low, high in ranges:
        if runs and runs[-1][1] == low:
            runs[-1] = (runs[-1][0], high)
        else:
            runs.append((low, high))
    return runs
