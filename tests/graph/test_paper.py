"""Golden tests for ``search_spaces.paper``: Tables 1-2 of He & Sun (CVPR 2015).

Every expected value here comes from the paper's text or from hand arithmetic written in
this file, never from budgetnet itself. Sizes use the floor rule
``out = (m + 2p - k) // stride + 1`` and the padding rules of Sec. 5 (``docs/notation.md``).
"""

from __future__ import annotations

import pytest

import budgetnet
from budgetnet.graph.arch import FC, SPP
from search_spaces.paper import MODELS, NOTATION, PAPER_COMPLEXITY, PAPER_ERROR

NAMES = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "B'", "D'", "E'", "J'"]

# The "d" column of Tables 1-2 (number of conv layers).
DEPTH = {"A": 5, "B": 8, "C": 6, "D": 9, "E": 11, "F": 8, "G": 11, "H": 8, "I": 11, "J": 11,
         "B'": 8, "D'": 9, "E'": 11, "J'": 11}  # fmt: skip

# The "comp." column of Tables 1-2, typed from the paper.
COMP = {"A": 1.0, "B": 0.96, "C": 1.02, "D": 0.98, "E": 0.99, "F": 1.0, "G": 1.0, "H": 0.97,
        "I": 0.93, "J": 0.98, "B'": 0.96, "D'": 0.98, "E'": 0.99, "J'": 0.98}  # fmt: skip

# Output side of every conv and pool layer, in order, derived by hand:
#   stem (7,64)/2, pad 0:            (224 + 0 - 7) // 2 + 1 = 108 + 1 = 109
#   pool 3/3 on 109:                 (109 - 3) // 3 + 1 = 35 + 1 = 36
#   pool 3/1 on 109:                 (109 - 3) // 1 + 1 = 107
#   (5,n) pad 2 keeps m:             (m + 4 - 5) // 1 + 1 = m
#   (3,n) pad 1 keeps m:             (m + 2 - 3) // 1 + 1 = m
#   (2,n) pad 0 shrinks:             (m - 2) // 1 + 1 = m - 1
#   (2,n) pad 1 restores:            (m - 1 + 2 - 2) // 1 + 1 = m
#   pool 2/2 on 36:                  (36 - 2) // 2 + 1 = 17 + 1 = 18
#   pool 2/1 on 36 / 35:             36 - 2 + 1 = 35 / 35 - 2 + 1 = 34
#   pool 3/3 on 18:                  (18 - 3) // 3 + 1 = 5 + 1 = 6
#   pool 3/1 on 18:                  18 - 3 + 1 = 16
#   B'  (5,128)/3 pad 2 on 107:      (107 + 4 - 5) // 3 + 1 = 35 + 1 = 36
#   D'  (3,128)/3 pad 1 on 107:      (107 + 2 - 3) // 3 + 1 = 35 + 1 = 36
#   E', J' (2,128)/3 pad 0 on 107:   (107 - 2) // 3 + 1 = 35 + 1 = 36, already 36, so the
#                                    three 2x2 after it take pads 0, 1, 0: 35, 36, 35
#   (2,256)/2 pad 0 on 35 / 34:      (35 - 2) // 2 + 1 = 17 / (34 - 2) // 2 + 1 = 17; an odd
#                                    number of 2x2 follow (5 or 3), so the stage starts on 17
#                                    and ends on 18 (pad 1 would give (35 + 2 - 2) // 2 + 1 = 18)
#   J' (2,2304)/3 pad 0 on 16:       (16 - 2) // 3 + 1 = 4 + 1 = 5, then (2,256) pad 1: 6
STEM = [109, 36]  # (7,64)/2 3/3
STEM_DELAYED = [109, 107]  # (7,64)/2 3/1
SIDES = {
    "A": STEM + [36] + [18] + [18] * 3,
    "B": STEM + [36] + [18] + [17, 18] * 3,
    "C": STEM + [36] * 2 + [18] + [18] * 3,
    "D": STEM + [36] * 2 + [18] + [17, 18] * 3,
    "E": STEM + [35, 36] * 2 + [18] + [17, 18] * 3,
    "F": STEM + [36] + [18] + [18] * 6,
    "G": STEM + [36] + [18] + [18] * 9,
    "H": STEM + [36] * 4 + [18] + [18] * 3,
    "I": STEM + [36] * 4 + [18] + [17, 18] * 3,
    "J": STEM + [35, 36] * 2 + [18] + [17, 18] * 2 + [6] + [5, 6],
    "B'": STEM_DELAYED + [36] + [35] + [17, 18] * 3,
    "D'": STEM_DELAYED + [36, 36] + [35] + [17, 18] * 3,
    "E'": STEM_DELAYED + [36, 35, 36, 35] + [34] + [17, 18] * 3,
    "J'": STEM_DELAYED + [36, 35, 36, 35] + [34] + [17, 18] * 2 + [16] + [5, 6],
}

# Padding of every conv, by Sec. 5: 7x7 -> 0, 5x5 -> 2, 3x3 -> 1, consecutive 2x2 -> 0, 1, ...;
# strided convs as derived above.
PADS = {
    "A": [0, 2, 1, 1, 1],
    "B": [0, 2] + [0, 1] * 3,
    "C": [0, 1, 1, 1, 1, 1],
    "D": [0, 1, 1] + [0, 1] * 3,
    "E": [0] + [0, 1] * 2 + [0, 1] * 3,
    "F": [0, 2] + [1] * 6,
    "G": [0, 2] + [1] * 9,
    "H": [0, 1, 1, 1, 1, 1, 1, 1],
    "I": [0, 1, 1, 1, 1] + [0, 1] * 3,
    "J": [0] + [0, 1] * 2 + [0, 1] * 2 + [0, 1],
    "B'": [0, 2] + [0, 1] * 3,
    "D'": [0, 1, 1] + [0, 1] * 3,
    "E'": [0, 0, 0, 1, 0] + [0, 1] * 3,
    "J'": [0, 0, 0, 1, 0] + [0, 1] * 2 + [0, 1],
}

# Stage -> the paper's dominant map size (Table 1's caption and Sec. 5).
TARGET = {2: 36, 3: 18, 4: 6}


def test_the_zoo_holds_the_fourteen_rows_of_tables_1_and_2():
    assert list(MODELS) == NAMES
    assert list(NOTATION) == NAMES
    assert PAPER_COMPLEXITY == COMP
    assert PAPER_ERROR["A"] == (37.4, 15.9) and PAPER_ERROR["J'"] == (32.2, 12.0)
    assert set(PAPER_ERROR) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_input_head_and_depth_follow_the_paper(name):
    arch = MODELS[name]
    assert arch.input_shape == (3, 224, 224)
    assert arch.num_classes == 1000
    assert arch.depth == DEPTH[name]
    # Sec. 5: SPP {6x6, 3x3, 2x2, 1x1} = 50 bins, then fc 4096, fc 4096 (50 % dropout).
    assert arch.head == (SPP((6, 3, 2, 1)), FC(4096, 0.5), FC(4096, 0.5))
    # Sec. 3.4: "we always keep the number of filters in the last convolutional layer as 256".
    assert arch.convs[-1].layer.out_channels == 256
    assert arch.shapes[-3].out_shape == (256 * 50,)


@pytest.mark.parametrize("name", NAMES)
def test_every_layer_output_size(name):
    arch = MODELS[name]
    sides = [info.out_shape[1] for info in arch.features]
    assert sides == SIDES[name]
    assert all(info.out_shape[1] == info.out_shape[2] for info in arch.features)


@pytest.mark.parametrize("name", NAMES)
def test_conv_paddings(name):
    assert [info.layer.padding for info in MODELS[name].convs] == PADS[name]


@pytest.mark.parametrize("name", NAMES)
def test_stages_are_dominantly_36_18_6(name):
    # Stage 2 is dominantly 36x36, stage 3 18x18, stage 4 (if any) 6x6; a 2x2 conv may sit
    # one pixel below (footnote 2), never above.
    stages = MODELS[name].stages
    assert len(stages) == (4 if name in ("J", "J'") else 3)
    for number, stage in enumerate(stages[1:], start=2):
        sides = [info.out_shape[1] for info in stage]
        assert max(sides) == TARGET[number]
        assert set(sides) <= {TARGET[number] - 1, TARGET[number]}


@pytest.mark.parametrize("name", NAMES)
def test_map_entering_the_spp_is_18_or_6(name):
    side = 6 if name in ("J", "J'") else 18
    assert MODELS[name].feature_shape == (256, side, side)


@pytest.mark.parametrize("name", ["J", "J'"])
def test_footnote_2_sizes(name):
    # "the involved feature maps are 17x17 and 18x18 before replacement, and 5x5 and 6x6 after".
    stage3, stage4 = MODELS[name].stages[2:]
    assert [info.out_shape[1] for info in stage3] == [17, 18, 17, 18]
    assert [info.out_shape[1] for info in stage4] == [5, 6]
    assert stage4[0].layer.out_channels == 2304


def test_e_prime_strided_2x2_gives_36_then_pads_0_1_0():
    stage2 = MODELS["E'"].stages[1]
    assert stage2[0].layer.stride == 3 and stage2[0].in_shape[1:] == (107, 107)
    assert [(info.layer.padding, info.out_shape[1]) for info in stage2] == [(0, 36), (0, 35), (1, 36), (0, 35)]


# Rows whose "comp." reproduces to two decimals under the rules of Sec. 5.
REPRODUCED = ["A", "B", "C", "E", "F", "G", "H", "I", "B'", "E'"]


@pytest.mark.parametrize("name", REPRODUCED)
def test_comp_column_to_two_decimals(name):
    ratio = budgetnet.complexity(MODELS[name], baseline=MODELS["A"]).ratio
    assert round(ratio, 2) == COMP[name]


@pytest.mark.parametrize("name, ours", [("D", 0.99), ("D'", 0.99), ("J", 0.97), ("J'", 0.97)])
def test_comp_column_within_tolerance_for_d_and_j(name, ours):
    # DESIGN.md: under the rules that reproduce the other 10 rows, D and D' come out 0.99 and
    # J and J' 0.97 where the paper prints 0.98 -- a slip in the paper, not in the rules, so
    # paddings are not tuned to hit them and the test allows 0.015 (J' is 0.9675).
    ratio = budgetnet.complexity(MODELS[name], baseline=MODELS["A"]).ratio
    assert abs(ratio - COMP[name]) <= 0.015
    assert round(ratio, 2) == ours


# Eqn. (1) of model A by hand: n_in * s^2 * n_out * m^2 for each conv.
A_CONV_MACS = [
    3 * 7**2 * 64 * 109**2,  # conv1 (7,64)/2:   111,776,448
    64 * 5**2 * 128 * 36**2,  # conv2 (5,128):   265,420,800
    128 * 3**2 * 256 * 18**2,  # conv3 (3,256):   95,551,488
    256 * 3**2 * 256 * 18**2,  # conv4 (3,256):  191,102,976
    256 * 3**2 * 256 * 18**2,  # conv5 (3,256):  191,102,976
]
A_TOTAL = 854_954_688


def test_model_a_eqn_1_by_hand():
    report = budgetnet.complexity(MODELS["A"])
    assert sum(A_CONV_MACS) == A_TOTAL
    assert [row.macs for row in report.rows if row.kind == "conv"] == A_CONV_MACS
    assert report.conv_macs == A_TOTAL
    assert budgetnet.conv_macs(MODELS["A"]) == A_TOTAL


def test_f_costs_exactly_what_a_costs_eqn_6():
    # Eqn. (6): 128*3^2*256 + (256*3^2*256)*2 = 128*3^2*160 + (160*3^2*160)*4 + 160*3^2*256,
    # all on 18x18; stages 1-2 are A's.
    stage3 = 128 * 9 * 160 * 18**2 + 4 * (160 * 9 * 160 * 18**2) + 160 * 9 * 256 * 18**2
    assert stage3 == sum(A_CONV_MACS[2:]) == 477_757_440
    expected = A_CONV_MACS[0] + A_CONV_MACS[1] + stage3
    assert budgetnet.conv_macs(MODELS["F"]) == expected == A_TOTAL


def test_g_costs_exactly_what_a_costs_eqn_7():
    # Eqn. (7): 128*3^2*256 + (256*3^2*256)*2 = (128*3^2*128)*8 + 128*3^2*256, on 18x18.
    stage3 = 8 * (128 * 9 * 128 * 18**2) + 128 * 9 * 256 * 18**2
    assert stage3 == sum(A_CONV_MACS[2:])
    expected = A_CONV_MACS[0] + A_CONV_MACS[1] + stage3
    assert budgetnet.conv_macs(MODELS["G"]) == expected == A_TOTAL


def test_j_prime_eqn_1_by_hand():
    macs = [
        3 * 7**2 * 64 * 109**2,  # (7,64)/2
        64 * 2**2 * 128 * 36**2,  # (2,128)/3
        128 * 2**2 * 128 * 35**2,  # (2,128) pad 0
        128 * 2**2 * 128 * 36**2,  # (2,128) pad 1
        128 * 2**2 * 128 * 35**2,  # (2,128) pad 0
        128 * 2**2 * 256 * 17**2,  # (2,256)/2
        256 * 2**2 * 256 * 18**2,
        256 * 2**2 * 256 * 17**2,
        256 * 2**2 * 256 * 18**2,
        256 * 2**2 * 2304 * 5**2,  # (2,2304)/3
        2304 * 2**2 * 256 * 6**2,  # (2,256) pad 1
    ]
    report = budgetnet.complexity(MODELS["J'"])
    assert [row.macs for row in report.rows if row.kind == "conv"] == macs
    assert report.conv_macs == sum(macs) == 827_167_424


@pytest.mark.parametrize("delayed, plain", [("B'", "B"), ("D'", "D")])
def test_delayed_subsampling_keeps_the_cost(delayed, plain):
    # Sec. 3.5: moving the pool's stride onto the next conv "does not change the complexity".
    assert budgetnet.conv_macs(MODELS[delayed]) == budgetnet.conv_macs(MODELS[plain])
