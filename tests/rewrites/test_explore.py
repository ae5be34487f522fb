"""Tests for budgetnet.rewrites.explore: the breadth-first walk over the rewrites from a baseline."""

import json

import networkx as nx
import pytest

import budgetnet
from budgetnet.cost.budgets import Budget
from budgetnet.cost.complexity import conv_macs
from budgetnet.errors import BudgetError, RewriteError
from budgetnet.rewrites.explore import derivation, node_named, records, summary, to_dict, variants
from budgetnet.rewrites import RULES
from search_spaces.paper import MODELS, PAPER_COMPLEXITY

A = MODELS["A"]


@pytest.fixture(scope="module")
def one_step():
    return variants(A, max_steps=1, names=MODELS)


@pytest.fixture(scope="module")
def two_steps():
    return variants(A, max_steps=2, names=MODELS)


def names(graph):
    return {data["name"] for _, data in graph.nodes(data=True) if data["name"]}


def eqn1(arch) -> int:
    """Eqn. (1) by hand from the layer shapes: n_{l-1} * s^2 * n_l * m_l^2 over the convs."""
    return sum(
        info.in_shape[0] * info.layer.kernel_size**2 * info.out_shape[0] * info.out_shape[1] * info.out_shape[2]
        for info in arch.shapes
        if info.kind == "conv"
    )


def test_one_step_from_a_keeps_only_real_rewrites_within_budget(one_step):
    root = one_step.graph["baseline"]
    a_macs = eqn1(A)
    for key, data in one_step.nodes(data=True):
        assert data["macs"] == eqn1(data["arch"]) and abs(data["macs"] / a_macs - 1) <= 0.05
        if key == root:
            continue
        # Each variant is what its edge's rule makes of A (the rules' public API, tested in test_rewrites).
        (parent, _, edge), = one_step.in_edges(key, data=True)
        assert parent == root and budgetnet.rewrite(A, edge["site"], tolerance=None).after == data["arch"]
    # Figs. 1-2 of the paper: one replacement from A gives B, C, F and G.
    assert names(one_step) == {"A", "B", "C", "F", "G"}
    # Every site of every rule was tried once: kept, refused by its rule, or off the budget.
    assert one_step.graph["checked"] == sum(len(rule.sites(A)) for rule in RULES)
    kept = one_step.number_of_nodes() - 1
    assert 0 < kept <= one_step.graph["checked"] - one_step.graph["refused"] - one_step.graph["rejected"]


def test_node_and_edge_attributes(one_step):
    root = one_step.graph["baseline"]
    assert root == A.fingerprint()
    assert one_step.nodes[root] | {"arch": None} == {
        "arch": None, "notation": str(A), "macs": 854954688, "ratio": 1.0, "depth": 5, "steps": 0,
        "matches": True, "name": "A",
    }  # fmt: skip
    b = one_step.nodes[node_named(one_step, "B")]
    assert b["arch"] == MODELS["B"] and b["depth"] == 8 and b["steps"] == 1
    assert round(b["ratio"], 2) == PAPER_COMPLEXITY["B"]
    edge = one_step.edges[root, node_named(one_step, "B")]
    assert edge["rule"] == "depth_filter"
    assert edge["site"].where() == "stage 3 layers 4:7 '(3,256)x3' (kernel_size=2, count=2)"
    assert edge["change"] == pytest.approx(b["ratio"] - 1)
    for _, data in one_step.nodes(data=True):
        assert abs(data["ratio"] - 1) <= 0.05 and data["matches"]


def test_reaching_a_model_twice_gives_one_node_with_two_parents(two_steps):
    d = node_named(two_steps, "D")
    parents = {two_steps.nodes[u]["name"]: data["rule"] for u, _, data in two_steps.in_edges(d, data=True)}
    assert parents == {"B": "depth_filter", "C": "depth_filter"}  # Fig. 1
    assert two_steps.nodes[d]["steps"] == 2
    assert names(two_steps) >= {"A", "B", "C", "D", "E", "F", "G", "H", "B'"}
    assert len({data["arch"] for _, data in two_steps.nodes(data=True)}) == two_steps.number_of_nodes()


def test_node_data_equals_what_each_arch_says_from_scratch():
    # The walk takes cost and depth from the proposals and reuses cached shapes, fingerprints
    # and proposals; every node must still say what its Arch, rebuilt from JSON, says.
    from budgetnet.graph.zoo import ZOO

    graph = variants(ZOO["resnet18"], max_steps=2, tolerance=0.05)
    assert graph.number_of_nodes() > 100
    for key, data in graph.nodes(data=True):
        fresh = budgetnet.Arch.from_json(data["arch"].to_json())
        assert key == fresh.fingerprint() == data["arch"].fingerprint()
        assert (data["macs"], data["depth"], data["notation"]) == (conv_macs(fresh), fresh.depth, str(fresh))
        assert data["arch"].shapes == fresh.shapes


@pytest.mark.slow
def test_four_steps_reach_every_model_of_tables_1_and_2():
    """I costs 0.93 of A, so the tolerance is 8%; J' is four rewrites away (A->B->E->J->J');
    11 convs is the deepest model of the tables."""
    graph = variants(A, tolerance=0.08, max_steps=4, max_depth=11, names=MODELS)
    assert names(graph) == set(MODELS)
    steps = {data["name"]: data["steps"] for _, data in graph.nodes(data=True) if data["name"]}
    assert steps == {
        "A": 0, "B": 1, "C": 1, "F": 1, "G": 1, "D": 2, "E": 2, "H": 2, "B'": 2,
        "I": 3, "J": 3, "D'": 3, "E'": 3, "J'": 4,
    }  # fmt: skip
    path = derivation(graph, node_named(graph, "J'"))
    assert [step["rule"] for step in path] == ["depth_filter", "depth_filter", "add_pool", "delay_pool"]
    assert [graph.nodes[step["target"]]["name"] for step in path][1:] == ["E", "J", "J'"]


def test_budget_forms(one_step):
    target = conv_macs(A)
    as_string = variants(A, budget="1x", max_steps=1)
    as_number = variants(A, budget=target, max_steps=1)
    as_budget = variants(A, budget=Budget(target, 0.5), tolerance=0.05, max_steps=1)  # a given tolerance wins
    assert set(as_string) == set(as_number) == set(as_budget) == set(one_step)
    assert as_budget.graph["budget"].tolerance == as_budget.graph["tolerance"] == 0.05
    # No tolerance given: a Budget keeps its own (the rule of budgetnet.cost.budgets.resolve_budget).
    exact = variants(A, budget=Budget(target, 0.0), max_steps=1)
    assert exact.graph["tolerance"] == 0.0
    assert all(exact.nodes[key]["macs"] == target for key in exact)  # 0 %: only exactly equal cost
    lower = variants(A, budget="0.96x", tolerance=0.005, max_steps=1, names=MODELS)
    assert names(lower) == {"A", "B"}  # B is 0.961 of A
    assert not lower.nodes[lower.graph["baseline"]]["matches"]


def test_max_depth_and_max_variants():
    shallow = variants(A, max_steps=2, max_depth=6)
    assert max(data["depth"] for _, data in shallow.nodes(data=True)) <= 6
    assert shallow.graph["rejected"] > 0
    capped = variants(A, max_steps=3, max_variants=7)
    assert capped.number_of_nodes() == 8 and capped.graph["truncated"]
    # each step keeps an equal share of the limit left: ceil(7/3) = 3, then ceil(4/2) = 2, then 2
    per_step = [sum(data["steps"] == step for _, data in capped.nodes(data=True)) for step in (1, 2, 3)]
    assert per_step == [3, 2, 2]
    assert summary(capped).endswith(
        "cut short by max_variants=7 from step 1 of 3 on (each step keeps at most an equal share of the limit left), "
        "with 7 variants found"
    )
    assert capped.graph["stopped_by"] == "max_variants"
    assert variants(A, max_steps=0).number_of_nodes() == 1


def test_a_small_limit_still_reaches_every_step():
    # ResNet-50 has 41 sites at step 1; a limit of 40 used to fill up there and never take step 2
    graph = variants(budgetnet.zoo.get("resnet50"), max_steps=2, max_variants=40)
    per_step = [sum(data["steps"] == step for _, data in graph.nodes(data=True)) for step in (1, 2)]
    assert per_step == [20, 20]  # ceil(40/2) = 20, then the 20 left


def test_rules_subset_and_progress(capsys):
    graph = variants(A, rules=["delay_pool"], max_steps=2, progress=True)
    assert {data["rule"] for *_, data in graph.edges(data=True)} == {"delay_pool"}
    assert graph.number_of_nodes() == 4  # each pool, or both, delayed
    assert graph.graph["rules"] == ["delay_pool"]


def test_records_and_json(two_steps):
    rows = records(two_steps)
    assert rows[0]["name"] == "A" and rows[0]["path"] == []
    assert [row["steps"] for row in rows] == sorted(row["steps"] for row in rows)
    d = next(row for row in rows if row["name"] == "D")
    assert len(d["path"]) == 2 and d["notation"] == str(MODELS["D"])
    data = json.loads(json.dumps(to_dict(two_steps)))
    assert len(data["nodes"]) == two_steps.number_of_nodes()
    assert len(data["edges"]) == two_steps.number_of_edges()
    assert data["settings"]["budget"]["target_macs"] == conv_macs(A)
    assert budgetnet.Arch.from_dict(data["nodes"][0]["arch"]) == A
    assert nx.is_weakly_connected(two_steps)


def test_summary_line(one_step):
    text = summary(one_step)
    assert text.startswith("11 variants within 1 step; 13 sites checked (1 refused by a rule, 1 off budget")
    assert text.endswith("budget 855.0M MACs (1x baseline) ±5.0%")


def test_bad_input():
    with pytest.raises(BudgetError, match=r"tolerance=-0.01 is invalid; expected a number >= 0 or None \(a relative"):
        variants(A, tolerance=-0.01)
    with pytest.raises(BudgetError, match="max_steps=21 is invalid; expected an integer from 0 to 20"):
        variants(A, max_steps=21)
    with pytest.raises(BudgetError, match="time_limit=0 is invalid; expected a number of seconds > 0, or None"):
        variants(A, time_limit=0)
    with pytest.raises(BudgetError, match="max_steps=-1 is invalid; expected an integer from 0 to 20"):
        variants(A, max_steps=-1)
    with pytest.raises(BudgetError, match="max_depth=0 is invalid; expected an integer >= 1"):
        variants(A, max_depth=0)
    with pytest.raises(BudgetError, match="max_variants=1.5 is invalid"):
        variants(A, max_variants=1.5)
    with pytest.raises(BudgetError, match="budget=\\[1\\] is invalid; expected a budgetnet.Budget"):
        variants(A, budget=[1])
    with pytest.raises(BudgetError, match="budget='cheap' is invalid"):
        variants(A, budget="cheap")
    with pytest.raises(BudgetError, match="baseline='A' is invalid; expected an Arch"):
        variants("A")
    with pytest.raises(BudgetError, match="names=.* is invalid; expected a mapping from names to Arch"):
        variants(A, names={"A": "A"})
    with pytest.raises(RewriteError, match="rewrite rule 'deeper': unknown rule"):
        variants(A, rules=["deeper"])
    graph = variants(A, max_steps=0)
    with pytest.raises(BudgetError, match="no variant named 'B' in the graph; named variants: none"):
        node_named(graph, "B")
    with pytest.raises(BudgetError, match="variant 'nope' is not in the graph"):
        derivation(graph, "nope")
