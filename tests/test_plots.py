"""Tests for budgetnet.plots.lineage: the relation graph of the paper's Figs. 1-3 as a PNG."""

import pytest

import budgetnet
from budgetnet.errors import BudgetError
from budgetnet.rewrites.explore import node_named
from budgetnet.plots import lineage
from search_spaces.paper import MODELS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fig1_graph():
    """Fig. 1: A, B, C, D, E related by depth vs filter size (Eqns. 3-5)."""
    return budgetnet.variants(MODELS["A"], max_steps=2, rules=["depth_filter"], names=MODELS)


def boxes(figure):
    return [text for text in figure.axes[0].texts if "MACs" in text.get_text()]


def arrows(figure):
    return [child for child in figure.axes[0].texts if getattr(child, "arrow_patch", None) is not None]


def test_lineage_of_fig1_saves_a_png(fig1_graph, tmp_path):
    keys = [node_named(fig1_graph, name) for name in "ABCDE"]
    figure = lineage(fig1_graph, tmp_path / "fig1.png", nodes=keys)
    data = (tmp_path / "fig1.png").read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    texts = {text.get_text().split()[0]: text.get_text() for text in boxes(figure)}
    assert set(texts) == set("ABCDE")
    assert texts["B"].splitlines() == ["B   0.96x", "(7,64)/2 3/3 (5,128) 2/2 (2,256)x6", "d=8, 821.4M MACs"]
    # A->B, A->C, B->D, C->D, B->E: one arrow per edge, each labelled by its rule
    assert len(arrows(figure)) == fig1_graph.subgraph(keys).number_of_edges() == 5
    rules = [text.get_text() for text in figure.axes[0].texts if text.get_text() == "depth_filter"]
    assert len(rules) == 5
    assert figure.get_suptitle().startswith("Variants of A at equal cost: 4 of 5 shown; budget 855.0M")


def test_lineage_defaults_to_named_models_when_the_graph_is_large(fig1_graph):
    figure = lineage(fig1_graph, max_nodes=5, edge_labels=False, title="Fig. 1")
    assert fig1_graph.number_of_nodes() == 6  # A .. E and (2,128)x4 + (3,256)x3
    labels = sorted(text.get_text().split()[0] for text in boxes(figure))
    assert labels[:5] == ["A", "B", "C", "D", "E"] and len(labels) <= 6  # and variants on their paths
    assert figure.get_suptitle() == "Fig. 1"
    assert not any(text.get_text() == "depth_filter" for text in figure.axes[0].texts)


def test_lineage_without_names_draws_the_closest_variants():
    graph = budgetnet.variants(MODELS["A"], max_steps=2, rules=["depth_filter", "delay_pool"])
    figure = lineage(graph, max_nodes=4)
    assert [text.get_text().split()[0] for text in boxes(figure)].count("v0") == 1
    assert len(boxes(figure)) == 4


def test_lineage_bad_input(fig1_graph):
    with pytest.raises(BudgetError, match="max_nodes=0 is invalid; expected an integer >= 1"):
        lineage(fig1_graph, max_nodes=0)
    with pytest.raises(BudgetError, match=r"nodes=\['nope'\] are not in the graph"):
        lineage(fig1_graph, nodes=["nope"])


def test_lineage_of_a_resnet_shows_what_each_rewrite_wrote():
    from budgetnet.graph.zoo import ZOO

    graph = budgetnet.variants(ZOO["resnet50"], max_steps=1, rules=["cardinality_width"], names=ZOO)
    figure = lineage(graph)
    texts = [text.get_text() for text in boxes(figure)]
    assert any(text.startswith("resnet50") and "(baseline)" in text for text in texts)
    assert any("... stage 2: res[(1,80)bn (3,80)g2bn" in text.replace("\n", " ") for text in texts)
    labels = {text.get_text() for text in figure.axes[0].texts if text.get_text().startswith("cardinality_width")}
    assert "cardinality_width(stage 2, groups=2)" in labels


def test_confirmation_and_proxy_plots_are_pngs(tmp_path):
    from budgetnet.plots import confirmation, proxy_scatter
    from budgetnet.studies.confirm import mean_interval

    rows = [{"model": "baseline", "ratio": 1.0, "arm": "baseline", "runs": [0.90, 0.92, 0.91],
             "interval": mean_interval([0.90, 0.92, 0.91])},
            {"model": "trial 3", "ratio": 0.98, "arm": "search", "runs": [0.93, 0.95, 0.94],
             "interval": mean_interval([0.93, 0.95, 0.94])},
            {"model": "trial 9 (random)", "ratio": 1.01, "arm": "control", "runs": [0.91, None, 0.92],
             "interval": mean_interval([0.91, 0.92])}]  # fmt: skip
    figure = confirmation({"models": rows, "verdict": "trial 3 beats the baseline", "held_out": {"text": "3-fold"}},
                          tmp_path / "c.png")  # fmt: skip
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [label.get_text().split("\n")[0] for label in figure.axes[0].get_xticklabels()] == [
        "baseline", "trial 3", "trial 9 (random)"]
    tau = {"kendall": {"value": 0.5, "low": 0.1, "high": 0.8}}
    report = {"candidates": [{"short": 0.8, "long": 0.9, "long_again": 0.91}] * 4, "short_vs_long": tau,
              "noise_ceiling": tau, "short_epochs": 2, "long_epochs": 6}  # fmt: skip
    proxy_scatter(report, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
