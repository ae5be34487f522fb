"""Every training example of README.md and ``budgetnet train --help`` on the bundled digits
reaches 0.97 test accuracy in its stated epochs on the CPU (one seed; the runs measured about
0.99). Notebook 03 checks its own two trainings the same way (it runs in test_notebooks.py)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

import budgetnet
from budgetnet.cli import main
from budgetnet.cli import train as train_command

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
MIN_ACCURACY = 0.97
_COMMAND = re.compile(r"^\s*budgetnet train (.+?)(?:\s+#.*)?$", re.MULTILINE)


def digits_commands(text: str) -> list[str]:
    """The ``budgetnet train`` lines of ``text`` that train on digits (no other --data)."""
    commands = []
    for match in _COMMAND.finditer(text):
        args = shlex.split(match.group(1).rstrip("\\"))
        if "--data" not in args or args[args.index("--data") + 1] == "digits":
            commands.append(match.group(1))
    return commands


EXAMPLES = sorted(set(digits_commands(README)) | set(digits_commands(train_command.__doc__)))


def test_examples_are_found_in_both_places():
    assert digits_commands(README) and digits_commands(train_command.__doc__)
    assert all("--epochs" in command for command in EXAMPLES)  # each states its epochs


@pytest.mark.parametrize("command", EXAMPLES)
def test_train_example_reaches_097_on_digits(command, capsys):
    assert main(["train", *shlex.split(command), "--json", "--no-progress", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert not result["fit"]["diverged"]
    assert result["test"]["accuracy"] >= MIN_ACCURACY, (command, result["test"])


def test_readme_python_training_example_reaches_097():
    block = README.split("## Train and time", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if "measure(" not in line and not line.startswith("print(")]
    namespace = {"budgetnet": budgetnet}
    exec("\n".join(lines), namespace)  # the README's own code: load_data, parse, fit
    test = budgetnet.evaluate(namespace["result"].model, namespace["data"], device="cpu")
    assert test["accuracy"] >= MIN_ACCURACY, test
