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
    # 16 children of one parent: a cluster, each box naming its rewrite (no label on 16 arrows)
    assert graph.number_of_nodes() - 1 > 8
    assert any("via cardinality_width(stage 2, groups=2)" in text.replace("\n", " ") for text in texts)
    assert len(arrows(figure)) == 1


def extents(figure, texts):
    figure.canvas.draw()  # place the label boxes where their texts ended up
    renderer = figure.canvas.get_renderer()
    return [text.get_bbox_patch().get_window_extent(renderer) for text in texts]


def overlapping(first, second=None) -> list:
    """Pairs of extents that overlap: one from each list, or any two of ``first``."""
    return [(a, b) for i, a in enumerate(first) for b in (first[i + 1 :] if second is None else second) if a.overlaps(b)]


def test_a_wide_lineage_lays_out_as_a_grid_not_a_column(tmp_path):
    from PIL import Image

    graph = budgetnet.variants(budgetnet.zoo.get("resnet50"), max_steps=2, max_variants=40)
    figure = lineage(graph, tmp_path / "resnet50.png")
    width, height = Image.open(tmp_path / "resnet50.png").size
    # it was a 968 x 4680 px column of 39 boxes; now clusters of at most 8 rows
    assert width <= 2600 and height <= 1700 and height < width
    shown = boxes(figure)
    assert len(shown) == 40  # the baseline, 20 variants at step 1 and 20 at step 2 (one share each)
    assert not overlapping(extents(figure, shown))
    parents = {source for source, _ in graph.edges()}
    assert len(arrows(figure)) == len(parents) == 2  # one arrow per cluster, from its parent
    bar = figure.axes[1].get_window_extent()  # the colour key, whole inside the figure
    assert 0 <= bar.x0 and bar.x1 <= figure.bbox.width and 0 <= bar.y0 and bar.y1 <= figure.bbox.height


def test_edge_labels_overlap_no_box_and_no_other_label():
    from budgetnet.graph.zoo import PAPER_MODELS

    graph = budgetnet.variants(MODELS["A"], max_steps=3, tolerance=0.08, names=PAPER_MODELS)
    figure = lineage(graph)  # what `budgetnet variants A --steps 3 --tolerance 0.08 --plot` draws
    shown = boxes(figure)
    labels = [text for text in figure.axes[0].texts if text not in shown and text.get_bbox_patch() is not None]
    assert len(labels) == len(arrows(figure)) > 12
    assert not overlapping(extents(figure, labels), extents(figure, shown))
    assert not overlapping(extents(figure, labels))


def search_study(repeat: bool):
    """Three architectures at 2.30M, 2.35M and 2.40M MACs, and a fourth trial that repeats the first."""
    import optuna

    study = optuna.create_study(direction="maximize", study_name="s")
    for value, macs, fingerprint in ((0.90, 2_300_000, "a"), (0.93, 2_350_000, "b"), (0.91, 2_400_000, "c")):
        study.add_trial(optuna.create_trial(value=value, user_attrs={"macs": macs, "status": "ok", "fingerprint": fingerprint}))
    if repeat:
        study.add_trial(optuna.create_trial(value=0.90, user_attrs={"macs": 2_300_000, "status": "ok", "fingerprint": "a",
                                                                     "duplicate_of": 0}))  # fmt: skip
    return study


def test_pareto_axis_in_si_units_and_repeated_trials_drawn_once(tmp_path):
    import re

    from budgetnet.plots import optimization_history, pareto_front

    figure = pareto_front(search_study(repeat=True), path=tmp_path / "pareto.png")
    axes = figure.axes[0]
    ticks = [label.get_text() for label in axes.get_xticklabels() if label.get_text()]
    assert ticks and all(re.fullmatch(r"\d+(\.\d+)?M", tick) for tick in ticks), ticks
    assert len(set(ticks)) == len(ticks)  # enough decimals to tell 2.30M from 2.35M
    assert axes.xaxis.get_offset_text().get_text() == ""  # no "1e6"
    trials = next(c for c in axes.collections if c.get_label().startswith("trial inside the budget"))
    assert len(trials.get_offsets()) == 3  # four trials, three architectures
    assert trials.get_label() == "trial inside the budget (1 repeated architecture drawn once)"
    history = optimization_history(search_study(repeat=True)).axes[0]
    groups = {c.get_label(): len(c.get_offsets()) for c in history.collections}
    assert groups == {"completed": 3, "repeated an earlier architecture": 1}


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


def test_a_long_verdict_and_held_out_text_stay_inside_a_narrow_confirmation_plot(tmp_path):
    from budgetnet.plots import confirmation
    from budgetnet.studies.confirm import mean_interval

    rows = [{"model": "baseline", "ratio": 1.0, "arm": "baseline", "runs": [0.7, 0.8], "interval": mean_interval([0.7, 0.8])},
            {"model": "trial 1", "ratio": 0.9, "arm": "search", "runs": [0.5, 0.6], "interval": mean_interval([0.5, 0.6])}]  # fmt: skip
    verdict = ("no candidate beats the baseline at this budget: the baseline beats every one; trial 1, the closest, "
               "trails it by 20.5 points (95% CI 11.6 to 29.4) at 0.90x its cost")  # fmt: skip
    held_out = ("3-fold over the whole set (946 images: train, val and test; each image held out once per seed), "
                "3 seeds: 9 runs per model")  # fmt: skip
    figure = confirmation({"models": rows, "verdict": verdict, "held_out": {"text": held_out}}, tmp_path / "c.png")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure).draw()  # laid out as in the saved PNG
    renderer = figure.canvas.get_renderer()
    page = figure.bbox
    axes = figure.axes[0]
    for text in (axes.title, axes.xaxis.label):
        box = text.get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1, text.get_text()
    assert " ".join(axes.title.get_text().split()) == "confirmation: " + verdict  # wrapped, nothing cut


def test_the_history_ticks_are_whole_trial_numbers():
    import optuna

    from budgetnet.plots import optimization_history

    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.7, 0.6, 0.8):
        study.add_trial(optuna.create_trial(value=value, user_attrs={"status": "ok"}))
    ticks = optimization_history(study).axes[0].get_xticks()
    assert all(float(tick).is_integer() for tick in ticks)
