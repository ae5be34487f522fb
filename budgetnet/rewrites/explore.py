"""Equal-cost variants of a baseline: a breadth-first walk over the rewrite rules.

:func:`variants` applies every site of every rule (:mod:`budgetnet.rewrites`) to the
baseline, keeps the results whose Eqn. (1) cost matches the budget, and repeats from them,
up to ``max_steps`` rewrites away. Variants are de-duplicated by
:meth:`Arch.fingerprint`, so the result is a lineage graph like the paper's Figs. 1-3: a
networkx ``DiGraph`` whose nodes are architectures and whose edges are rewrites.

Example:
    >>> import budgetnet
    >>> from search_spaces.paper import MODELS
    >>> graph = budgetnet.variants(MODELS["A"], max_steps=1, names=MODELS)
    >>> sorted(data["name"] for _, data in graph.nodes(data=True) if data["name"])
    ['A', 'B', 'C', 'F', 'G']
    >>> [step["rule"] for step in derivation(graph, node_named(graph, "B"))]
    ['depth_filter']
"""

from __future__ import annotations

import math
import time
from typing import Iterable, Mapping

import networkx as nx

from budgetnet.graph.arch import Arch
from budgetnet.cost.budgets import Budget, resolve_budget
from budgetnet.checks import check_int
from budgetnet.cost.complexity import conv_macs
from budgetnet.errors import BudgetError, RewriteError
from budgetnet.rewrites.framework import Rule, span_notation
from budgetnet.rewrites.registry import resolve_rules

#: Most rewrites from the baseline :func:`variants` walks (``max_steps``): the walk grows
#: about tenfold per step, so a step count past this would never end anyway.
MAX_STEPS = 20
#: :func:`variants` stops once this many variants are found, unless told otherwise
#: (``max_variants=None`` lifts the bound).
DEFAULT_MAX_VARIANTS = 5000


def variants(
    baseline: Arch,
    budget: Budget | str | int | float | None = None,
    tolerance: float | None = None,
    max_steps: int = 2,
    rules: Iterable[str | Rule] | None = None,
    max_depth: int | None = None,
    max_variants: int | None = DEFAULT_MAX_VARIANTS,
    progress: bool = False,
    names: Mapping[str, Arch] | None = None,
    time_limit: float | None = None,
) -> nx.DiGraph:
    """Every variant of ``baseline`` within ``max_steps`` rewrites whose cost matches the budget.

    Breadth-first: step 1 applies every site of every rule to the baseline, step 2 to each
    variant kept at step 1, and so on. A variant is kept when its Eqn. (1) cost is within
    ``tolerance`` of the budget (:meth:`Budget.matches`, either side); only kept variants
    are rewritten further. An architecture reached twice is one node with two in-edges.

    Args:
        baseline: the Arch to start from (always the root, even outside the budget).
        budget: the target cost: a :class:`Budget`, a string for
            :func:`budgetnet.cost.budgets.parse_budget` (``"0.9x"`` of the baseline, ``"850M"``)
            or MACs; default the baseline's own cost.
        tolerance: relative distance from the target a variant may have (0.05 = 5%);
            ``None``: a :class:`Budget` keeps its own, any other budget gets 5%
            (the rule of :func:`budgetnet.cost.budgets.resolve_budget`).
        max_steps: largest number of rewrites from the baseline, 0 to :data:`MAX_STEPS`.
        rules: rule names or :class:`~budgetnet.rewrites.Rule` objects (default: all of
            :data:`~budgetnet.rewrites.RULES`, the paper's five and the block rules).
        max_depth: drop variants with more conv layers than this.
        max_variants: keep at most this many variants (baseline excluded; default
            :data:`DEFAULT_MAX_VARIANTS`; ``None``: no bound). Each step keeps at most an
            equal share of what is left of it (:func:`_share`), so a small limit still
            reaches ``max_steps`` instead of filling up on step 1.
        progress: show a tqdm bar per step on stderr.
        names: known architectures (e.g. ``search_spaces.paper.MODELS``); a node equal to
            one gets its name.
        time_limit: stop after this many seconds (checked after every site); ``None``: no limit.

    Returns:
        A ``DiGraph`` keyed by fingerprint. Nodes: ``arch``, ``notation``, ``macs``,
        ``ratio`` (to the baseline), ``depth``, ``steps`` (rewrites from the baseline),
        ``matches`` (within the budget) and ``name`` (or ``None``). Edges: ``rule`` (name),
        ``site`` (:class:`~budgetnet.rewrites.Site`), ``change`` (relative cost change) and
        ``new_layers`` (the notation of the layers the rewrite wrote). ``graph.graph`` holds ``baseline`` (its key), ``budget``, the settings and the
        counts ``checked`` (sites tried), ``refused`` (by a rule), ``rejected`` (off budget
        or too deep), ``seconds``, ``truncated`` (stopped by a limit) and ``stopped_by``
        (``"max_variants"``, ``"time_limit"`` or ``None``).

    Example:
        >>> import budgetnet
        >>> from search_spaces.paper import MODELS
        >>> graph = budgetnet.variants(MODELS["B"], rules=["delay_pool"], max_steps=1, names=MODELS)
        >>> [graph.nodes[key]["notation"] for key in graph.successors(graph.graph["baseline"])]
        ['(7,64)/2 3/1 (5,128)/3 2/2 (2,256)x6', '(7,64)/2 3/3 (5,128) 2/1 (2,256)/2 + (2,256)x5', '(7,64)/2 3/1 (5,128)/3 2/1 (2,256)/2 + (2,256)x5']
        >>> graph.nodes[node_named(graph, "B'")]["ratio"]
        1.0
    """
    if not isinstance(baseline, Arch):
        raise BudgetError(f"baseline={baseline!r} is invalid; expected an Arch")
    check_int(BudgetError, "max_steps", max_steps, 0, maximum=MAX_STEPS)
    if max_depth is not None:
        check_int(BudgetError, "max_depth", max_depth, 1)
    if max_variants is not None:
        check_int(BudgetError, "max_variants", max_variants, 1)
    if time_limit is not None and not (
        isinstance(time_limit, (int, float)) and not isinstance(time_limit, bool) and 0 < time_limit < math.inf
    ):
        raise BudgetError(f"time_limit={time_limit!r} is invalid; expected a number of seconds > 0, or None")
    rules = resolve_rules(rules)
    budget = _budget(baseline, budget, tolerance)
    tolerance = budget.tolerance
    known = _known_names(names)

    base_macs = conv_macs(baseline)
    root = baseline.fingerprint()
    graph = nx.DiGraph(
        baseline=root,
        budget=budget,
        tolerance=tolerance,
        max_steps=max_steps,
        max_depth=max_depth,
        max_variants=max_variants,
        time_limit=time_limit,
        rules=[rule.name for rule in rules],
        checked=0,
        refused=0,
        rejected=0,
        truncated=False,
        stopped_by=None,
        stopped_at_step=None,
    )
    _add_node(graph, root, baseline, base_macs, baseline.depth, base_macs, 0, budget, known)
    started = time.perf_counter()
    deadline = None if time_limit is None else started + time_limit
    frontier = [root]
    seen = {baseline.layers: root}
    for step in range(1, max_steps + 1):
        found_so_far = graph.number_of_nodes() - 1
        if not frontier or graph.graph["stopped_by"] == "time_limit" or found_so_far == max_variants:
            break
        cap = None if max_variants is None else found_so_far + _share(max_variants - found_so_far, max_steps - step + 1)
        found = []
        bar = _progress_bar(len(frontier), step, max_steps, progress)
        for key in frontier:
            found += _expand(graph, key, step, rules, budget, base_macs, max_depth, cap, known, seen, deadline)
            bar.update(1)
            bar.set_postfix(variants=graph.number_of_nodes() - 1, refresh=False)
            if cap is not None and graph.number_of_nodes() - 1 >= cap or graph.graph["stopped_by"] == "time_limit":
                break
        bar.close()
        if graph.graph["truncated"] and graph.graph["stopped_at_step"] is None:
            graph.graph["stopped_at_step"] = step
        frontier = found
    graph.graph["seconds"] = time.perf_counter() - started
    return graph


def _share(left: int, steps_left: int) -> int:
    """How many new variants one step may keep: an equal share of the ``left`` still allowed
    over the ``steps_left`` steps (this one included), rounded up, so that a limit smaller
    than the first step's yield still leaves room for every later step; a step that keeps
    fewer leaves the rest to the steps after it.

    Example:
        >>> _share(40, 2), _share(21, 1), _share(3, 5)
        (20, 21, 1)
    """
    return -(-left // steps_left)


def _expand(graph, key, step, rules, budget, base_macs, max_depth, cap, known, seen, deadline) -> list[str]:
    """Apply every site of every rule to one node; return the keys of new nodes, stopping
    once the graph holds ``cap`` variants (this step's share of ``max_variants``).

    Each site is worked out on its changed span only (:meth:`Rule.propose`); the new Arch
    is built only for a variant within the budget and depth, and only once: ``seen`` maps
    the layers as written to the node key."""
    arch = graph.nodes[key]["arch"]
    macs, depth = graph.nodes[key]["macs"], graph.nodes[key]["depth"]
    new = []
    for rule in rules:
        for site in rule.sites(arch):
            if deadline is not None and time.perf_counter() > deadline:
                graph.graph.update(truncated=True, stopped_by="time_limit", stopped_at_step=step)
                return new
            graph.graph["checked"] += 1
            try:
                proposal = rule.propose(arch, site, macs)
                too_deep = max_depth is not None and depth + proposal.depth_change > max_depth
                if too_deep or not budget.matches(proposal.after_macs):
                    graph.graph["rejected"] += 1
                    continue
                written = arch.layers[: proposal.plan.start] + proposal.plan.layers + arch.layers[proposal.plan.stop :]
                child_key = seen.get(written)
                child = None if child_key else proposal.build()
            except RewriteError:
                graph.graph["refused"] += 1
                continue
            if child is not None:
                child_key = seen[written] = child.fingerprint()
            if child_key == key:
                continue
            if child_key not in graph:
                _add_node(graph, child_key, child, proposal.after_macs, proposal.depth, base_macs, step, budget, known)
                new.append(child_key)
            if not graph.has_edge(key, child_key):
                new_layers = span_notation(proposal.plan.layers)
                graph.add_edge(key, child_key, rule=rule.name, site=site, change=proposal.change, new_layers=new_layers)
            if cap is not None and graph.number_of_nodes() - 1 >= cap:
                graph.graph["truncated"], graph.graph["stopped_by"] = True, "max_variants"
                return new
    return new


def _add_node(graph, key, arch, macs, depth, base_macs, steps, budget, known) -> None:
    """One node; ``macs`` and ``depth`` come from the proposal (Eqn. (1) and the depth of
    the span it changed, added to its parent's), not from a walk over the new Arch."""
    graph.add_node(
        key,
        arch=arch,
        notation=arch.notation(),
        macs=macs,
        ratio=macs / base_macs,
        depth=depth,
        steps=steps,
        matches=budget.matches(macs),
        name=known.get(key),
    )


def _budget(baseline: Arch, budget, tolerance: float | None) -> Budget:
    resolved = resolve_budget(budget, baseline, tolerance)
    if not isinstance(resolved, Budget):
        raise BudgetError(
            f"budget={budget!r} is invalid for variants; expected a budget in Eqn. (1) MACs (a Budget, "
            "a string like 0.9x or 850M, a number of MACs, or None): layer replacement keeps Eqn. (1)"
        )
    return resolved


def _known_names(names: Mapping[str, Arch] | None) -> dict[str, str]:
    if names is None:
        return {}
    if not isinstance(names, Mapping) or not all(isinstance(arch, Arch) for arch in names.values()):
        raise BudgetError(f"names={names!r} is invalid; expected a mapping from names to Arch objects")
    return {arch.fingerprint(): str(name) for name, arch in names.items()}


def _progress_bar(total: int, step: int, max_steps: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"step {step}/{max_steps}", unit="arch", disable=not enabled, leave=False)


# -- reading the graph ---------------------------------------------------------------------------
def derivation(graph: nx.DiGraph, key: str) -> list[dict]:
    """The rewrites on a shortest path from the baseline to ``key``, in order.

    Each step is a dict with ``source``, ``target`` (node keys), ``rule``, ``site`` and
    ``change``. The baseline's derivation is empty.

    Example:
        >>> from search_spaces.paper import MODELS
        >>> graph = variants(MODELS["B"], rules=["delay_pool"], max_steps=1, names=MODELS)
        >>> [(step["rule"], step["site"].pools) for step in derivation(graph, node_named(graph, "B'"))]
        [('delay_pool', (1, 3))]
    """
    if key not in graph:
        raise BudgetError(f"variant {key!r} is not in the graph; expected a node key (a fingerprint)")
    path = nx.shortest_path(graph, graph.graph["baseline"], key)
    return [dict(graph.edges[u, v], source=u, target=v) for u, v in zip(path, path[1:])]


def node_named(graph: nx.DiGraph, name: str) -> str:
    """The key of the node named ``name`` (see ``names`` in :func:`variants`).

    Example:
        >>> from search_spaces.paper import MODELS
        >>> graph = variants(MODELS["B"], rules=["delay_pool"], max_steps=1, names=MODELS)
        >>> node_named(graph, "B'") == MODELS["B'"].fingerprint()
        True
    """
    for key, data in graph.nodes(data=True):
        if data["name"] == name:
            return key
    named = sorted(data["name"] for _, data in graph.nodes(data=True) if data["name"])
    raise BudgetError(f"no variant named {name!r} in the graph; named variants: {named or 'none'}")


def _ordered(graph: nx.DiGraph) -> list[str]:
    """Node keys, baseline first, then by steps, descending cost and notation."""
    return sorted(
        graph,
        key=lambda key: (
            key != graph.graph["baseline"],
            graph.nodes[key]["steps"],
            -graph.nodes[key]["macs"],
            graph.nodes[key]["notation"],
        ),
    )


def labels(graph: nx.DiGraph) -> dict[str, str]:
    """A short label per node: its name, else ``v<i>`` by its place in :func:`records`.

    Example:
        >>> from search_spaces.paper import MODELS
        >>> sorted(labels(variants(MODELS["A"], max_steps=1, rules=["depth_filter"], names=MODELS)).values())
        ['A', 'B', 'C', 'v1']
    """
    return {key: graph.nodes[key]["name"] or f"v{index}" for index, key in enumerate(_ordered(graph))}


def records(graph: nx.DiGraph) -> list[dict]:
    """One JSON-ready row per node, in the order of :func:`labels`.

    Each row: ``key``, ``label``, ``name``, ``notation``, ``depth``, ``macs``, ``ratio``,
    ``steps``, ``matches``, ``path`` (rule names from the baseline), ``rewrites`` (per
    step, ``site``: its :meth:`~budgetnet.rewrites.Site.label`, ``new_layers``: what it
    wrote) and ``brief``: the notation, or past :data:`LONG_NOTATION` characters (a
    ResNet) the layers each rewrite wrote, by stage.

    Example:
        >>> from search_spaces.paper import MODELS
        >>> graph = variants(MODELS["B"], rules=["delay_pool"], max_steps=1, names=MODELS)
        >>> [(row["label"], row["path"]) for row in records(graph)]
        [('B', []), ("B'", ['delay_pool']), ('v2', ['delay_pool']), ('v3', ['delay_pool'])]
    """
    names = labels(graph)
    rows = []
    for key in _ordered(graph):
        data = graph.nodes[key]
        steps = derivation(graph, key)
        rows.append(
            {
                "key": key,
                "label": names[key],
                "name": data["name"],
                "notation": data["notation"],
                "depth": data["depth"],
                "macs": data["macs"],
                "ratio": data["ratio"],
                "steps": data["steps"],
                "matches": data["matches"],
                "path": [step["rule"] for step in steps],
                "rewrites": [{"site": step["site"].label(), "new_layers": step["new_layers"]} for step in steps],
                "brief": _brief(data["notation"], steps),
            }
        )
    return rows


#: Notations longer than this are shown by :func:`records`' ``brief`` as the layers the
#: rewrites wrote.
LONG_NOTATION = 120


def _brief(notation: str, steps: list[dict]) -> str:
    if len(notation) <= LONG_NOTATION:
        return notation
    if not steps:
        return "(baseline)"
    return "... " + "; ".join(f"stage {step['site'].stage}: {step['new_layers']}" for step in steps)


def to_dict(graph: nx.DiGraph) -> dict:
    """The whole graph as JSON-ready data: settings, counts, nodes (with the Arch JSON) and edges.

    Example:
        >>> import json
        >>> from search_spaces.paper import MODELS
        >>> data = to_dict(variants(MODELS["B"], rules=["delay_pool"], max_steps=1))
        >>> len(data["nodes"]), len(data["edges"]), len(json.dumps(data)) > 0
        (4, 3, True)
    """
    settings = {key: value for key, value in graph.graph.items() if key != "budget"}
    budget = graph.graph["budget"]
    settings["budget"] = {"target_macs": budget.target_macs, "tolerance": budget.tolerance, "label": budget.label}
    nodes = records(graph)
    for row in nodes:
        row["arch"] = graph.nodes[row["key"]]["arch"].to_dict()
    edges = [
        {"source": u, "target": v, "rule": data["rule"], "site": data["site"].to_dict(), "change": data["change"],
         "new_layers": data["new_layers"]}
        for u, v, data in graph.edges(data=True)
    ]
    return {"settings": settings, "nodes": nodes, "edges": edges}


def summary(graph: nx.DiGraph) -> str:
    """One line: how many variants, steps, sites checked, time.

    Example:
        >>> from search_spaces.paper import MODELS
        >>> summary(variants(MODELS["B"], rules=["delay_pool"], max_steps=1)).split(";")[0]
        '3 variants within 1 step'
    """
    info = graph.graph
    count = graph.number_of_nodes() - 1
    steps = max((data["steps"] for _, data in graph.nodes(data=True)), default=0)
    rate = info["checked"] / info["seconds"] if info["seconds"] > 0 else math.inf
    text = (
        f"{count} variant{'s' * (count != 1)} within {steps} step{'s' * (steps != 1)}; "
        f"{info['checked']} sites checked ({info['refused']} refused by a rule, {info['rejected']} "
        f"off budget or too deep) in {info['seconds']:.2f} s ({rate:.0f}/s); budget {info['budget']}"
    )
    return text + (f"; {stop_reason(graph)}" if info["truncated"] else "")


def stop_reason(graph: nx.DiGraph) -> str | None:
    """Which limit cut the walk short and how many variants it had found, or ``None`` when
    it ran to the end.

    Example:
        >>> from search_spaces.paper import MODELS
        >>> stop_reason(variants(MODELS["A"], max_steps=2, max_variants=3))
        'cut short by max_variants=3 from step 1 of 2 on (each step keeps at most an equal share of the limit left), with 3 variants found'
    """
    info = graph.graph
    if not info["truncated"]:
        return None
    count = graph.number_of_nodes() - 1
    found = f"{count} variant{'s' * (count != 1)} found"
    if info.get("stopped_by") == "time_limit":
        return f"stopped early by time_limit={info['time_limit']:g} s at step {info.get('stopped_at_step')} of {info['max_steps']}, with {found}"
    return (
        f"cut short by max_variants={info['max_variants']} from step {info.get('stopped_at_step')} of "
        f"{info['max_steps']} on (each step keeps at most an equal share of the limit left), with {found}"
    )


__all__ = ["derivation", "labels", "node_named", "records", "stop_reason", "summary", "to_dict", "variants"]
