"""Proxy fidelity's rank statistics against scipy, and its bad inputs."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import scipy.stats
from hypothesis import given, settings

from budgetnet.errors import SearchError
from budgetnet.studies.proxy import proxy_fidelity, rank_agreement
from budgetnet.training.data import load_data
from search_spaces.base import get_space


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=5, max_size=15, unique_by=lambda p: p[0]))
def test_rank_agreement_matches_scipy(pairs):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(set(b)) < 2:
        return
    result = rank_agreement(a, b, boot=40)
    assert result["kendall"]["value"] == pytest.approx(scipy.stats.kendalltau(a, b).statistic)
    assert result["spearman"]["value"] == pytest.approx(scipy.stats.spearmanr(a, b).statistic)
    for name in ("kendall", "spearman"):
        assert -1 <= result[name]["low"] <= result[name]["high"] <= 1


def test_perfect_and_reversed_rankings_by_hand():
    same = rank_agreement([1, 2, 3, 4, 5], [10, 20, 30, 40, 50], boot=50)
    assert same["kendall"]["value"] == pytest.approx(1.0) and same["kendall"]["low"] == pytest.approx(1.0)
    reverse = rank_agreement([1, 2, 3, 4, 5], [5, 4, 3, 2, 1], boot=50)
    assert reverse["spearman"]["value"] == pytest.approx(-1.0) and reverse["spearman"]["high"] == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "options, message",
    [({"archs": 3}, "archs=3 is invalid; expected a whole number >= 4"),
     ({"short_epochs": 0}, "short_epochs=0 is invalid"), ({"long_epochs": 1.5}, "long_epochs=1.5 is invalid")],
)
def test_bad_options(options, message):
    data = load_data("digits", image_size=8, limit=40)
    space = get_space("small", input_shape=data.input_shape, num_classes=10)
    with pytest.raises(SearchError, match=message):
        proxy_fidelity(space, data, progress=False, **options)
