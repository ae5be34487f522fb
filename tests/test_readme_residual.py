"""The README's residual-network examples run as written and print what their comments say."""

import contextlib
import io
import re
from pathlib import Path

import torch

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def block_with(text: str) -> str:
    (found,) = [block for block in BLOCKS if text in block]
    return found


def test_resnet50_notation_example():
    code = block_with('resnet50 = budgetnet.parse(')
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec("import budgetnet\n" + code, {})
    # the comment in the README states the printed value
    assert output.getvalue().split() == [re.search(r"# (\d+)", code).group(1)] == ["4087136256"]


def test_import_torchvision_example():
    namespace = {}
    exec("import budgetnet\n" + block_with("weights_from=model"), namespace)
    model, twin = namespace["model"].eval(), namespace["twin"].eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), twin(x), atol=1e-5)
