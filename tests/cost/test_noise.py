"""budgetnet.cost.noise: the spread of a measurement's runs and when it is noise.

Golden quartiles are hand arithmetic (Python's "inclusive" method: position (n - 1) * j / 4,
interpolated); the measurements are made up here, nothing is timed.
"""

from __future__ import annotations

import pytest

from budgetnet.cost import latency
from budgetnet.cost.noise import Spread, format_ms


def test_spread_quartiles_and_both_noise_reasons_by_hand():
    # batch 2: per image 1, 2, 3, 4, 100 ms; quartile positions (5 - 1) * j / 4 = 1, 2, 3 -> 2, 3, 4 ms
    timed = latency.Measurement(6.0, 3.0, 2, "cpu", "forward", 5, (2.0, 4.0, 6.0, 8.0, 200.0), (1, 8, 8), "float32")
    spread = timed.spread
    assert (spread.runs, spread.fastest_ms, spread.q1_ms, spread.median_ms, spread.q3_ms, spread.slowest_ms) == (
        5, 1.0, 2.0, 3.0, 4.0, 100.0)  # fmt: skip
    assert spread.relative_width == pytest.approx(2 / 3)  # (4 - 2) / 3 > 0.5
    assert spread.noise == ["the middle half spans 67% of the median",  # 3 - 1 = 2 > 0.5 * 3
                            "the fastest run was 3x faster than the median"]  # fmt: skip
    assert spread.noisy


def test_one_slow_run_is_not_noise():
    # quartiles 1.1, 1.2, 1.3: the middle half spans 0.2 / 1.2 = 17 %; the fastest is 1.2 - 1.0 = 0.2 < 0.6 below
    spread = Spread.of([1.0, 1.1, 1.2, 1.3, 5.0])
    assert not spread.noisy and spread.noise == []
    assert spread.describe() == "1.2 ms/image, median of 5 runs (middle half 1.1-1.3 ms, all 1-5 ms)"


def test_a_whole_measurement_slowed_down_is_noise_when_one_run_ran_fast():
    # a loaded CPU: 0.2 ms once, ~90-100 ms otherwise; q1 = 0.2 + 0.75 * 89.8 = 67.55, q3 = 95 + 0.25 * 5 = 96.25:
    # the middle half spans 28.7 / 92.5 = 31 % (not noisy by itself), but 92.5 / 0.2 = 462.5
    spread = Spread.of([0.2, 90.0, 95.0, 100.0])
    assert spread.median_ms == 92.5 and spread.relative_width == pytest.approx(28.7 / 92.5)
    assert spread.noise == ["the fastest run was 462x faster than the median"]


def test_one_run_shows_no_spread():
    spread = Spread.of([4.0])
    assert not spread.noisy and spread.describe() == "4 ms/image, 1 run (no spread known)"


@pytest.mark.parametrize("value, text", [(0.23149, "0.231"), (0.2, "0.2"), (90.46, "90.5"), (1234.6, "1235"),
                                         (2.0, "2"), (0.0, "0")])  # fmt: skip
def test_format_ms_keeps_three_digits_without_exponents(value, text):
    assert format_ms(value) == text
