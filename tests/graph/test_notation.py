"""Tests for ``budgetnet.graph.notation``: the grammar, printing, round trips and bad text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from budgetnet import FC, SPP, Arch, Conv, Flatten, Pool, parse
from budgetnet.graph.arch import paper_head
from budgetnet.graph.layers import ChannelConv
from budgetnet.errors import NOTATION_EXCERPT, ArchError, BudgetNetError, NotationError, ShapeError
from budgetnet.graph.notation import MAX_REPEAT
from budgetnet.graph.printing import format_arch, format_layer
from search_spaces.paper import MODELS, NOTATION

SMALL = (1, 16, 16)
CHEAP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def first(text: str, input_shape=SMALL):
    return parse(text, input_shape=input_shape).layers[0]


# -- the grammar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, layer",
    [
        ("(3,256)", Conv(3, 256)),
        ("(7,64)/2", Conv(7, 64, stride=2)),
        ("(2,8)p1", Conv(2, 8, padding=1)),
        ("(3,8)/2p0", Conv(3, 8, stride=2, padding=0)),
        ("( 3 , 8 )", Conv(3, 8)),
        ("3/3", Pool(3, 3)),
        ("3/1", Pool(3, 1)),
        ("2", Pool(2, 2)),
        ("max2/2", Pool(2, 2)),
        ("avg3/2p1", Pool(3, 2, 1, "avg")),
        ("spp", SPP((6, 3, 2, 1))),
        ("spp(4,2,1)", SPP((4, 2, 1))),
        ("maxspp( 2 , 1 )", SPP((2, 1))),
        ("avgspp", SPP((6, 3, 2, 1), "avg")),
        ("gap", SPP((1,), "avg")),
        ("flat", Flatten()),
    ],
)
def test_one_layer_of_each_kind(text, layer):
    assert first(text) == layer


@pytest.mark.parametrize(
    "text, layers",
    [
        ("(3,8) fc4096", [Conv(3, 8), Flatten(), FC(4096)]),
        ("(3,8) gap fc(512,0.2)", [Conv(3, 8), SPP((1,), "avg"), FC(512, 0.2)]),
        ("(3,8) flat fc(512)", [Conv(3, 8), Flatten(), FC(512, 0.5)]),
        ("(3,8) spp fc10x2", [Conv(3, 8), SPP(), FC(10), FC(10)]),
    ],
)
def test_heads(text, layers):
    assert list(parse(text, input_shape=SMALL).layers) == layers


def test_repetition_and_separators():
    expected = [Conv(3, 8), Conv(3, 8), Conv(3, 8), Pool(2), Conv(2, 16)]
    for text in ("(3,8)x3 2/2 (2,16)", "(3,8)×3 2/2 (2,16)", "(3,8)x2+(3,8) + 2/2+(2,16)", "(3,8)x3\n2/2\t(2,16)",
                 " (3,8)x1 (3,8)x2 2/2x1 (2,16) "):  # fmt: skip
        assert list(parse(text, input_shape=SMALL).layers[:5]) == expected, text
    assert list(parse("2/1x2 (3,8)", input_shape=SMALL).layers[:2]) == [Pool(2, 1), Pool(2, 1)]


def test_no_head_adds_the_paper_head_from_64_px():
    for shape in ((3, 224, 224), (3, 64, 64), (1, 64, 100)):
        arch = parse("(3,8)", input_shape=shape)
        assert arch.head == paper_head() == (SPP((6, 3, 2, 1)), FC(4096), FC(4096)), shape
    assert parse("(3,8)").input_shape == (3, 224, 224)


def test_no_head_adds_a_small_spp_below_64_px():
    for shape in (SMALL, (3, 63, 63), (1, 200, 63), (1, 8, 8)):
        assert parse("(3,8)", input_shape=shape).head == (SPP((2, 1)),), shape
    arch = parse("(3,8)", input_shape=SMALL)
    assert (arch.input_shape, arch.num_classes) == (SMALL, 1000)
    assert parse("(3,8)", input_shape=SMALL, num_classes=10).num_classes == 10


@pytest.mark.parametrize(
    "text, printed",
    [
        ("(3,8)", "(3,8) spp(2,1)"),  # the default head below 64 px is printed
        ("(3,8) spp fc4096 fc4096", "(3,8) spp fc4096x2"),  # not the default at 16 px
        ("(3,8) spp fc4096", "(3,8) spp fc4096"),
        ("(3,8) gap", "(3,8) gap"),
        ("(3,8) avgspp(1)", "(3,8) gap"),
        ("(3,8) fc10", "(3,8) flat fc10"),
        ("(3,8) fc(10,0.5)", "(3,8) flat fc10"),
        ("(3,8) flat fc(10,0) fc(10,0.25)", "(3,8) flat fc(10,0) fc(10,0.25)"),
        ("(3,8) flat fc(10,0.123456789)", "(3,8) flat fc(10,0.123456789)"),
        ("(3,8)+(3,8)+(3,16) max2/2 (3,32) gap", "(3,8)x2 + (3,16) 2/2 (3,32) gap"),
        ("(3,8) avg3/1p1 2 (3,8)p0 gap", "(3,8) avg3/1p1 2/2 (3,8)p0 gap"),
        ("spp fc4096 fc4096", "spp fc4096x2"),  # no feature layer: the head is printed
        ("flat", "flat"),
    ],
)
def test_printing(text, printed):
    arch = parse(text, input_shape=SMALL)
    assert str(arch) == arch.notation() == format_arch(arch) == printed
    assert parse(printed, input_shape=SMALL) == arch


@pytest.mark.parametrize("text, printed", [("(3,8)", "(3,8)"), ("(3,8) spp fc4096 fc4096", "(3,8)"),
                                           ("(3,8) spp(2,1)", "(3,8) spp(2,1)")])  # fmt: skip
def test_printing_leaves_out_the_paper_head_at_224_px(text, printed):
    arch = parse(text)
    assert str(arch) == printed
    assert parse(printed) == arch


@pytest.mark.parametrize(
    "layer, text",
    [
        (Conv(2, 256, stride=2), "(2,256)/2"),
        (Conv(3, 8, padding=0), "(3,8)p0"),
        (Pool(3), "3/3"),
        (Pool(2, 1, 1, "avg"), "avg2/1p1"),
        (SPP((6, 3, 2, 1), "avg"), "avgspp"),
        (SPP((2, 1)), "spp(2,1)"),
        (SPP((1,), "avg"), "gap"),
        (Flatten(), "flat"),
        (FC(4096), "fc4096"),
        (FC(10, 0.0), "fc(10,0)"),
        (FC(10, 1e-05), "fc(10,1e-05)"),
    ],
)
def test_format_layer(layer, text):
    assert format_layer(layer) == text


@pytest.mark.parametrize("name", list(NOTATION))
def test_printing_the_paper_models_gives_the_tables_notation(name):
    assert str(MODELS[name]) == NOTATION[name]
    assert parse(str(MODELS[name])) == MODELS[name]
    assert repr(MODELS[name]) == f"Arch('{NOTATION[name]}', input_shape=(3, 224, 224), num_classes=1000)"


# -- random architectures --------------------------------------------------------------------


@st.composite
def pools(draw):
    kernel = draw(st.integers(1, 3))
    return Pool(kernel, draw(st.none() | st.integers(1, 3)), draw(st.integers(0, kernel // 2)),
                draw(st.sampled_from(["max", "avg"])))  # fmt: skip


convs = st.builds(Conv, st.integers(1, 5), st.integers(1, 300), st.integers(1, 3), st.none() | st.integers(0, 3))
chconvs = st.builds(ChannelConv, st.sampled_from([1, 3, 5]), st.booleans())
dropouts = st.just(0.5) | st.sampled_from([0.0, 0.25]) | st.floats(0.0, 1.0, exclude_max=True)
fcs = st.lists(st.builds(FC, st.integers(1, 5000), dropouts), max_size=3)
reducers = st.sampled_from([Flatten(), SPP((1,), "avg")]) | st.builds(
    SPP, st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple), st.sampled_from(["max", "avg"])
)
heads = (
    st.just([])
    | st.just(list(paper_head()))
    | fcs
    | st.builds(lambda reducer, hidden: [reducer, *hidden], reducers, fcs)
)


@st.composite
def archs(draw):
    features = draw(st.lists(convs | pools() | chconvs, max_size=8))
    input_shape = (draw(st.integers(1, 4)), draw(st.integers(6, 40)), draw(st.integers(6, 40)))
    classifier = draw(st.booleans())  # without one (nofc), the head's width is the class count
    try:
        arch = Arch(features + draw(heads), input_shape, draw(st.integers(1, 50)) if classifier else None, classifier)
    except ShapeError:
        assume(False)
    return arch


@CHEAP
@given(archs())
def test_random_archs_round_trip_print_then_parse(arch):
    text = str(arch)
    again = parse(text, input_shape=arch.input_shape, num_classes=arch.num_classes)
    assert again == arch
    assert again.layers == arch.layers
    assert str(again) == text
    assert Arch.from_json(arch.to_json()) == arch


# -- fuzzing: nothing but the three errors may escape ----------------------------------------

ALPHABET = "()0123456789,/px×+ -.\t\nspcfgatvmlxeno"


def parse_or_refuse(text: str) -> None:
    try:
        result = parse(text)
    except (NotationError, ShapeError, ArchError) as error:
        assert str(error)
    else:
        assert isinstance(result, Arch)


@CHEAP
@given(st.text(max_size=60))
def test_fuzz_arbitrary_text(text):
    parse_or_refuse(text)


@CHEAP
@given(st.text(alphabet=ALPHABET, max_size=60))
def test_fuzz_notation_alphabet(text):
    parse_or_refuse(text)


@st.composite
def mutated_notation(draw):
    text = draw(st.sampled_from(list(NOTATION.values())) | archs().map(str))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.sampled_from(ALPHABET))
        if edit == "insert":
            text = text[:position] + char + text[position:]
        elif edit == "delete":
            text = text[:position] + text[position + 1 :]
        else:
            text = text[:position] + char + text[position + 1 :]
    return text


@CHEAP
@given(mutated_notation())
def test_fuzz_mutated_notation(text):
    parse_or_refuse(text)


# -- bad text --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, column, problem",
    [
        ("(3,8) (3,)", 7, "malformed conv; expected (KERNEL,FILTERS) like (3,256)"),
        ("(3,8) 2/2 lstm", 11, "unknown layer 'lstm'; expected a conv (3,256), a pool 2/2, spp, gap, flat, fc4096, a norm"),
        ("(3,8)\n2/2 foo", 11, "unknown layer 'foo'"),
        ("×3", 1, "unknown layer '×3'"),
        ("(3,8)x", 6, "unexpected 'x' after a layer"),
        ("(3,8)/2q", 8, "unexpected 'q' after a layer"),
        ("flatter", 5, "unexpected 't' after a layer"),
        ("(3,8)(3,8)", 6, "unexpected '(' after a layer"),
        ("spp(6,a)", 1, "malformed spp levels; expected spp(6,3,2,1)"),
        ("spp()", 1, "malformed spp levels"),
        ("fc(", 1, "malformed fc; expected fc4096 or fc(4096,0.5)"),
        ("(3,8) fc(10,.)", 13, "dropout '.' is not a number"),
        ("", 1, "empty notation; expected at least one layer such as (3,64)"),
        ("  + \n", 1, "empty notation"),
        ("(3,8)x0", 6, "(3,8): repeat count=0 is invalid; expected an integer from 1 to 1000"),
        ("(3,8) (3,8)x-2", 12, "repeat count=-2 is invalid"),
        (f"2/2x{MAX_REPEAT + 1}", 4, f"2/2: repeat count={MAX_REPEAT + 1} is invalid"),
        pytest.param("(3,8)x" + "9" * 5000, 6, "a number has too many digits; expected at most 4300", id="digits"),
        # Only ASCII digits are numbers: int() would read these full-width and Arabic-Indic ones.
        ("(3,\uff18)", 1, "malformed conv; expected (KERNEL,FILTERS) like (3,256)"),
        ("(3,8) \uff12/2", 7, "unknown layer '\uff12/2'"),
        ("(3,8) fc\u0661\u0660", 7, "malformed fc; expected fc4096 or fc(4096,0.5)"),
        ("(3,8) spp(\uff16)", 7, "malformed spp levels; expected spp(6,3,2,1)"),
        ("(3,8)x\uff13", 6, "unexpected 'x' after a layer"),
        # A '+' joins two layers of a stage: one with nothing after it is refused, at the '+'.
        ("(3,8) +", 7, "a trailing '+' joins nothing; expected a layer after it"),
        ("(3,8)+", 6, "a trailing '+' joins nothing"),
        ("(3,8) gap + \n", 11, "a trailing '+' joins nothing"),
    ],
)
def test_syntax_errors_report_the_column(text, column, problem):
    with pytest.raises(NotationError) as error:
        parse(text, input_shape=SMALL)
    lines = str(error.value).splitlines()
    assert error.value.column == column
    assert lines[0].startswith(f"notation column {column}: ")
    assert problem in lines[0]
    if "\n" not in text and len(text) <= NOTATION_EXCERPT:
        assert lines[1:] == ["  " + text, "  " + " " * (column - 1) + "^"]
    elif "\n" not in text:  # a long text is shown around the column
        shown, pointer = lines[1][2:], lines[2][2:]
        assert len(shown) <= NOTATION_EXCERPT + 6 and pointer.endswith("^")
        assert text[column - 1 :].startswith(shown[len(pointer) - 1 :].removesuffix("..."))


def test_a_non_string_is_a_notation_error():
    with pytest.raises(NotationError, match="notation column 1: expected a notation string, got int"):
        parse(123)
    with pytest.raises(NotationError, match="got NoneType"):
        parse(None)


@pytest.mark.parametrize(
    "text, column, field, value",
    [
        ("(0,8)", 1, "kernel_size", 0),
        ("(-3,8)", 1, "kernel_size", -3),
        ("(3,0)", 1, "out_channels", 0),
        ("(3,-8)", 1, "out_channels", -8),
        ("(3,8) + + (3,8)/0", 11, "stride", 0),
        ("(3,8)/-1", 1, "stride", -1),
        ("(3,8)p-1", 1, "padding", -1),
        ("0/2", 1, "kernel_size", 0),
        ("-2/2", 1, "kernel_size", -2),
        ("2/0", 1, "stride", 0),
        ("3/1p2", 1, "padding", 2),
        ("(3,8) fc0", 7, "out_features", 0),
        ("(3,8) fc-5", 7, "out_features", -5),
        ("(3,8) fc(0)", 7, "out_features", 0),
        ("(3,8) fc(10,1.5)", 7, "dropout", 1.5),
        ("(3,8) spp(0)", 7, "levels", 0),
        ("(3,8) spp(3,-1)", 7, "levels", -1),
        ("(3,8)x0", 6, "repeat count", 0),
        ("(3,8)x-1", 6, "repeat count", -1),
    ],
)
def test_zero_and_negative_values(text, column, field, value):
    with pytest.raises(NotationError) as error:
        parse(text, input_shape=SMALL)
    assert (error.value.column, error.value.field, error.value.value) == (column, field, value)
    assert f"{field}={value!r} is invalid; expected" in str(error.value)


def test_valid_text_that_is_not_a_valid_arch():
    with pytest.raises(ShapeError, match=r"conv1 \(\(9,8\)p0\): kernel_size=9 is larger than the padded map"):
        parse("(9,8)p0", input_shape=(1, 4, 4))
    with pytest.raises(ArchError, match=r"layer 3 \(conv\) comes after the map was pooled"):
        parse("(3,8) gap (3,8)", input_shape=SMALL)
    with pytest.raises(ArchError, match="only one spp/gap/flat is allowed"):
        parse("(3,8) spp gap", input_shape=SMALL)
    with pytest.raises(ArchError, match="input_shape=.3, 224. is invalid"):
        parse("(3,8)", input_shape=(3, 224))
    assert issubclass(NotationError, BudgetNetError)


def test_huge_values_do_not_hang():
    # A strided conv picks its padding among a handful of candidates, not range(kernel).
    # Odd kernel: pad (k - 1) // 2 = 49999999999 gives (8 + 99999999998 - 99999999999) // 2 + 1 = 4.
    arch = parse("(99999999999,3)/2", input_shape=(1, 8, 8))
    assert (arch.convs[0].layer.padding, arch.convs[0].out_shape[1:]) == (49_999_999_999, (4, 4))
    assert parse(f"(3,8)x{MAX_REPEAT}", input_shape=SMALL).depth == MAX_REPEAT


@pytest.mark.parametrize(
    ("text", "shape"),
    [("(3,8)bn@none (3,8)bn@none gap", SMALL), ("res[(3,8)bn]@none res[(3,8)bn]@none gap", (8, 8, 8)),
     ("(3,8)@relu6 (3,8)@relu6 (3,8)@relu6 gap", SMALL)],
)  # fmt: skip
def test_repeat_after_an_activation_round_trips(text, shape):
    # Printing merges the run into "@nonex2": the activation ends where the repeat starts.
    arch = parse(text, input_shape=shape)
    assert "x2" in str(arch) or "x3" in str(arch)
    assert parse(str(arch), input_shape=shape) == arch
    with pytest.raises(NotationError, match="column 6: unknown activation '@nonexx'; expected @ and one of relu"):
        parse("(3,8)@nonexx", input_shape=SMALL)
