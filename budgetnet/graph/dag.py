"""Between an Arch's nested blocks and a plain ``networkx`` DAG of layers and joins.

:func:`to_graph` draws an Arch as the graph it computes: one node per conv, pool and head
layer, an :class:`~budgetnet.graph.layers.Add` node per residual add, a
:class:`~budgetnet.graph.layers.Cat` node per concatenation and a
:class:`~budgetnet.graph.layers.Mul` node per gate, from an input node (``layer=None``).
:func:`from_graph` reads such a graph back into top-level layers and blocks. It takes any
series-parallel DAG with one input and one output, which covers ResNet, ResNeXt, MobileNet,
Inception, DenseNet and squeeze-excitation; each fork must close at an Add (two branches),
a Cat or a Mul (the input itself times one branch). The branches of a Cat keep the order of
the Cat's incoming edges; at an Add the branch with more layers (the first input on a tie)
is the body and the other the shortcut.

Example:
    >>> import budgetnet
    >>> arch = budgetnet.parse("(3,16) res[(3,16) (3,16)@none]x2 gap", input_shape=(1, 8, 8))
    >>> graph = to_graph(arch)
    >>> sum(1 for _, data in graph.nodes(data=True) if data["layer"] is not None and data["layer"].kind == "add")
    2
    >>> budgetnet.Arch(graph, input_shape=(1, 8, 8)) == arch
    True
"""

from __future__ import annotations

import copy

import networkx as nx

from budgetnet.errors import ArchError
from budgetnet.graph.layers import JOINS, Add, Cat, Concat, Gate, Layer, Mul, Residual

INPUT = "input"


def to_graph(arch) -> nx.DiGraph:
    """The DAG ``arch`` computes, with resolved layers (paddings, groups, shortcuts explicit)."""
    graph = nx.DiGraph()
    graph.add_node(INPUT, layer=None)
    counter = iter(range(10**9))

    def chain(layers, previous):
        for layer in layers:
            if isinstance(layer, Residual):
                body = chain(layer.body, previous)
                short = chain(layer.shortcut or (), previous)
                node = next(counter)
                graph.add_node(node, layer=Add(layer.activation))
                graph.add_edge(body, node)
                graph.add_edge(short, node)
            elif isinstance(layer, Concat):
                ends = [chain(branch, previous) for branch in layer.branches]
                node = next(counter)
                graph.add_node(node, layer=Cat())
                for end in ends:
                    graph.add_edge(end, node)
            elif isinstance(layer, Gate):
                end = chain(layer.body, previous)
                node = next(counter)
                graph.add_node(node, layer=Mul())
                graph.add_edge(previous, node)
                graph.add_edge(end, node)
            else:
                node = next(counter)
                graph.add_node(node, layer=layer)
                graph.add_edge(previous, node)
            previous = node
        return previous

    chain(arch.resolved_layers, INPUT)
    return graph


def is_chain(graph: nx.DiGraph) -> bool:
    """True for a graph of layer specs that is one unbranched path (the plain-net case)."""
    return all(
        graph.in_degree(node) <= 1 and graph.out_degree(node) <= 1 and data.get("layer") is not None
        and not isinstance(data.get("layer"), JOINS)
        for node, data in graph.nodes(data=True)
    )


def from_graph(graph: nx.DiGraph) -> list[Layer]:
    """Top-level layers and blocks of a series-parallel DAG (see the module docstring).

    Raises:
        ArchError: see :func:`read_graph`.
    """
    return read_graph(graph)[0]


def read_graph(graph: nx.DiGraph) -> tuple[list[Layer], list]:
    """Top-level layers and blocks of a series-parallel DAG, and the graph node of each leaf
    layer in :meth:`Arch.walk` order (a block's body before its shortcut); see
    :func:`read_graph_nodes`.
    """
    layers, leaves, _ = read_graph_nodes(graph)
    return layers, leaves


def read_graph_nodes(graph: nx.DiGraph) -> tuple[list[Layer], list, list]:
    """:func:`read_graph`, and the join node of each block in :meth:`Arch.walk` order.

    Raises:
        ArchError: an unlabeled node, a cycle, more than one input or output, a fork that
            does not close at an Add, Cat or Mul, an Add without exactly two inputs, a Mul of
            two computed branches, or branches
            that cross each other (not series-parallel).
    """
    unlabeled = [node for node, data in graph.nodes(data=True) if "layer" not in data]
    if unlabeled:
        raise ArchError(f"arch graph: every node needs a 'layer' attribute; nodes {unlabeled} have none")
    if graph.number_of_nodes() == 0:
        return []
    if not nx.is_directed_acyclic_graph(graph):
        cycle = [edge[0] for edge in nx.find_cycle(graph)]
        raise ArchError(f"arch graph: a cycle through nodes {cycle}; expected a directed acyclic graph")
    sources = [node for node in graph if graph.in_degree(node) == 0]
    sinks = [node for node in graph if graph.out_degree(node) == 0]
    if len(sources) != 1:
        raise ArchError(
            f"arch graph: {len(sources)} input nodes {sources}; expected exactly one input (a second "
            "input has no image to read)"
        )
    if len(sinks) != 1:
        raise ArchError(f"arch graph: {len(sinks)} output nodes {sinks}; expected exactly one output")
    for node, data in graph.nodes(data=True):
        if data["layer"] is None and node != sources[0]:
            raise ArchError(f"arch graph: node {node!r} has layer=None; only the input node may")
        if isinstance(data["layer"], JOINS) and graph.in_degree(node) < 2:
            raise ArchError(
                f"arch graph: node {node!r} ({data['layer'].kind}) has {graph.in_degree(node)} input; "
                "expected a join of at least two branches"
            )
    reader = _Reader(graph)
    layers, _ = reader.chain(sources[0], None)
    leaves = [reader.nodes[id(layer)] for layer in _leaves(layers)]
    return layers, leaves, [reader.joins[id(block)] for block in _blocks(layers)]


class _Reader:
    def __init__(self, graph: nx.DiGraph):
        self.graph = graph
        self.order = {node: position for position, node in enumerate(nx.topological_sort(graph))}
        self.nodes: dict[int, object] = {}  # id() of each leaf spec object read -> its node
        self.joins: dict[int, object] = {}  # id() of each block read -> its join node
        self._keep: list = []  # keeps those spec objects alive, so their ids stay unique

    def layer(self, node):
        return self.graph.nodes[node]["layer"]

    def chain(self, node, stop) -> tuple[list[Layer], object]:
        """The layers from ``node`` up to (not including) ``stop`` (``None``: to the output),
        and the node whose edge enters ``stop``."""
        layers: list[Layer] = []
        last = node
        while node != stop:
            layer = self.layer(node)
            if isinstance(layer, JOINS):
                raise ArchError(
                    f"arch graph: join node {node!r} ({layer.kind}) merges branches that do not fork from "
                    "one node; expected series-parallel branches (each fork closed by one add or cat)"
                )
            if layer is not None:
                layer = copy.copy(layer)  # one object per node, so its id names the node
                self.nodes[id(layer)] = node
                self._keep.append(layer)
                layers.append(layer)
            last, node = self.after(node, stop, layers)
            if node is None:
                if stop is not None:
                    raise ArchError(f"arch graph: a branch ends before it reaches join node {stop!r}")
                break
        return layers, last

    def after(self, node, stop, layers: list[Layer]):
        """``(node or the last join passed, the node after it)``, appending a block to
        ``layers`` for every fork on the way."""
        while True:
            successors = list(self.graph.successors(node))
            if not successors:
                return node, None
            if len(successors) == 1:
                following = successors[0]
                if following != stop and self.graph.in_degree(following) > 1 and not isinstance(
                    self.layer(following), JOINS
                ):
                    raise ArchError(
                        f"arch graph: node {following!r} has {self.graph.in_degree(following)} inputs; "
                        "expected one input per layer (merge branches with an Add or Cat node)"
                    )
                if following != stop and isinstance(self.layer(following), JOINS):
                    raise ArchError(
                        f"arch graph: join node {following!r} ({self.layer(following).kind}) is reached "
                        f"from node {node!r} without a fork; expected series-parallel branches"
                    )
                return node, following
            block, join = self.fork(node, successors)
            self.joins[id(block)] = join
            self._keep.append(block)
            layers.append(block)
            node = join

    def fork(self, node, successors: list) -> tuple[Layer, object]:
        """The block that the branches from ``node`` through ``successors`` make, and its join.

        The join is the first node every one of those branches reaches. Successors that reach
        the same input of the join form one branch that starts with a fork of its own (a
        residual block as the whole body of another one, say).
        """
        reach = {s: nx.descendants(self.graph, s) | {s} for s in successors}
        common = set.intersection(*reach.values())
        join = min(common, key=self.order.__getitem__) if common else None
        join_layer = self.layer(join) if join is not None else None
        if not isinstance(join_layer, JOINS):
            raise ArchError(
                f"arch graph: the branches from node {node!r} meet at {join!r} "
                f"({getattr(join_layer, 'kind', join_layer)}); expected them to close at one Add, Cat or Mul node"
            )
        inputs = list(self.graph.predecessors(join))
        groups: dict = {}
        for successor in successors:
            if successor == join:
                ends = {node}
            else:
                ends = reach[successor] & set(inputs)
            if len(ends) != 1:
                raise ArchError(
                    f"arch graph: the branch from node {node!r} through {successor!r} enters join node {join!r} "
                    f"{len(ends)} times; expected series-parallel branches"
                )
            groups.setdefault(ends.pop(), []).append(successor)
        if set(groups) != set(inputs):
            raise ArchError(
                f"arch graph: join node {join!r} has inputs {sorted(map(str, inputs))} that do not all come from "
                f"the fork at node {node!r}; expected series-parallel branches"
            )
        branches = []
        for end in inputs:
            members = groups[end]
            if end == node:
                branches.append([])
            elif len(members) == 1:
                branches.append(self.chain(members[0], join)[0])
            else:
                inner, inner_join = self.fork(node, members)
                self.joins[id(inner)] = inner_join
                self._keep.append(inner)
                rest: list[Layer] = [inner]
                _, following = self.after(inner_join, join, rest)
                if following != join:
                    rest += self.chain(following, join)[0]
                branches.append(rest)
        if isinstance(join_layer, Cat):
            return Concat(tuple(tuple(branch) for branch in branches)), join
        if isinstance(join_layer, Mul):
            bodies = [branch for branch in branches if branch]
            if len(branches) != 2 or len(bodies) != 1:
                raise ArchError(
                    f"arch graph: mul node {join!r} multiplies {len(bodies)} computed branches; expected the "
                    "input itself times one gate branch (squeeze-excitation); a product of two computed maps "
                    "(attention) has no place in an Arch"
                )
            return Gate(tuple(bodies[0])), join
        if len(branches) != 2:
            raise ArchError(f"arch graph: add node {join!r} has {len(branches)} inputs; expected 2")
        first, second = branches
        body, short = (second, first) if _size(second) > _size(first) else (first, second)
        return Residual(tuple(body), tuple(short), join_layer.activation), join


def _leaves(layers):
    for layer in layers:
        if isinstance(layer, Gate):
            yield from _leaves(layer.body)
        elif isinstance(layer, Residual):
            yield from _leaves(layer.body)
            yield from _leaves(layer.shortcut or ())
        elif isinstance(layer, Concat):
            for branch in layer.branches:
                yield from _leaves(branch)
        else:
            yield layer


def _blocks(layers):
    """The blocks among ``layers`` and inside them, in :meth:`Arch.walk` order."""
    for layer in layers:
        if isinstance(layer, (Residual, Concat, Gate)):
            yield layer
            inner = (
                [*layer.body, *(layer.shortcut or ())] if isinstance(layer, Residual)
                else [item for branch in layer.branches for item in branch] if isinstance(layer, Concat)
                else list(layer.body)
            )  # fmt: skip
            yield from _blocks(inner)


def _size(layers) -> int:
    count = 0
    for layer in layers:
        count += 1
        if isinstance(layer, Gate):
            count += _size(layer.body)
        elif isinstance(layer, Residual):
            count += _size(layer.body) + _size(layer.shortcut or ())
        elif isinstance(layer, Concat):
            count += sum(_size(branch) for branch in layer.branches)
    return count
