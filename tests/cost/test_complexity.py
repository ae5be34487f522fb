"""Tests for ``budgetnet.cost.complexity``: the per-layer report and Eqn. (1) (budgets: test_budgets.py).

Golden values are hand arithmetic written here: a conv costs ``n_in * k^2 * n_out * H * W``
multiply-adds and has ``n_in * k^2 * n_out + n_out`` parameters; an fc layer costs
``in * out`` and has ``in * out + out`` parameters.
"""

from __future__ import annotations

import json
import math

import pytest

import budgetnet
from budgetnet import Arch, Budget, Conv, Pool, complexity, conv_macs, parse
from budgetnet.cost.complexity import LayerCost, format_count, layer_cost
from budgetnet.errors import ArchError, BudgetError
from search_spaces.paper import MODELS

A_MACS = 854_954_688  # Eqn. (1) of model A, by hand in tests/test_paper.py


@pytest.fixture(scope="module")
def small():
    # 8x8x1 input: (3,8) keeps 8; 2/2 -> (8 - 2) // 2 + 1 = 4; the 2x2 pair takes pads 0, 1:
    # (4 - 2) + 1 = 3, then (3 + 2 - 2) + 1 = 4; gap -> 16 features; 10 classes.
    return parse("(3,8) 2/2 (2,16)x2 gap", input_shape=(1, 8, 8), num_classes=10)


def test_small_arch_rows_by_hand(small):
    report = complexity(small)
    # fmt: off
    expected = [
        # name, kind, stage, in, kernel, out, stride, pad, size, MACs, params, activations, pool ops, groups
        LayerCost("conv1", "conv", 1, 1, 3, 8, 1, 1, "8x8", 1 * 3**2 * 8 * 8 * 8, 1 * 9 * 8 + 8, 8 * 8 * 8, 0, 1),
        LayerCost("pool1", "pool", 1, 8, 2, 8, 2, 0, "4x4", 0, 0, 8 * 4 * 4, 8 * 4 * 4 * 2**2),
        LayerCost("conv2", "conv", 2, 8, 2, 16, 1, 0, "3x3", 8 * 2**2 * 16 * 3 * 3, 8 * 4 * 16 + 16, 16 * 3 * 3, 0, 1),
        LayerCost("conv3", "conv", 2, 16, 2, 16, 1, 1, "4x4", 16 * 2**2 * 16 * 4 * 4, 16 * 4 * 16 + 16, 16 * 4 * 4, 0, 1),
        LayerCost("spp1", "spp", None, 16, None, 16, None, None, "16", 0, 0, 16, 16 * 4 * 4 * 1),
        LayerCost("fc1", "classifier", None, 16, None, 10, None, None, "10", 16 * 10, 16 * 10 + 10, 10, 0),
    ]
    # fmt: on
    assert list(report.rows) == expected
    assert report.conv_macs == 4608 + 4608 + 16384 == 25_600
    assert report.fc_macs == 160
    assert report.params == 80 + 528 + 1040 + 170 == 1818
    assert report.activations == 512 + 128 + 144 + 256 + 16 + 10 == 1066
    assert report.pool_ops == 512 + 256
    assert report.total_macs == 25_600 + 160
    assert report.conv_flops == 2 * 25_600
    assert report.ratio is None and report.baseline_conv_macs is None


def test_non_square_map_counts_height_times_width():
    # (3,4) on 1x6x10 keeps 6x10: 1 * 9 * 4 * 6 * 10 = 2160 MACs.
    arch = Arch([Conv(3, 4)], input_shape=(1, 6, 10), num_classes=2)
    row = complexity(arch).rows[0]
    assert (row.out_size, row.macs, row.activations) == ("6x10", 2160, 4 * 60)


def test_flatten_and_hidden_fc_rows():
    # (3,4)p0 on 1x5x5 -> 3x3; flat -> 4 * 3 * 3 = 36; fc(7, 0.25); classifier 3.
    arch = parse("(3,4)p0 flat fc(7,0.25)", input_shape=(1, 5, 5), num_classes=3)
    rows = complexity(arch).rows
    assert [(r.name, r.kind, r.in_channels, r.out_size, r.macs, r.params) for r in rows] == [
        ("conv1", "conv", 1, "3x3", 1 * 9 * 4 * 9, 1 * 9 * 4 + 4),
        ("flatten1", "flatten", 4, "36", 0, 0),
        ("fc1", "fc", 36, "7", 36 * 7, 36 * 7 + 7),
        ("fc2", "classifier", 7, "3", 7 * 3, 7 * 3 + 3),
    ]
    assert complexity(arch).fc_macs == 36 * 7 + 7 * 3


def test_model_a_rows_by_hand():
    report = complexity(MODELS["A"])
    convs = [(r.name, r.in_channels, r.kernel_size, r.out_channels, r.stride, r.padding, r.out_size, r.macs, r.params,
              r.activations) for r in report.rows if r.kind == "conv"]  # fmt: skip
    assert convs == [
        ("conv1", 3, 7, 64, 2, 0, "109x109", 3 * 49 * 64 * 109**2, 3 * 49 * 64 + 64, 64 * 109**2),
        ("conv2", 64, 5, 128, 1, 2, "36x36", 64 * 25 * 128 * 36**2, 64 * 25 * 128 + 128, 128 * 36**2),
        ("conv3", 128, 3, 256, 1, 1, "18x18", 128 * 9 * 256 * 18**2, 128 * 9 * 256 + 256, 256 * 18**2),
        ("conv4", 256, 3, 256, 1, 1, "18x18", 256 * 9 * 256 * 18**2, 256 * 9 * 256 + 256, 256 * 18**2),
        ("conv5", 256, 3, 256, 1, 1, "18x18", 256 * 9 * 256 * 18**2, 256 * 9 * 256 + 256, 256 * 18**2),
    ]
    assert report.conv_macs == A_MACS
    # SPP: 256 channels x 50 bins = 12,800 features; fc 4096, fc 4096, classifier 1000.
    assert report.fc_macs == 12_800 * 4096 + 4096 * 4096 + 4096 * 1000 == 73_302_016
    conv_params = 9472 + 204_928 + 295_168 + 2 * 590_080
    fc_params = (12_800 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert report.params == conv_params + fc_params
    # Pool window reads: 3x3 pool on 64x36x36, 2x2 on 128x18x18, SPP reads 256x18x18 per level.
    assert report.pool_ops == 64 * 36**2 * 9 + 128 * 18**2 * 4 + 256 * 18**2 * 4
    assert [r.name for r in report.rows][-4:] == ["spp1", "fc1", "fc2", "fc3"]


def test_layer_cost_of_one_conv():
    info = parse("(3,8)", input_shape=(2, 4, 4)).convs[0]
    cost = layer_cost(info)
    assert cost.macs == 2 * 3**2 * 8 * 4**2
    assert cost.params == 2 * 9 * 8 + 8


def test_conv_macs_equals_report_total():
    for name in ("A", "J'"):
        assert conv_macs(MODELS[name]) == complexity(MODELS[name]).conv_macs


def test_ratio_to_a_baseline():
    report = complexity(MODELS["B"], baseline=MODELS["A"])
    assert report.baseline_conv_macs == A_MACS
    assert report.ratio == pytest.approx(821_400_256 / A_MACS)
    assert complexity(MODELS["A"], baseline=MODELS["A"]).ratio == 1.0


def test_table_is_readable_and_has_the_totals():
    text = complexity(MODELS["B"], baseline=MODELS["A"]).table()
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "stage", "in", "kernel", "out", "stride", "pad", "size", "MACs", "params",
                                "acts"]  # fmt: skip
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split()[:8] == ["conv1", "1", "3", "7x7", "64", "2", "0", "109x109"]
    assert "821,400,256" in text  # Eqn. (1) of B
    assert "73,302,016" in text  # fc MACs
    assert "ratio to baseline:   0.9608" in text
    assert "FLOPs = 2 x MACs" in text
    assert str(complexity(MODELS["B"])) == complexity(MODELS["B"]).table()
    assert "ratio" not in complexity(MODELS["B"]).table()


def test_to_dict_is_json_serialisable():
    data = complexity(MODELS["J'"], baseline=MODELS["A"]).to_dict()
    again = json.loads(json.dumps(data))
    assert again["conv_macs"] == 827_167_424
    assert again["conv_flops"] == 2 * 827_167_424
    assert again["baseline_conv_macs"] == A_MACS
    assert again["ratio"] == pytest.approx(827_167_424 / A_MACS)
    assert again["notation"] == str(MODELS["J'"])
    assert len(again["layers"]) == len(MODELS["J'"].shapes) + 1
    assert again["layers"][0]["out_size"] == "109x109"


@pytest.mark.parametrize(
    "value, text", [(0, "0"), (999, "999"), (1500, "1.5K"), (854_954_688, "855.0M"), (1.2e9, "1.2G"), (2.5e12, "2.5T")]
)
def test_format_count(value, text):
    assert format_count(value) == text


@pytest.mark.parametrize("value", ["A", "(3,8)", None])
def test_complexity_of_something_else_is_an_arch_error(value):
    with pytest.raises(ArchError, match=r"complexity: arch=.* is not a budgetnet\.Arch"):
        complexity(value)
    with pytest.raises(ArchError, match=r"complexity: baseline='x' is not a budgetnet\.Arch"):
        complexity(MODELS["A"], baseline="x")
