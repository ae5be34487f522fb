"""README.md's "What the main job prints" is a run of today's default: the budget, the
baseline and the confirmation it shows are the ones `budgetnet search` uses with no options."""

from __future__ import annotations

import re
from pathlib import Path

import budgetnet
from budgetnet.cli import search as search_command
from budgetnet.cli import make_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SECTION = README.split("## What the main job prints", 1)[1].split("\n## ", 1)[0]
OUTPUT = SECTION.split("```\n", 2)[1]


def test_the_readme_shows_the_default_baseline_and_budget():
    args = make_parser().parse_args(["search"])
    # no --space and no --baseline: the small space (a --baseline alone would search around it)
    assert (args.space, args.baseline, args.data, args.trials, args.epochs) == (None, None, "digits", 50, 15)
    assert "\nstudy 'small-digits': small space on digits," in OUTPUT
    arch = budgetnet.parse(search_command.MAIN_JOB_BASELINE, input_shape=(1, 16, 16), num_classes=10)
    macs = budgetnet.conv_macs(arch)
    assert macs == 152_576  # hand arithmetic below
    assert f"baseline {search_command.MAIN_JOB_BASELINE} (152.6K MACs)" in OUTPUT


def test_the_baseline_cost_by_hand():
    # (3,4) on 16x16: 1*3^2*4*16^2 = 9216; 2/2 -> 8x8; (5,8): 4*5^2*8*8^2 = 51200; 2/2 -> 4x4;
    # (3,16)x3 on 4x4: 8*9*16*4^2 + 2 * 16*9*16*4^2 = 18432 + 73728 = 92160. Sum 152576.
    assert 1 * 9 * 4 * 256 + 4 * 25 * 8 * 64 + 8 * 9 * 16 * 16 + 2 * 16 * 9 * 16 * 16 == 152_576


def test_the_readme_shows_a_confirmation_with_a_verdict_and_the_time():
    assert "confirmation on 3-fold over the whole set (1797 images" in OUTPUT
    assert re.search(r"^verdict: .+$", OUTPUT, flags=re.M)
    assert re.search(r"^wall time \d+ s$", OUTPUT, flags=re.M)
    # one measured time for the default job, the same wherever the README gives it
    wall = re.search(r"^wall time (\d+) s$", OUTPUT, flags=re.M).group(1)
    assert re.search(r"idle \([^)]*\): (\d+) s,", SECTION).group(1) == wall
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"(\d+) s on two idle CPU cores", quickstart).group(1) == wall
    assert not re.search(r"minutes?\b", quickstart)  # no "about two minutes" beside it
    assert not re.search(r"\d[\d,]* tests", README)  # the suite's size changes with every issue
    args = make_parser().parse_args(["search"])
    assert (args.confirm, args.confirm_seeds, args.confirm_folds, args.no_confirm) == ("3", "3", None, False)


def test_the_readme_search_lines_parse_with_todays_options():
    """The README's `budgetnet search / confirm / proxy` lines name only options that exist
    (they are run, made cheap, by tests/cli/test_cli_confirm.py's equivalents)."""
    import shlex

    block = README.split("## Search", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip().startswith("budgetnet ")]
    assert {shlex.split(line)[1] for line in lines} == {"search", "confirm", "proxy"}
    for line in lines:
        args = make_parser().parse_args(shlex.split(line)[1:])
        assert args.command in ("search", "confirm", "proxy")
