"""Every code block of README.md runs as written: each Python block in a fresh interpreter (in
an empty directory), each ``budgetnet`` line of a bash block through the CLI, with cheap
options appended where it trains (argparse keeps the last value). The few lines that cannot
run here are listed in :data:`NOT_RUN` with the reason and the test that covers them.
Files a line names (``mnist``, ``my_model.py``) are written from scikit-learn's digits.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from budgetnet.cli import main
from test_help_examples import MY_MODEL, write_mnist_like

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)
PYTHON = [code for language, code in BLOCKS if language == "python"]

#: Python blocks that train, made cheap: (text in exactly one block, what it becomes).
CHEAPER = [
    ('"quick", epochs=5)', '"quick", epochs=1)'),  # its accuracy as written: tests/test_examples.py
    ("n_trials=20, epochs=5)", "n_trials=2, epochs=1)"),
]

#: Appended to each command that trains or times.
CHEAP = {
    "search": ["--trials", "2", "--epochs", "1", "--limit", "60", "--no-progress", "--no-baseline", "--no-confirm",
               "--device", "cpu"],
    "confirm": ["--seeds", "1", "--folds", "2", "--no-progress"],
    "proxy": ["--archs", "4", "--short-epochs", "1", "--long-epochs", "1", "--limit", "60", "--device", "cpu"],
    "train": ["--epochs", "1", "--limit", "100", "--no-progress"],
    "latency": ["--repeats", "2", "--warmup", "1", "--cache-dir", "latency"],
}  # fmt: skip

#: Lines not run here, each with the reason.
NOT_RUN = {
    "./install.sh": "installs packages (the setup itself)",
    "./install.sh --dev": "installs packages (the setup itself)",
    "python -m pytest": "the suite itself",
    "for gpu in 0 1 2 3; do": "4 GPUs and a PostgreSQL server: tests/test_help_examples.py runs --workers on PostgreSQL",
}


def shell_lines() -> list[str]:
    """Each command of the README's bash blocks (continued lines joined, ``&&`` split)."""
    lines = []
    for language, code in BLOCKS:
        if language != "bash":
            continue
        text = code.replace("\\\n", " ")
        if text.lstrip().startswith("for "):  # a loop is one command
            lines.append(text.splitlines()[0].strip())
            continue
        for line in text.splitlines():
            lines += [part.strip() for part in line.split("#", 1)[0].split("&&") if part.strip()]
    return lines


RUN = [line for line in shell_lines() if line not in NOT_RUN]


def test_every_block_is_run_or_says_why_not():
    assert len(PYTHON) >= 6 and len(RUN) >= 12
    assert set(shell_lines()) - set(RUN) == set(NOT_RUN)
    assert all(line.startswith("budgetnet ") for line in RUN)
    for text, _ in CHEAPER:
        assert sum(text in code for code in PYTHON) == 1, text


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs_in_a_fresh_interpreter(index, tmp_path):
    code = PYTHON[index]
    for text, cheaper in CHEAPER:
        code = code.replace(text, cheaper)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Warning" not in done.stderr, done.stderr[-3000:]
    # a printed value the comment states: `print(...)  # 827167424 0.97`
    for line in PYTHON[index].splitlines():
        stated = re.match(r"print\(.*\)\s+#\s*([\d.]+(?: [\d.]+)*)", line)
        if stated:
            assert stated.group(1) in done.stdout, (line, done.stdout)
    for name in re.findall(r'"(\w+\.png)"', code):  # a figure it saves
        assert (tmp_path / name).stat().st_size > 10_000


def test_python_blocks_state_what_they_print():
    stated = [m.group(1) for code in PYTHON for m in re.finditer(r"print\(.*\)\s+#\s*([\d.]+(?: [\d.]+)*)", code)]
    assert stated == ["827167424 0.97", "4087136256"]


@pytest.mark.parametrize("line", RUN)
def test_cli_line_runs(line, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(line)[1:]
    command = argv[0]
    if "my_model.py:build" in argv:
        (tmp_path / "my_model.py").write_text(MY_MODEL)
    if "idx:mnist" in argv:
        write_mnist_like(tmp_path / "mnist")
    if command == "confirm":  # a stored study to confirm: the cheap default search
        assert main(["search", *CHEAP["search"]]) == 0
    assert main([*argv, *CHEAP.get(command, [])]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert out.strip()
    for option in ("--plot", "--plot-dir"):
        if option in argv:
            target = tmp_path / argv[argv.index(option) + 1]
            pngs = sorted(target.glob("*.png")) if option == "--plot-dir" else [target]
            assert pngs and all(png.stat().st_size > 10_000 for png in pngs)


def test_import_budgetnet_exposes_plots_results_and_export_without_torch():
    code = (
        "import sys, budgetnet\n"
        "assert not {'torch', 'optuna', 'matplotlib'} & set(sys.modules), sorted(sys.modules)\n"
        "print(budgetnet.plots.lineage.__name__, budgetnet.results.__name__, budgetnet.export.__name__)\n"
        "print('plots' in dir(budgetnet))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["lineage", "budgetnet.studies.results", "budgetnet.studies.export", "True"]


def test_an_unknown_attribute_is_still_an_attribute_error():
    import budgetnet

    with pytest.raises(AttributeError, match="module 'budgetnet' has no attribute 'plot'"):
        budgetnet.plot  # noqa: B018
