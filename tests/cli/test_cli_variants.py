"""Tests for ``budgetnet variants`` (budgetnet/cli/variants.py)."""

import json
import subprocess
import sys

import pytest

from budgetnet.cli import COMMANDS, main, variants
from search_spaces.paper import NOTATION

B_MACS = 821_400_256  # Table 1's B, by budgetnet.cost.complexity (0.96 of A)


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_registered():
    assert variants in COMMANDS and variants.NAME == "variants"


def test_table_of_delayed_subsampling_variants(capsys):
    status, out, err = run(capsys, "variants", "B", "--rules", "delay_pool", "--steps", "1")
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == NOTATION["B"] + "   (input 3x224x224, 1000 classes)"
    assert lines[2].split() == ["name", "notation", "d", "MACs", "ratio", "steps", "path"]
    rows = {line.split()[0]: line for line in lines[4:8]}
    assert set(rows) == {"B", "B'", "v2", "v3"}
    assert rows["B"].split()[-5:] == ["8", "821.4M", "1.000x", "0", "(baseline)"]
    assert NOTATION["B'"].replace(" + ", " + ") in rows["B'"] and rows["B'"].endswith("delay_pool")
    assert lines[-1].startswith("3 variants within 1 step; 3 sites checked (0 refused by a rule")


def test_two_steps_from_a_reach_figs_1_and_2(capsys):
    status, out, _ = run(capsys, "variants", "A", "--steps", "2")
    assert status == 0
    names = {line.split()[0] for line in out.splitlines()[4:] if line.strip()}
    assert {"A", "B", "C", "D", "E", "F", "G", "H", "B'"} <= names
    d_row = next(line for line in out.splitlines() if line.startswith("D "))
    assert d_row.endswith("depth_filter > depth_filter")


def test_json_output(capsys):
    status, out, _ = run(capsys, "variants", "A", "--steps", "1", "--rules", "depth_filter", "--json")
    assert status == 0
    data = json.loads(out)
    assert {row["label"] for row in data["nodes"]} == {"A", "B", "C", "v1"}
    b = next(row for row in data["nodes"] if row["name"] == "B")
    assert b["macs"] == B_MACS and b["path"] == ["depth_filter"] and b["arch"]["notation"] == NOTATION["B"]
    assert {edge["rule"] for edge in data["edges"]} == {"depth_filter"}
    assert data["edges"][0]["site"]["rule"] == "depth_filter"
    assert data["settings"]["budget"]["tolerance"] == 0.05
    assert data["summary"].startswith("3 variants within 1 step")


def test_budget_tolerance_depth_and_limit(capsys):
    status, out, _ = run(capsys, "variants", "A", "--steps", "1", "--budget", "0.96x", "--tolerance", "0.005", "--json")
    assert status == 0
    assert {row["label"] for row in json.loads(out)["nodes"]} == {"A", "B", "v1"}  # B and (5,32)x2 + (5,128), also 0.961x
    status, out, _ = run(capsys, "variants", "A", "--steps", "2", "--max-depth", "5", "--json")
    assert max(row["depth"] for row in json.loads(out)["nodes"]) == 5
    status, out, _ = run(capsys, "variants", "A", "--steps", "3", "--limit", "4")
    assert status == 0 and out.rstrip().endswith("cut short by max_variants=4 from step 1 of 3 on "
                                                 "(each step keeps at most an equal share of the limit left), with 4 variants found")
    assert "4 variants within 3 steps" in out  # ceil(4/3) = 2 at step 1, then 1 and 1


def test_small_network_from_notation(capsys):
    status, out, _ = run(
        capsys, "variants", "(3,16) 2/2 (3,32)x2 gap", "--input", "3x32x32", "--classes", "10", "--steps", "1"
    )
    assert status == 0
    assert out.splitlines()[0] == "(3,16) 2/2 (3,32)x2 gap   (input 3x32x32, 10 classes)"
    assert "(3,16) 2/2 (2,32)x4 gap" in out  # Eqn. 3 on stage 2


def test_plot(capsys, tmp_path):
    path = tmp_path / "plots" / "lineage.png"
    status, out, _ = run(capsys, "variants", "B", "--rules", "delay_pool", "--steps", "1", "--plot", str(path))
    assert status == 0 and out.rstrip().endswith(f"lineage plot: {path}")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_bad_input(capsys, tmp_path):
    status, out, err = run(capsys, "variants", "A", "--tolerance", "-0.1")
    assert status == 2 and out == ""
    assert err.startswith("budgetnet variants: error: tolerance=-0.1 is invalid; expected a number >= 0")
    status, _, err = run(capsys, "variants", "A", "--budget", "cheap")
    assert status == 2 and "budget='cheap' is invalid" in err
    status, _, err = run(capsys, "variants", "(3,0)")
    assert status == 2 and "notation column 1" in err
    for steps in ("-1", "21", "1000"):
        status, out, err = run(capsys, "variants", "A", "--steps", steps)
        assert status == 2 and out == ""
        assert err == f"budgetnet variants: error: --steps={steps} is invalid; expected an integer from 0 to 20\n"
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    status, _, err = run(capsys, "variants", "B", "--rules", "delay_pool", "--steps", "1", "--plot", str(blocker / "x.png"))
    assert status == 2 and err.startswith(f"budgetnet variants: error: cannot write the plot '{blocker / 'x.png'}'")
    for argv, message in (
        (["--rules", "shrink"], "argument --rules: invalid choice: 'shrink'"),
        (["--plot", "lineage.jpg"], "plot path 'lineage.jpg': expected a file name ending in .png"),
        (["--max-depth", "0"], "argument --max-depth: '0': expected an integer >= 1"),
        (["--limit", "x"], "argument --max-variants/--limit: 'x': expected an integer >= 1"),
        (["--time-limit", "0"], "argument --time-limit: '0': expected a number of seconds > 0"),
    ):
        with pytest.raises(SystemExit) as info:
            main(["variants", "A", *argv])
        assert info.value.code == 2
        assert message in capsys.readouterr().err


def test_help_lists_rules_and_examples():
    result = subprocess.run(
        [sys.executable, "-m", "budgetnet", "variants", "--help"], capture_output=True, text=True, check=True
    )
    for text in ("--tolerance T", "--plot PATH.png", "depth_filter   Eqns. 3-5", "budgetnet variants A --steps 3"):
        assert text in result.stdout


def test_residual_variants_show_the_layers_each_rewrite_wrote(capsys):
    status, out, err = run(capsys, "variants", "resnet50", "--steps", "1", "--rules", "cardinality_width", "--limit", "4")
    assert status == 0
    lines = out.splitlines()
    assert lines[4].split()[:2] == ["resnet50", "(baseline)"]
    (row,) = [line for line in lines if line.endswith("cardinality_width(stage 2, groups=2)")]
    # Xie et al. 2017 Table 2: C = 2 takes d = 40, a bottleneck 80 wide
    assert "... stage 2: res[(1,80)bn (3,80)g2bn (1,256)bn@none]x3" in row


def test_efficientnet_b0_variants_are_mbconv_trades(capsys):
    status, out, err = run(capsys, "variants", "efficientnet_b0", "--steps", "2")
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[-1].startswith("133 variants within 2 steps; 234 sites checked (0 refused by a rule, 0 off budget")
    rows = lines[4:-2]
    assert rows[0].split()[:2] == ["efficientnet_b0", "(baseline)"]
    paths = [row.split("  ")[-1].strip() for row in rows[1:]]
    rules = {step.split("(")[0] for path in paths for step in path.split(" > ")}
    assert len(paths) == 133 and rules == {"mbconv_filter", "mbconv_blocks"}
    (row,) = [row for row in rows if row.rstrip().endswith("  mbconv_filter(stage 1 layers 9:14, kernel_size=3)")]
    assert "(3,280)dwbn@silu gate[gpool (1,10)@silu (1,280)@sigmoid]" in row


def test_a_baseline_no_rule_applies_to_says_where_the_rules_apply(capsys):
    # ConvNeXt-T: a norm and a layer scale inside every block, no plain stage, no MBConv stage
    assert main(["variants", "convnext_tiny", "--steps", "1"]) == 0
    out, err = capsys.readouterr()
    assert "0 variants within 0 steps; 0 sites checked" in out
    assert err.strip() == f"budgetnet variants: {variants.NO_SITE}"
    assert main(["variants", "A", "--steps", "1"]) == 0  # the paper's model A has sites: no such line
    assert capsys.readouterr().err == ""
